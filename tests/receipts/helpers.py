"""Shared by the receipts tests: the frozen ledger answers and the documents built from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger.config import Config, load
from receipts import templates
from receipts.i18n import Lang
from receipts.model import Document

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
KINDS = ("sale", "refund", "z", "voucher", "enrolment")


def frozen() -> dict[str, Any]:
    """Real sale, refund, Z totals, voucher and card answers, captured once so golden bytes stay put."""
    data: dict[str, Any] = json.loads((GOLDEN / "documents.json").read_text(encoding="utf-8"))
    return data


def config(tmp: Path, **kwargs: Any) -> Config:
    from conftest import write_config

    return load(write_config(tmp, **kwargs))


def build(kind: str, cfg: Config, lang: Lang, data: dict[str, Any] | None = None, *, copy: bool = False) -> Document:
    data = data or frozen()
    if kind == "sale":
        return templates.sale_receipt(data["sale"], cfg, copy=copy, lang=lang)
    if kind == "refund":
        return templates.refund_slip(data["refund"], cfg, copy=copy, lang=lang)
    if kind == "z":
        return templates.z_report(data["z"], cfg, copy=copy, lang=lang)
    if kind == "voucher":
        return templates.voucher(data["voucher"], cfg, copy=copy, lang=lang)
    if kind == "enrolment":
        return templates.enrolment_slip(data["enrolment"], cfg, copy=copy, lang=lang)
    raise ValueError(kind)
