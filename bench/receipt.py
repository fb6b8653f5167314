"""Receipt rendering time: a sale receipt as ESC/POS text mode (English) and as Arabic raster.

A real sale is committed on a throw-away copy of the demo store, then its receipt
is rendered N times per case. Arabic is timed twice: warm (the shaped-run cache
holds the labels, as on a till after its first receipt) and cold (cache emptied
before every render: what the first receipt of the day costs). Prints one JSON
object on its last line: text_ms and ar_ms (medians, warm), ar_cold_ms, fa_ms,
and the bytes each produced.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger import clock  # noqa: E402
from ledger.config import Config, load  # noqa: E402
from ledger.service import CheckoutRequest, Loyalty  # noqa: E402
from receipts import raster  # noqa: E402
from receipts.escpos import render_escpos  # noqa: E402
from receipts.templates import lang_for, sale_receipt  # noqa: E402


def _store(folder: Path) -> Config:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text = re.sub(r'^path = ".*?"', 'path = "ledger.db"', text, count=1, flags=re.M)
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load(path)


def _sale(cfg: Config) -> dict[str, object]:
    service = Loyalty.open(cfg)
    try:
        card = "uid:04A1B2C3D4E5F6"
        for i, items in enumerate((["LAT*11", "CRO"], ["LAT*2", "BEANS", "DAT"])):
            redeem = ["points", "coffee"] if i else []
            req = CheckoutRequest.from_cli(card, items, redeem, f"bench-{i}")
            result = service.checkout(req, clock.parse_now(f"2026-11-{19 + i}T09:30", cfg.store.tz))
        return result
    finally:
        service.close()


def _median_ms(fn: Callable[[], bytes], runs: int, before: Callable[[], None] | None = None) -> tuple[float, int]:
    size = len(fn())  # first call pays imports and font loading
    times = []
    for _ in range(runs):
        if before:
            before()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _store(Path(tmp))
        result = _sale(cfg)
    profile, width = cfg.printer.profile, cfg.printer.paper_width_mm

    def case(locale: str) -> Callable[[], bytes]:
        lang = lang_for(cfg, locale)
        return lambda: render_escpos(sale_receipt(result, cfg, lang=lang), profile=profile, width_mm=width)

    text_ms, text_bytes = _median_ms(case("en"), args.runs)
    ar_ms, ar_bytes = _median_ms(case("ar"), args.runs)
    fa_ms, fa_bytes = _median_ms(case("fa"), args.runs)
    ar_cold_ms, _ = _median_ms(case("ar"), max(5, args.runs // 5), before=raster.shaped.cache_clear)
    figures = {
        "text_ms": round(text_ms, 2),
        "ar_ms": round(ar_ms, 2),
        "ar_cold_ms": round(ar_cold_ms, 2),
        "fa_ms": round(fa_ms, 2),
        "text_bytes": text_bytes,
        "ar_bytes": ar_bytes,
        "fa_bytes": fa_bytes,
        "layout": raster.engine(),
        "profile": profile,
        "paper_mm": width,
        "runs": args.runs,
        "goals_ms": {"text": 5, "ar": 30},
    }
    print(f"en text mode: {text_ms:.2f} ms, {text_bytes} bytes")
    print(f"ar raster:    {ar_ms:.2f} ms warm, {ar_cold_ms:.2f} ms cold, {ar_bytes} bytes ({raster.engine()})")
    print(f"fa raster:    {fa_ms:.2f} ms warm, {fa_bytes} bytes")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
