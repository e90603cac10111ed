"""A mailbot desk on a real SQLite file under tmp_path, with a clock the test sets.

The embedded default configuration is used as shipped (Maildir in and out), rooted at the test's
own directory, so what runs here is what `scripts/demo` runs.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path

from mailbot.clock import Clock, parse_instant
from mailbot.config import DEFAULT_CONFIG, parse_config
from mailbot.context import Context

SOURCES_CSV = (
    "電源等識別番号,事業者コード,事業者名称,担当者,連絡者メール,電源等の名称,"
    "容量を提供する電源等の区分,エリア,応札年度,契約容量(kW),供給力提供開始時期,ロードマップ対象\n"
    "L0000000001,A1B2,株式会社髙橋電力,髙橋 一郎,ichiro@takahashi-power.co.jp,髙橋火力発電所1号機,"
    "安定電源,東京,2023,100000,2027,1\n"
    "L0000000002,C3D4,東北グリーン発電株式会社,佐藤 花子,hanako@tohoku-green.jp,みちのくバイオマス,"
    "安定電源,東北,2023,50000,2028,1\n"
)


def make_desk(tmp_path: Path, now: str, extra_config: str = "") -> Context:
    config = parse_config(DEFAULT_CONFIG + extra_config, "<test>", tmp_path)
    return Context.open(config, Clock(parse_instant(now)))


def desk_with_operators(
    tmp_path: Path, now: str = "2026-11-20T10:00", extra_config: str = ""
) -> Context:
    """A desk whose operator register holds the sample operators (髙橋電力 among them)."""
    from mailbot.store.registers import import_operators
    from tests.support.samples import OPERATORS_CSV

    ctx = make_desk(tmp_path, now, extra_config)
    path = tmp_path / "operators.csv"
    path.write_text(OPERATORS_CSV, encoding="utf-8")
    import_operators(ctx.store, path, ctx.now())
    return ctx


def submit_to(ctx: Context, raw: bytes, mailbox: str) -> dict:
    """One raw mail arrived in `mailbox` and processed: its case as stored."""
    from mailbot.intake.runner import process_pending

    ctx.store.save_raw(mailbox, [(f"test:{hashlib.sha256(raw).hexdigest()}", raw)], ctx.now())
    [result] = process_pending(ctx)
    case = ctx.store.case(result.case_id)
    assert case is not None
    return case


def set_now(ctx: Context, now: str) -> datetime:
    ctx.clock = Clock(parse_instant(now))
    return ctx.now()


def load_sources(ctx: Context, tmp_path: Path) -> None:
    from mailbot.store.registers import import_sources

    path = tmp_path / "sources.csv"
    path.write_text(SOURCES_CSV, encoding="utf-8-sig")
    import_sources(ctx.store, path, ctx.now())


def outbox(ctx: Context, kind: str | None = None) -> list[dict]:
    sql = "SELECT * FROM outbox"
    params: tuple = ()
    if kind:
        sql += " WHERE kind = ?"
        params = (kind,)
    return [dict(r) for r in ctx.store.execute(sql + " ORDER BY id", params).fetchall()]


def as_message(raw: bytes) -> Message:
    return message_from_bytes(raw)


def body_text(raw: bytes) -> str:
    """The decoded text/plain body of a mail we composed."""
    msg = message_from_bytes(raw)
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True) or b""
            return payload.decode(part.get_content_charset() or "utf-8")
    return ""
