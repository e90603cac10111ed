"""A notice's objection window (5 business days from the day the notice mail was received, i.e.
the day we sent it; seed 004 §2.1.3, §3.1.6) starts when the outbox actually delivers it, so a
notice held for the sending window does not lose the participant any days. The sender calls
this inside its transaction; it lives with the sender so that sending never reaches up into
longterm/.
"""

from __future__ import annotations

from datetime import datetime

from mailbot.context import Context

NOTICE_KINDS = frozenset({"assessment_notice", "reassessment_notice"})
OBJECTION_WINDOW_BUSINESS_DAYS = 5


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
