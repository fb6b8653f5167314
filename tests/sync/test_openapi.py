"""schemathesis against the server's own OpenAPI, on SQLite and PostgreSQL: no request gets a 5xx.

Each generated case is sent three ways: as generated, with a real token, and
with a real token for its own terminal, so the push and pull code behind the
authentication is reached by arbitrary bodies and parameters too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from sync.app import create_app
from sync.store import ServerStore

TOKENS: dict[int, tuple[str, str]] = {}


@pytest.fixture
def api(server: ServerStore) -> Iterator[Any]:
    tid, token = server.add_terminal("kw-salmiya-01", "till-1")
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(server))
    TOKENS[id(schema)] = (tid, token)
    yield schema
    TOKENS.pop(id(schema), None)


schema = schemathesis.pytest.from_fixture("api")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: Any) -> None:
    tid, token = next(iter(TOKENS.values()))
    seen = []
    response = case.call()
    seen.append(response.status_code)
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    seen.append(response.status_code)
    if "tid" in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, "tid": tid}
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        seen.append(response.status_code)
    assert all(code < 500 for code in seen), (case.method, case.path, seen)
