"""The demo store: its config in a working directory and ~20 members with a past.

Members are seeded through the loyalty service itself, with sales dated in
the past (days before `now`), so stamps, rewards, tiers, discount steps and
expiring points are what the real rules make of that history, not made-up
balances. Seeding runs in date order so the event chain reads as it happened.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ledger import config as config_mod
from ledger.clock import iso
from ledger.config import Config
from ledger.service import CheckoutRequest, Loyalty

DEMO_STORE = Path(__file__).resolve().parent / "demo_store.toml"
DEMO_PIN = "1234"
SEEDED_MARK = "seeded.txt"


@dataclass(frozen=True)
class Member:
    key: str
    card: str
    name: str
    phone: str | None = None
    birthday: str | None = None  # MM-DD; "today" = the demo day's date
    sales: tuple[tuple[int, tuple[str, ...], tuple[str, ...]], ...] = ()  # (days ago, items, redeem)
    enrol_days_ago: int = 400
    referrer: str | None = None
    blocked: str | None = None
    replaced_by: str | None = None
    note: str = ""


MEMBERS: tuple[Member, ...] = (
    Member("1", "uid:04A1B2C3D4E5F6", "Fatima Al-Sabah", "+965 5000 0001", "03-21",
           ((120, ("LAT*10",), ()), (40, ("BEANS*12",), ()), (5, ("LAT*7",), ())), note="silver, reward"),
    Member("2", "uid:04B2C3D4E5F607", "Ahmad Al-Mutairi", "+965 5000 0002", "07-02",
           ((90, ("BEANS*46",), ()), (10, ("SPN*3",), ())), note="gold"),
    Member("3", "em:0A1B2C3D4E", "Maryam Hosseini", "+98 912 000 0003", "11-02",
           ((350, ("BEANS*5",), ()), (30, ("ESP*2",), ())), note="points expiring"),
    Member("4", "code:LOY-0004", "Reza Tehrani", None, None, ((20, ("ESP*9",), ()),), note="9/10 stamps"),
    Member("5", "ndef:100005", "Sara Al-Kandari", "+965 5000 0005", "12-24",
           ((60, ("VIP", "LAT"), ()),), note="VIP 15%"),
    Member("6", "uid:04DEADBEEF0006", "Yousef Al-Ajmi", None, None,
           ((80, ("LAT*3",), ()),), blocked="reported stolen", note="BLOCKED"),
    Member("7", "uid:04C1D2E3F40007", "Noura Al-Rashid", "+965 5000 0007", "05-15",
           ((200, ("BEANS*23",), ()), (12, ("CRO*2", "LAT"), ())), note="discount 5%"),
    Member("8", "code:LOY-0008", "Ali Karimi", None, None, (), enrol_days_ago=2, note="new member"),
    Member("9", "uid:04112233440009", "Zahra Moradi", "+98 935 000 0009", "08-08",
           ((50, ("LAT*10",), ()), (25, ("ESP*10",), ())), note="2 rewards"),
    Member("a", "em:0B00000010", "Hamad Al-Enezi", None, None,
           ((70, ("BEANS*3",), ()), (15, ("BEANS*2", "ESP"), ())), note="points"),
    Member("b", "code:LOY-0011", "Leila Ahmadi", "+98 912 000 0011", "today",
           ((33, ("SPN*2",), ()),), note="birthday today"),
    Member("c", "uid:A1B2C3D4", "Khaled Al-Hajri", None, None,
           ((100, ("SPN*4",), ()), (3, ("CRO*2",), ())), note="4-byte UID"),
    Member("d", "code:LOY-0013", "Mina Rahimi", None, None, (), enrol_days_ago=1, referrer="uid:04A1B2C3D4E5F6",
           note="referred"),
    Member("e", "ndef:100014", "Omar Al-Shammari", None, None,
           ((400, ("BEANS*4",), ()), (20, ("ESP",), ())), enrol_days_ago=420, note="points expired"),
    Member("f", "uid:04AA000000000F", "Dana Al-Fadhli", None, None, ((9, ("LAT*3",), ()),), note="3/10 stamps"),
    Member("g", "code:LOY-0016", "Hossein Jafari", "+98 912 000 0016", None,
           ((150, ("BEANS*40",), ()), (45, ("LAT*2",), ("points=200",))), note="many points"),
    Member("h", "em:0C00000117", "Huda Al-Qattan", None, None, ((65, ("LAT*4",), ()),), note="new card"),
    Member("i", "code:LOY-0018", "Bashir Naseri", None, None, ((14, ("ESP*5", "DAT"), ()),), note="5/10 stamps"),
    Member("j", "uid:04BB000000001A", "Reem Al-Dosari", "+965 5000 0019", "09-30",
           ((300, ("BEANS*66",), ()), (100, ("BEANS*46",), ()), (6, ("SPN*2",), ())), note="discount 10%"),
    Member("k", "code:LOY-0020", "Farhad Sadeghi", None, None,
           ((345, ("BEANS*3", "LAT*10"), ()), (8, ("ESP",), ())), note="reward+expiring"),
)

# A card for Huda's lost one: tapping it shows the replaced-card refusal.
REPLACED = ("em:0C00000017", "em:0C00000117")
NEW_CARD = "uid:04C0FFEE0000A1"


def tap_list() -> list[tuple[str, str, str]]:
    """(key, card, label) for the tap dialog."""
    rows = [(m.key, m.card, f"{m.name:<17} {m.note}") for m in MEMBERS]
    rows.append(("l", REPLACED[0], f"{'Huda (old card)':<17} replaced"))
    rows.append(("m", NEW_CARD, f"{'New card':<17} not enrolled"))
    return rows


def prepare_dir(workdir: Path) -> Path:
    """Write the demo store's config (with the demo manager PIN) into `workdir`; return its path."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.toml"
    if not path.exists():
        text = DEMO_STORE.read_text(encoding="utf-8")
        cfg = config_mod.loads(text, path)
        if cfg.manager.pin_sha256 is None:
            digest = hashlib.sha256(DEMO_PIN.encode()).hexdigest()
            text += f'\n# the demo manager PIN is {DEMO_PIN}\n[manager]\npin_sha256 = "{digest}"\n'
        path.write_text(text, encoding="utf-8")
    return path


def seed(service: Loyalty, now: datetime) -> int:
    """Give the demo members their history; returns the number of sales written."""
    tz = service.cfg.store.tz
    local_now = now.astimezone(tz)

    def at(days_ago: int, minute: int) -> datetime:
        day = (local_now - timedelta(days=days_ago)).replace(hour=9, minute=0, second=0, microsecond=0)
        return day + timedelta(minutes=minute)

    # (when, order, action, member): sorted by time so the chain reads as it happened
    steps: list[tuple[datetime, int, str, Member, tuple[str, ...], tuple[str, ...]]] = []
    for i, m in enumerate(MEMBERS):
        steps.append((at(m.enrol_days_ago, i), 0, "enrol", m, (), ()))
        if m.referrer:
            steps.append((at(m.enrol_days_ago, i), 1, "refer", m, (), ()))
        for n, (days, items, redeem) in enumerate(m.sales):
            steps.append((at(days, 30 + i + n), 0, "sale", m, items, redeem))
        if m.blocked:
            steps.append((at(1, 40 + i), 0, "block", m, (), ()))
        if m.card == REPLACED[1]:
            steps.append((at(7, 50), 0, "replace", m, (), ()))
    steps.sort(key=lambda s: (s[0], s[1]))
    sales = 0
    for when, _order, action, m, items, redeem in steps:
        # Huda's history starts on the card she later lost
        card = REPLACED[0] if m.card == REPLACED[1] and action != "replace" else m.card
        if action == "enrol":
            birthday = local_now.strftime("%m-%d") if m.birthday == "today" else m.birthday
            service.enrol(card, when, name=m.name, phone=m.phone, birthday=birthday)
        elif action == "refer":
            service.enrol(card, when, referrer=m.referrer)
        elif action == "sale":
            service.checkout(CheckoutRequest.from_cli(card, list(items), list(redeem)), when)
            sales += 1
        elif action == "block":
            service.block(card, when, m.blocked or "")
        elif action == "replace":
            service.replace(REPLACED[0], REPLACED[1], when)
    # the history's receipts were printed when it happened: the demo starts with an empty print queue
    service.conn.execute("UPDATE print_jobs SET status='printed', printed_at=created_at WHERE status='queued'")
    # and its days were closed at night, so the demo's end of day is today's
    past = [str(r[0]) for r in service.conn.execute("SELECT DISTINCT business_day FROM events WHERE business_day < ?",
                                                    (local_now.date().isoformat(),))]
    service.conn.executemany(
        "INSERT OR IGNORE INTO business_days (day, closed_at) VALUES (?, ?)",
        [(day, iso(datetime.fromisoformat(day).replace(hour=22, tzinfo=tz))) for day in past],
    )
    return sales


def open_demo(workdir: Path, now: datetime) -> tuple[Config, Path]:
    """The demo store in `workdir`, seeded once (a second start in the same dir keeps its ledger)."""
    path = prepare_dir(workdir)
    cfg = config_mod.load(path)
    mark = workdir / SEEDED_MARK
    if not mark.exists():
        service = Loyalty.open(cfg)
        try:
            n = seed(service, now)
        finally:
            service.close()
        mark.write_text(f"{len(MEMBERS)} members, {n} sales, seeded as of {now.isoformat()}\n", encoding="utf-8")
    return cfg, path
