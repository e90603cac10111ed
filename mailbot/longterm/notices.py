"""The assessment notices we sent (アセスメント結果通知書): what objections are matched against.

The objection window (5 business days from the day the notice mail was received, i.e. the day
we sent it; seed 004 §2.1.3, §3.1.6) starts when the outbox actually delivers the notice, so a
notice held for the sending window does not lose the participant any days.
"""

from __future__ import annotations

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
    return store.insert_notice(
        kind=kind,
        case_id=case_id,
        source_id=source_id,
        operator_code=operator_code,
        result=result,
        data=data,
        now=now,
    )


def attach_message(store: Store, notice_id: int, message_id: str) -> None:
    store.attach_notice_message(notice_id, message_id)


def mark_notified(ctx: Context, message_id: str, sent_at: datetime) -> None:
    """Called inside the sender's transaction when a notice mail went out."""
    row = ctx.store.notice_sent_as(message_id)
    if row is None:
        return
    day = sent_at.date()
    deadline = ctx.business_days_after(day, OBJECTION_WINDOW_BUSINESS_DAYS)
    ctx.store.set_notice_notified(row["id"], day, deadline)
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
    return store.latest_notice(kind, source_id)
