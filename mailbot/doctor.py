"""`mailbot doctor`: what an operator checks before trusting the desk, in one command: the
configuration and rules load, the servers answer, the database is sound, and nothing is stuck.
`mailbot backup`: a consistent copy of the database while `mailbot run` keeps working."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiosmtplib

from mailbot.config import MailboxConfig
from mailbot.context import Context
from mailbot.errors import MailbotError

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


def _rules(ctx: Context) -> list[Check]:
    from mailbot.bodyfields import load_body_fields
    from mailbot.jobs import load_schedule
    from mailbot.licenses import load_license_table
    from mailbot.market import load_market
    from mailbot.notice_pdf import _register_font, load_operator
    from mailbot.roadmap import load_roadmap_rules
    from mailbot.trust import load_trust_rules
    from mailbot.workbook import load_form_rules

    rules = ctx.config.rules_dir
    out = []
    loaders = {
        "forms.toml": lambda: load_form_rules(rules / "forms.toml"),
        "licenses.toml": lambda: load_license_table(rules / "licenses.toml"),
        "body_fields.toml": lambda: load_body_fields(rules / "body_fields.toml"),
        "roadmap.toml": lambda: load_roadmap_rules(rules / "roadmap.toml"),
        "schedule.toml": lambda: load_schedule(rules / "schedule.toml"),
        "trust.toml": lambda: load_trust_rules(rules),
    }
    for name, load in loaders.items():
        try:
            load()
            out.append(Check(f"rules/{name}", OK, "loads"))
        except MailbotError as exc:
            out.append(Check(f"rules/{name}", FAIL, str(exc)))
    try:
        market = load_market(rules / "market.toml")
        status = WARN if market.example else OK
        detail = "EXAMPLE values (example = true): replace before real assessments"
        out.append(Check("rules/market.toml", status, detail if market.example else "loads"))
    except MailbotError as exc:
        out.append(Check("rules/market.toml", FAIL, str(exc)))
    try:
        operator = load_operator(rules / "operator.toml", ctx.address_for("youryou_rikuase_long"))
        font = _register_font(operator.fonts)
        out.append(Check("notice font", OK, font))
    except MailbotError as exc:
        out.append(Check("notice font", FAIL, str(exc)))
    return out


def _database(ctx: Context) -> list[Check]:
    store = ctx.store
    result = store.execute("PRAGMA quick_check").fetchone()[0]
    out = [Check("database integrity", OK if result == "ok" else FAIL, f"{store.path}: {result}")]
    now = ctx.now().isoformat(timespec="seconds")
    oldest = store.execute(
        "SELECT count(*), min(received_at) FROM messages WHERE state = 'stored'"
    ).fetchone()
    out.append(
        Check(
            "unprocessed mail",
            OK if oldest[0] == 0 else WARN,
            "none" if oldest[0] == 0 else f"{oldest[0]} waiting, oldest stored {oldest[1]}",
        )
    )
    due = store.execute(
        "SELECT count(*), min(send_at) FROM outbox WHERE state = 'pending' AND send_at <= ?",
        (now,),
    ).fetchone()
    out.append(
        Check(
            "unsent replies",
            OK if due[0] == 0 else WARN,
            "none due" if due[0] == 0 else f"{due[0]} due, oldest due since {due[1]}",
        )
    )
    failed = store.execute(
        "SELECT count(*) FROM outbox WHERE state IN ('failed', 'bounced')"
    ).fetchone()[0]
    out.append(
        Check(
            "undeliverable replies",
            OK if failed == 0 else WARN,
            f"{failed} (staff were told; see `mailbot cases`)" if failed else "none",
        )
    )
    return out


def _mailbox(box: MailboxConfig) -> Check:
    name = f"mailbox {box.address}"
    if box.backend == "maildir":
        assert box.path is not None
        ok = (box.path / "new").is_dir()
        return Check(
            name,
            OK if ok else WARN,
            f"Maildir {box.path}" + ("" if ok else " (created on first run)"),
        )
    from mailbot.runner import open_mailbox

    try:
        mailbox = open_mailbox(box)
        try:
            detail = mailbox.probe()  # type: ignore[attr-defined]
        finally:
            mailbox.close()
        return Check(name, OK, f"imap {box.host}:{box.port} {detail}")
    except (MailbotError, OSError) as exc:
        return Check(name, FAIL, f"imap {box.host}:{box.port}: {exc}")


def _outgoing(ctx: Context) -> Check:
    cfg = ctx.config.outgoing
    if cfg.backend == "maildir":
        return Check("outgoing", OK, f"Maildir {cfg.path}")

    async def probe() -> str:
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.security == "ssl",
            start_tls=cfg.security == "starttls",
            timeout=min(cfg.timeout, 15),
        )
        await client.connect()
        try:
            if cfg.username and cfg.password is not None:
                await client.login(cfg.username, cfg.password)
            return "connected" + (" and logged in" if cfg.username else "")
        finally:
            await client.quit()

    try:
        return Check("outgoing", OK, f"smtp {cfg.host}:{cfg.port}: {asyncio.run(probe())}")
    except (aiosmtplib.SMTPException, OSError) as exc:
        return Check("outgoing", FAIL, f"smtp {cfg.host}:{cfg.port}: {exc}")


def run_checks(ctx: Context, servers: bool = True) -> list[Check]:
    checks = [Check("configuration", OK, "loads"), *_rules(ctx), *_database(ctx)]
    if servers:
        checks += [_mailbox(box) for box in ctx.config.mailboxes]
        checks.append(_outgoing(ctx))
    return checks


def backup(ctx: Context, target: Path) -> int:
    """SQLite's online backup: a consistent snapshot even while another process writes.
    Returns the size in bytes of the copy, which is checked before this returns."""
    if target.exists():
        raise MailbotError(f"{target}: exists; give a new file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    copy = sqlite3.connect(target)
    try:
        ctx.store.conn.backup(copy, pages=1024)
        result = copy.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        copy.close()
    if result != "ok":
        raise MailbotError(f"{target}: the copy failed its integrity check: {result}")
    return target.stat().st_size


def stamp(now: datetime) -> str:
    return now.strftime("%Y%m%d-%H%M%S")
