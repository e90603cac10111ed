"""Applying an Outcome: the case change, its events and the replies it plans, in one transaction.

Used for incoming mail and for staff decisions alike. Never sends: mails go to the outbox with
their Message-ID and send time fixed here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mailbot.context import Context
from mailbot.mail.compose import OutgoingAttachment, compose, new_message_id
from mailbot.outcome import Outcome, Reply
from mailbot.states import check_transition
from mailbot.store.registers import register_grid_code, register_operator
from mailbot.text import format_case_number

log = logging.getLogger(__name__)

AUTOMATIC_KINDS = frozenset(
    {"receipt", "correction", "guidance", "held", "refusal", "roadmap_to_ministry"}
)


@dataclass(frozen=True)
class Thread:
    """What a reply answers: the participant's mail, when there is one."""

    message_id: str | None = None
    references: tuple[str, ...] = ()
    recipient: str | None = None
    recipient_name: str = ""
    subject: str = ""
    mailbox_address: str | None = None


def base_context(ctx: Context, case: dict[str, Any], thread: Thread) -> dict[str, Any]:
    routing = ctx.routing
    return {
        "case": case,
        "case_number": format_case_number(case["id"]),
        "procedure_name": routing.name_of(case["procedure"]),
        "recipient_name": thread.recipient_name,
        "original_subject": thread.subject,
        "now": ctx.now(),
        "sender_name": ctx.config.outgoing.from_name,
        "addresses": {box.local_part: box.address for box in ctx.config.mailboxes},
        "accepted_subjects": [
            {"name": rule.name, "subject": rule.subject, "address": ctx.address_for(rule.mailbox)}
            for rule, _ in routing.subjects
        ],
    }


def send_time(ctx: Context, reply: Reply, now: datetime) -> datetime:
    if not reply.window:
        return now
    return ctx.calendar.window_open(now)


def plan_reply(
    ctx: Context, case: dict[str, Any], reply: Reply, thread: Thread, now: datetime
) -> int | None:
    """Render and queue one mail. Returns the outbox id, or None when the per-sender budget of
    automatic replies for the day is spent (two robots must never ping-pong)."""
    recipient = (reply.to or thread.recipient or case.get("sender") or "").lower()
    if not recipient:
        ctx.store.add_event(
            case["id"], now, "bot", "reply_skipped", kind=reply.kind, why="no recipient"
        )
        return None
    if reply.kind in AUTOMATIC_KINDS:
        start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        sent_today = ctx.store.auto_replies_since(recipient, start_of_day)
        if sent_today >= ctx.config.limits.auto_replies_per_sender_per_day:
            ctx.store.add_event(
                case["id"],
                now,
                "bot",
                "reply_suppressed",
                kind=reply.kind,
                why=f"{sent_today} automatic replies to {recipient} today",
            )
            return None
    context = base_context(ctx, case, thread) | reply.context
    subject, body = ctx.renderer.mail(reply.template, context)
    message_id = new_message_id(ctx.config.message_id_domain, case["id"])
    from_addr = thread.mailbox_address or ctx.address_for(
        ctx.routing.get(case["procedure"]).mailbox if ctx.routing.get(case["procedure"]) else "code"
    )
    raw = compose(
        from_addr=from_addr,
        from_name=ctx.config.outgoing.from_name,
        to=recipient,
        subject=subject,
        body=body,
        message_id=message_id,
        date=now,
        in_reply_to=thread.message_id if reply.in_reply else None,
        references=thread.references if reply.in_reply else (),
        charset=ctx.config.outgoing.charset,
        attachments=reply.attachments,
    )
    outbox_id = ctx.store.plan_mail(
        case_id=case["id"],
        kind=reply.kind,
        message_id=message_id,
        recipient=recipient,
        subject=subject,
        raw=raw,
        now=now,
        send_at=send_time(ctx, reply, now),
    )
    ctx.store.add_event(
        case["id"],
        now,
        "bot",
        "mail_planned",
        kind=reply.kind,
        to=recipient,
        message_id=message_id,
        subject=subject,
    )
    return outbox_id


def plan_staff_mail(
    ctx: Context,
    kind: str,
    recipient: str,
    subject: str,
    body: str,
    now: datetime,
    *,
    html: str | None = None,
    attachments: tuple[OutgoingAttachment, ...] = (),
) -> int:
    """Queue a mail to staff (report, digest): no case, no thread, sent at once."""
    message_id = new_message_id(ctx.config.message_id_domain, None)
    raw = compose(
        from_addr=ctx.address_for("code"),
        from_name=ctx.config.outgoing.from_name,
        to=recipient,
        subject=subject,
        body=body,
        message_id=message_id,
        date=now,
        charset="utf-8",
        attachments=attachments,
        auto_submitted="auto-generated",
        html=html,
    )
    return ctx.store.plan_mail(
        case_id=None,
        kind=kind,
        message_id=message_id,
        recipient=recipient,
        subject=subject,
        raw=raw,
        now=now,
        send_at=now,
    )


def apply_outcome(
    ctx: Context,
    outcome: Outcome,
    *,
    case_id: int | None,
    procedure: str,
    thread: Thread,
    actor: str,
    now: datetime,
    new_case_fields: dict[str, Any] | None = None,
    planned: list[int] | None = None,
) -> int:
    """Write the outcome; the caller holds the transaction. Returns the case id; the outbox ids
    of the mails it planned are appended to `planned` when the caller passes a list."""
    store = ctx.store
    problems = [p.as_dict() for p in outcome.problems]
    changes: dict[str, Any] = {"status": outcome.status, "problems": problems}
    if outcome.operator_code:
        changes["operator_code"] = outcome.operator_code
    if outcome.source_id:
        changes["source_id"] = outcome.source_id
    if outcome.reason is not None:
        changes["reason"] = outcome.reason
    if outcome.complete_on:
        changes["completed_at"] = outcome.complete_on
    if outcome.due:
        changes["due"] = outcome.due
    if case_id is None:
        fields = {"procedure": procedure, **(new_case_fields or {}), **changes}
        fields["data"] = outcome.data
        case_id = store.create_case(now, **fields)
        store.add_event(case_id, now, actor, "opened", procedure=procedure, status=outcome.status)
    else:
        before = store.case(case_id)
        assert before is not None
        check_transition(before["status"], outcome.status)
        data = before["data"] | outcome.data
        store.update_case(case_id, now, data=data, **changes)
        if before["status"] != outcome.status:
            store.add_event(case_id, now, actor, "status", old=before["status"], new=outcome.status)
    if outcome.register_operator:
        register_operator(store, outcome.register_operator, now)
    if outcome.register_grid_code:
        register_grid_code(store, *outcome.register_grid_code, now)
    if problems:
        store.add_event(case_id, now, actor, "problems", problems=problems)
    for kind, detail in outcome.events:
        store.add_event(case_id, now, actor, kind, **detail)
    case = store.case(case_id)
    assert case is not None
    for reply in outcome.replies:
        outbox_id = plan_reply(ctx, case, reply, thread, now)
        if outbox_id is not None and planned is not None:
            planned.append(outbox_id)
    return case_id


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4 … minutes, at most an hour between tries."""
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))
