"""Staff decisions (`mailbot decide`, and rows of the report workbook): the procedure says what
follows, the planner writes it, all in one transaction with who decided recorded."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from mailbot.context import Context
from mailbot.errors import DecisionError
from mailbot.planner import Thread, apply_outcome
from mailbot.procedures import registry
from mailbot.text import format_case_number


@dataclass(frozen=True)
class DecisionResult:
    case_id: int
    action: str
    status: str
    mails: int


def staff_name(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MAILBOT_STAFF") or getpass.getuser()


def case_thread(ctx: Context, case_id: int) -> Thread:
    """Answer in the participant's own thread: their latest mail on the case."""
    row = ctx.store.execute(
        "SELECT raw, message_id, sender, subject, mailbox FROM messages"
        " WHERE case_id = ? AND state = 'done' ORDER BY id DESC LIMIT 1",
        (case_id,),
    ).fetchone()
    case = ctx.store.case(case_id) or {}
    if row is None:
        return Thread(
            recipient=case.get("sender"),
            recipient_name=case.get("sender_name") or "",
            subject=case.get("subject") or "",
            mailbox_address=case.get("mailbox"),
        )
    from mailbot.parse import parse

    mail = parse(row["raw"])
    return Thread(
        message_id=mail.message_id,
        references=mail.references,
        recipient=case.get("sender") or mail.from_addr,
        recipient_name=case.get("sender_name") or mail.from_name,
        subject=mail.subject,
        mailbox_address=row["mailbox"],
    )


def decide(
    ctx: Context,
    case_id: int,
    action: str,
    arg: str | None = None,
    reason: str | None = None,
    *,
    by: str | None = None,
    expected_version: int | None = None,
) -> DecisionResult:
    now = ctx.now()
    actor = f"staff:{staff_name(by)}"
    with ctx.store.transaction():
        case = ctx.store.case(case_id)
        if case is None:
            raise DecisionError(f"no case {format_case_number(case_id)}")
        if expected_version is not None and case["version"] != expected_version:
            raise DecisionError(
                f"{format_case_number(case_id)} changed since the report was made"
                f" (version {expected_version} → {case['version']}): not applied"
            )
        handler = registry(ctx).get(case["procedure"])
        if handler is None:
            raise DecisionError(f"no decisions for procedure {case['procedure']}")
        outcome = handler.decide(case, action, arg, reason, ctx)
        before = ctx.store.execute("SELECT count(*) FROM outbox").fetchone()[0]
        apply_outcome(
            ctx,
            outcome,
            case_id=case_id,
            procedure=case["procedure"],
            thread=case_thread(ctx, case_id),
            actor=actor,
            now=now,
        )
        ctx.store.add_event(case_id, now, actor, "decision", action=action, arg=arg, reason=reason)
        mails = ctx.store.execute("SELECT count(*) FROM outbox").fetchone()[0] - before
    return DecisionResult(case_id, action, outcome.status, mails)
