"""The assessment notices we sent (アセスメント結果通知書): what objections are matched against.

The objection window (5 business days from the day the notice mail was received, i.e. the day
we sent it; seed 004 §2.1.3, §3.1.6) starts when the outbox actually delivers the notice, so a
notice held for the sending window does not lose the participant any days.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mailbot.context import Context
from mailbot.store.sqlite import Store

NOTICE_KINDS = frozenset({"assessment_notice", "reassessment_notice"})
OBJECTION_WINDOW_BUSINESS_DAYS = 5


def create_notice(
    store: Store,
    *,
    kind: str,
    case_id: int,
    source_id: str,
    operator_code: str,
    result: str,
    data: dict[str, Any],
    now: datetime,
) -> int:
    cur = store.execute(
        "INSERT INTO notices (kind, case_id, source_id, operator_code, result, data, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            kind,
            case_id,
            source_id,
            operator_code,
            result,
            json.dumps(data, ensure_ascii=False, default=str),
            now.isoformat(timespec="seconds"),
        ),
    )
    return int(cur.lastrowid or 0)


def attach_message(store: Store, notice_id: int, message_id: str) -> None:
    store.execute("UPDATE notices SET message_id = ? WHERE id = ?", (message_id, notice_id))


def mark_notified(ctx: Context, message_id: str, sent_at: datetime) -> None:
    """Called inside the sender's transaction when a notice mail went out."""
    row = ctx.store.execute(
        "SELECT id, case_id FROM notices WHERE message_id = ?", (message_id,)
    ).fetchone()
    if row is None:
        return
    day = sent_at.date()
    deadline = ctx.business_days_after(day, OBJECTION_WINDOW_BUSINESS_DAYS)
    ctx.store.execute(
        "UPDATE notices SET notified_on = ?, objection_deadline = ? WHERE id = ?",
        (day.isoformat(), deadline.isoformat(), row["id"]),
    )
    ctx.store.update_case(row["case_id"], sent_at, due=deadline)
    ctx.store.add_event(
        row["case_id"],
        sent_at,
        "bot",
        "notice_sent",
        notice=row["id"],
        objection_deadline=deadline.isoformat(),
    )


def latest_notice(store: Store, kind: str, source_id: str) -> dict[str, Any] | None:
    row = store.execute(
        "SELECT * FROM notices WHERE kind = ? AND source_id = ? ORDER BY id DESC LIMIT 1",
        (kind, source_id),
    ).fetchone()
    if row is None:
        return None
    out = dict(row)
    out["data"] = json.loads(out["data"])
    return out
