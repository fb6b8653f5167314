"""`loyalty reader list|test` (install-time diagnostics) and `loyalty card issue` (signed numbers)."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from drivers import identity
from drivers.readers import (
    CardError,
    CardPresent,
    CardRemoved,
    ReaderConnected,
    ReaderDisconnected,
    ReaderError,
    ReaderEvent,
    open_reader,
)
from ledger.config import ReaderConfig
from ledger.errors import LoyaltyError

from ..context import Context, Output
from . import bounded


def register(sub: Any) -> None:
    p = sub.add_parser("reader", help="card reader diagnostics: list readers, print each tap")
    rsub = p.add_subparsers(dest="reader_command", metavar="ACTION", required=True)

    s = rsub.add_parser("list", help="PC/SC readers, nfcpy USB devices and serial ports, with the URL to configure")
    s.set_defaults(handler=cmd_list)

    s = rsub.add_parser("test", help="print each tap with timing until Ctrl-C (or --count taps)")
    s.add_argument("--url", help="reader URL (default: [reader] url from the config)")
    s.add_argument("--count", type=bounded(0, 1_000_000), default=0, metavar="N", help="stop after N taps")
    s.add_argument("--timeout", type=bounded(0, 86_400, whole=False), default=0.0, metavar="SECONDS",
                   help="give up after SECONDS (exit 1 if fewer than --count taps came)")
    s.set_defaults(handler=cmd_test)


_LANG = re.compile(r"(?=.{1,63}$)[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")


def register_card_issue(csub: Any) -> None:
    s = csub.add_parser("issue", help="make a signed card number: NDEF bytes and barcode text")
    s.add_argument("number", nargs="?", help="the card number (default: a random 12-digit number)")
    s.add_argument("--key", metavar="FILE", help="Ed25519 private key (PEM, or the seed in hex)")
    s.add_argument("--new-key", metavar="FILE", help="make a new private key in FILE (mode 0600) and use it")
    s.add_argument("--lang", default="en", help="language code of the NDEF text record")
    s.set_defaults(handler=cmd_issue)


# ------------------------------------------------------------------ reader list


def cmd_list(args: argparse.Namespace, ctx: Context) -> Output:
    found: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        from smartcard.System import readers

        for r in readers():
            found.append({"kind": "pcsc", "name": str(r), "url": f"pcsc://{r}"})
    except ImportError:
        problems.append("pcsc: pyscard is not installed")
    except Exception as exc:  # pyscard raises several unrelated types when pcscd is down
        problems.append(f"pcsc: no PC/SC service ({exc}); is pcscd installed and running?")
    try:
        import nfc.clf.device
        import usb1

        with usb1.USBContext() as usb:
            for dev in usb.getDeviceList(skip_on_error=True):
                vid, pid = dev.getVendorID(), dev.getProductID()
                chip = nfc.clf.device.usb_device_map.get((vid, pid))
                if chip:
                    found.append({"kind": "nfc", "name": f"{chip} {vid:04x}:{pid:04x}", "url": f"nfc:usb:{vid:04x}:{pid:04x}"})
    except ImportError:
        problems.append("nfc: nfcpy is not installed")
    except Exception as exc:  # libusb missing or no permission
        problems.append(f"nfc: cannot list USB devices ({exc})")
    try:
        from serial.tools import list_ports

        for port in list_ports.comports():
            label = port.description if port.description and port.description != "n/a" else port.device
            found.append({"kind": "serial", "name": label, "url": f"serial://{port.device}?protocol=rdm6300"})
    except ImportError:
        problems.append("serial: pyserial is not installed")
    lines = [f"{r['kind']:<7} {r['name']:<40} {r['url']}" for r in found] or ["no readers found"]
    lines += [f"note: {p}" for p in problems]
    lines.append("keyboard readers and scanners need no setup: url = \"keyboard://\"")
    return Output({"readers": found, "problems": problems}, "\n".join(lines))


# ------------------------------------------------------------------ reader test


def _reader_config(ctx: Context, url: str | None) -> ReaderConfig:
    if url is not None and not ctx.config_path.exists():
        return ReaderConfig(url=url)
    cfg = ctx.config.reader
    if url is not None:
        return ReaderConfig(url, cfg.require_signed, cfg.public_keys, cfg.debounce_ms)
    return cfg


def event_json(event: ReaderEvent, started: float, last_tap: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event": _EVENT_NAMES[type(event)],
        "reader": event.reader,
        "card": None,
        "uid": None,
        "t_ms": round((event.at - started) * 1000, 3),
    }
    if isinstance(event, CardPresent):
        out.update(
            card=event.card_id,
            uid=event.uid.hex().upper() if event.uid is not None else None,
            atr=event.atr.hex().upper() if event.atr is not None else None,
            ndef=list(event.ndef),
            technology=event.technology,
            signature=event.signature,
            refused=event.refused,
            warnings=list(event.warnings),
            driver_ms=round((event.at - event.detected) * 1000, 3) if event.detected is not None else None,
            io_ms=round(event.io_ms, 3),
            since_last_ms=round((event.at - last_tap) * 1000, 1) if last_tap is not None else None,
        )
    elif isinstance(event, (CardError, ReaderDisconnected)):
        out["reason"] = event.reason
    return out


_EVENT_NAMES: dict[type, str] = {
    CardPresent: "card",
    CardRemoved: "removed",
    CardError: "error",
    ReaderConnected: "connected",
    ReaderDisconnected: "disconnected",
}


def _text(row: dict[str, Any]) -> str:
    head = f"{row['t_ms'] / 1000:9.3f}s  {row['event']:<12}"
    if row["event"] == "card":
        extra = [f"uid {row['uid']}"] if row["uid"] else []
        if row["ndef"]:
            extra.append("ndef " + " | ".join(row["ndef"]))
        if row["signature"] != "none":
            extra.append(f"signature {row['signature']}")
        if row["refused"]:
            extra.insert(0, "REFUSED")
        extra.extend(f"warning: {w}" for w in row["warnings"])
        timing = f"driver {row['driver_ms']} ms" if row["driver_ms"] is not None else ""
        return f"{head} {row['card']}  [{row['reader']}] {'; '.join(extra)}  {timing}".rstrip()
    reason = f": {row['reason']}" if row.get("reason") else ""
    return f"{head} [{row['reader']}]{reason}"


def cmd_test(args: argparse.Namespace, ctx: Context) -> Output:
    cfg = _reader_config(ctx, args.url)
    try:
        reader = open_reader(cfg.url, require_signed=cfg.require_signed, public_keys=cfg.public_keys,
                             debounce_ms=cfg.debounce_ms)
    except ReaderError as exc:
        raise LoyaltyError("reader", str(exc)) from None
    except ImportError as exc:
        raise LoyaltyError("reader", f"the driver for {cfg.url!r} needs a Python package that is missing: {exc}") from None
    stop = threading.Event()
    if args.timeout:
        timer = threading.Timer(args.timeout, stop.set)
        timer.daemon = True
        timer.start()
    interrupted = threading.Event()

    def on_interrupt(signum: int, frame: Any) -> None:
        # nfcpy swallows the KeyboardInterrupt inside its poll and reports a reader that stopped answering:
        # the stop flag tells the drivers it was Ctrl-C
        interrupted.set()
        stop.set()
        raise KeyboardInterrupt

    feed = getattr(reader, "feed", None)
    if feed is not None:  # keyboard://: what is typed (or piped) here is what a scanner would type
        threading.Thread(target=_feed_lines, args=(feed, stop), name="reader-test-stdin", daemon=True).start()
    if not ctx.as_json:
        print(f"reading {cfg.url} (signatures: {cfg.require_signed}); "
              + ("type or scan a number and Enter" if feed is not None else "tap a card") + ", Ctrl-C to stop", flush=True)
    started = time.monotonic()
    taps = 0
    last_tap: float | None = None
    previous = signal.signal(signal.SIGINT, on_interrupt) if threading.current_thread() is threading.main_thread() else None
    try:
        for event in reader.events(stop):
            row = event_json(event, started, last_tap)
            print(json.dumps(row, ensure_ascii=False) if ctx.as_json else _text(row), flush=True)
            if isinstance(event, CardPresent):
                taps += 1
                last_tap = event.at
                if args.count and taps >= args.count:
                    break
    except ReaderError as exc:
        raise LoyaltyError("reader", str(exc)) from None
    finally:
        stop.set()
        reader.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if interrupted.is_set():
        raise KeyboardInterrupt
    if args.count and taps < args.count:
        print(f"loyalty: {taps} of {args.count} taps before the timeout", file=sys.stderr)
        return Output(None, None, 1)
    return Output(None, None, 0)


def _feed_lines(feed: Any, stop: threading.Event) -> None:
    for line in sys.stdin:
        if stop.is_set():
            return
        feed(line)


# ------------------------------------------------------------------- card issue


def cmd_issue(args: argparse.Namespace, ctx: Context) -> Output:
    import secrets

    import ndef

    if not _LANG.fullmatch(args.lang):  # the NDEF text record holds at most 63 bytes of an IANA language tag
        raise LoyaltyError("bad_lang", f"--lang {args.lang!r} is not a language code such as en, ar or fa-IR")
    if args.new_key:
        path = Path(args.new_key)
        if path.exists():
            raise LoyaltyError("key_exists", f"{path} exists; pass it with --key, or choose another file")
        key = identity.new_private()
    elif args.key:
        try:
            key = identity.load_private(Path(args.key).read_text(encoding="utf-8"))
        except OSError as exc:
            raise LoyaltyError("key", f"cannot read {args.key}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise LoyaltyError("key", f"{args.key} is not a private key (a PEM file or the seed in hex is text)") from None
        except identity.KeyFormatError as exc:
            raise LoyaltyError("key", f"{args.key}: {exc}") from None
    else:
        raise LoyaltyError("key", "card issue needs --key FILE (or --new-key FILE to make one)")
    number = args.number or "".join(secrets.choice("0123456789") for _ in range(12))
    try:
        signed = identity.sign(number, key)
    except ValueError as exc:
        raise LoyaltyError("card_number", str(exc)) from None
    message = b"".join(ndef.message_encoder([ndef.TextRecord(signed, args.lang)]))
    if args.new_key:  # written last: a refused number or language leaves no key file behind
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise LoyaltyError("key", f"cannot write the new key {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(identity.private_pem(key))
    public = identity.public_text(key.public_key())
    data = {
        "number": number,
        "card": f"ndef:{number}",
        "barcode_card": f"code:{number}",
        "signed": signed,
        "ndef_hex": message.hex().upper(),
        "key_id": identity.key_id(key.public_key()),
        "public_key": public,
    }
    text = "\n".join(
        [
            f"number      {number}  (card id ndef:{number} on a tag, code:{number} as a barcode)",
            f"barcode/QR  {signed}",
            f"NDEF bytes  {data['ndef_hex']}",
            f"public key  {public}  (add to [reader] public_keys)",
        ]
    )
    return Output(data, text)
