"""The central server's HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Handlers are plain `def`: the store is blocking SQLAlchemy, and FastAPI runs
them in its worker threads, so one slow push never stalls another.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool

from .protocol import (
    MAX_PAGE,
    PUSH_REQUEST,
    TERMINAL_ID_PATTERN,
    CardPage,
    ChangesPage,
    ErrorBody,
    Health,
    PushResponse,
    Reports,
    parse_push,
)
from .store import ServerStore, SyncError, now_iso

log = logging.getLogger(__name__)

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "no token, or an unknown one"},
    403: {"model": ErrorBody, "description": "the token belongs to another terminal"},
    503: {"model": ErrorBody, "description": "the database is busy; retry"},
}

Tid = Annotated[str, Path(pattern=TERMINAL_ID_PATTERN, description="STORE:TERMINAL, as registered by add-terminal")]
Auth = Annotated[str | None, Header(alias="Authorization", description="Bearer TOKEN")]
Currency = Annotated[str | None, Header(alias="X-Loyalty-Currency", pattern="^[A-Z]{3}$",
                                        description="the till's currency (ISO 4217); one per chain")]
Chain = Annotated[str | None, Header(alias="X-Loyalty-Chain", pattern="^[0-9a-f]{32}$",
                                     description="the chain id of the server the till synced with (every answer gives it)")]


def _push_components() -> dict[str, Any]:
    """The push body's schemas, from the same adapter that validates it."""
    schema = PUSH_REQUEST.json_schema(ref_template="#/components/schemas/{model}")
    defs: dict[str, Any] = schema.pop("$defs", {})
    return {**defs, str(schema["title"]): schema}


PUSH_BODY = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PushRequest"}}}}


def _is_json(content_type: str | None) -> bool:
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


def _token(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def create_app(store: ServerStore) -> FastAPI:
    app = FastAPI(
        title="pos-loyalty central server",
        version="1",
        description="Push terminal ledger events, pull the chain's card snapshots. Protocol: docs/sync.md.",
    )
    app.state.store = store

    def _check(tid: str, authorization: str | None, currency: str | None, chain: str | None) -> None:
        """What a till says of itself in its headers, against this chain, before anything is stored or sent."""
        if chain is not None:
            store.check_chain(tid, _token(authorization), chain)
        if currency is not None:
            store.check_currency(tid, _token(authorization), currency)

    @app.exception_handler(SyncError)
    def _sync_error(request: Request, exc: SyncError) -> JSONResponse:
        return JSONResponse({"error": exc.code, "message": exc.message, **exc.extra}, status_code=exc.status)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    def _database_down(request: Request, exc: Exception) -> JSONResponse:
        # the server is up, its database is not (stopped, restarting, refusing connections): a till retries later
        log.warning("database unavailable: %s", " ".join(str(getattr(exc, "orig", None) or exc).split())[:200])
        return JSONResponse({"error": "database_unavailable", "message": "the server's database does not answer; try again later"},
                            status_code=503)

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": "invalid", "message": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)

    @app.get("/v1/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", server_time=now_iso(), schema_version=store.schema_version())

    @app.post(
        "/v1/terminals/{tid}/events",
        response_model=PushResponse,
        responses={**ERRORS, 409: {"model": ErrorBody, "description": "a seq gap: resend from last_seq + 1"},
                   422: {"model": ErrorBody, "description": "tampered, broken or invalid batch: nothing stored, flagged"}},
        openapi_extra={"requestBody": PUSH_BODY},
    )
    async def push(tid: Tid, request: Request, authorization: Auth = None, currency: Currency = None,
                   chain: Chain = None) -> PushResponse:
        # the body is read here and handed whole to pydantic-core: FastAPI's own body parameter
        # would decode the JSON in Python, then build and dump a model per event
        body = await request.body()
        content_type = request.headers.get("content-type")
        return await run_in_threadpool(_push, tid, authorization, content_type, body, currency, chain)

    def _push(tid: str, authorization: str | None, content_type: str | None, body: bytes, currency: str | None,
              chain: str | None) -> PushResponse:
        _check(tid, authorization, currency, chain)
        if not _is_json(content_type):
            raise RequestValidationError([{"loc": ("body",), "msg": "a JSON body is required", "type": "content_type"}])
        try:
            request = parse_push(body)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
            ) from None
        result = store.push(tid, _token(authorization), request["from_seq"], request["events"])
        return PushResponse.model_validate(
            {"acked_seq": result.acked_seq, "acked_hash": result.acked_hash, "overdrafts": result.overdrafts, "chain_id": store.chain_id()}
        )

    components = _push_components()
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = default_openapi()
        schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/v1/terminals/{tid}/changes", response_model=ChangesPage, responses=ERRORS)
    def changes(
        tid: Tid,
        since: Annotated[int, Query(ge=0, le=2**62)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 500,
        authorization: Auth = None,
        currency: Currency = None,
        chain: Chain = None,
    ) -> ChangesPage:
        _check(tid, authorization, currency, chain)
        return ChangesPage.model_validate(store.changes(tid, _token(authorization), since, limit))

    @app.get("/v1/terminals/{tid}/card", response_model=CardPage, responses=ERRORS)
    def card(
        tid: Tid,
        card_id: Annotated[str, Query(alias="id", min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$",
                                      description="the card id as a till writes it (uid:04A1..., code:...)")],
        authorization: Auth = None,
        currency: Currency = None,
        chain: Chain = None,
    ) -> CardPage:
        _check(tid, authorization, currency, chain)
        return CardPage.model_validate(store.card(tid, _token(authorization), card_id))

    @app.get("/v1/terminals/{tid}/reports", response_model=Reports, responses=ERRORS)
    def reports(tid: Tid, authorization: Auth = None) -> Reports:
        store.authenticate(tid, _token(authorization))
        return Reports.model_validate(store.reports())

    return app

