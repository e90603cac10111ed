"""The assessment notices we sent (アセスメント結果通知書): what objections are matched against.

The objection window starts when the outbox actually delivers the notice (outbox/notified.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailbot.outbox.notified import NOTICE_KINDS, OBJECTION_WINDOW_BUSINESS_DAYS
from mailbot.store import Store

__all__ = ["NOTICE_KINDS", "OBJECTION_WINDOW_BUSINESS_DAYS"]


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


def latest_notice(store: Store, kind: str, source_id: str) -> dict[str, Any] | None:
    return store.latest_notice(kind, source_id)
