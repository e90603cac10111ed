"""`mailbot retry CASE|--quarantined`: take set-aside mails through the pipeline again, after
a fix (a new release that reads them, a rule changed, a limit raised).

The mails go back to the queue as if just stored; the case that held them is closed with a
`retried` event pointing on, so nothing is lost and nothing is answered twice.
"""

from __future__ import annotations

from mailbot.context import Context
from mailbot.errors import MailbotError
from mailbot.intake.pipeline import Result
from mailbot.intake.runner import process_pending
from mailbot.states import Status
from mailbot.text import format_case_number

RETRIED = (Status.QUARANTINED, Status.HELD)


def requeue(ctx: Context, case_id: int | None) -> list[int]:
    """Put back the mails of one case (or of every quarantined mail); returns their rows."""
    store = ctx.store
    if case_id is not None:
        case = store.case(case_id)
        if case is None:
            raise MailbotError(f"no case {format_case_number(case_id)}")
        if case["status"] not in RETRIED:
            raise MailbotError(
                f"{format_case_number(case_id)} is {case['status']}: only a quarantined or"
                " held case is retried (its mail was set aside)"
            )
    rows = store.messages_to_retry(case_id)
    if not rows:
        raise MailbotError(
            "no mail to retry" + (f" on {format_case_number(case_id)}" if case_id else "")
        )
    now = ctx.now()
    with store.transaction():
        for message_row, old_case in rows:
            store.requeue_message(message_row)
            case = store.case(old_case) if old_case else None
            if case is None:
                continue
            store.add_event(old_case, now, "bot", "retried", message=message_row)
            if case["status"] in RETRIED:
                store.update_case(old_case, now, status=Status.CLOSED)
                store.add_event(old_case, now, "bot", "status", old=case["status"], new="closed")
    return [message_row for message_row, _ in rows]


def retry(ctx: Context, case_id: int | None) -> list[Result]:
    requeue(ctx, case_id)
    return process_pending(ctx)
