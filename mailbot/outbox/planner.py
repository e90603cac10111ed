"""Planning: an Outcome becomes an Effect (the case change, its events and the replies it
plans, rendered) from reads alone; the store writes the Effect in one call.

Used for incoming mail and for staff decisions alike. Never sends: mails go to the outbox with
their Message-ID and send time fixed here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbot.context import Context
from mailbot.identity import Window, load_window
from mailbot.mail.compose import OutgoingAttachment, compose, new_message_id
from mailbot.mail.quoting import LEFT_OUT, quotable
from mailbot.mail.trust import load_trust_rules
from mailbot.outcome import Outcome, Reply
from mailbot.states import check_transition, mail_kind
from mailbot.store.effect import CaseWrite, Effect, PlannedMail, case_after
from mailbot.text import format_case_number

log = logging.getLogger(__name__)

AUTOMATIC_KINDS = frozenset(
    {
        "receipt",
        "correction",
        "guidance",
        "topic_guidance",
        "held",
        "refusal",
        "roadmap_to_ministry",
    }
)
# Context keys whose values the desk wrote: what staff typed (a decision's reason, a reply, an
# inquiry) and the desk's own words (its window and signature, addresses, accepted subjects).
# Quoted as written in every mail; everything else a context holds may be the sender's.
DESK_WRITTEN = frozenset(
    {"text", "reason", "inquiry", "window", "sender_name", "addresses", "accepted_subjects"}
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
    dmarc_pass: bool = False


def case_thread(ctx: Context, case_id: int) -> Thread:
    """Answer in the participant's own thread: their latest mail on the case, as the store
    kept it when the mail was processed."""
    row = ctx.store.latest_done_message(case_id)
    case = ctx.store.case(case_id) or {}
    recipient = case.get("sender") or (row["sender"] if row else None)
    dmarc_pass = _dmarc_passed(ctx, case_id, recipient or "")
    if row is None:
        return Thread(
            recipient=recipient,
            recipient_name=case.get("sender_name") or "",
            subject=case.get("subject") or "",
            mailbox_address=case.get("mailbox"),
            dmarc_pass=dmarc_pass,
        )
    return Thread(
        message_id=row["message_id"],
        references=tuple(row["references"]),
        recipient=recipient,
        recipient_name=case.get("sender_name") or row["sender_name"] or "",
        subject=row["subject"] or "",
        mailbox_address=row["mailbox"],
        dmarc_pass=dmarc_pass,
    )


def _dmarc_passed(ctx: Context, case_id: int, sender: str) -> bool:
    """Whether the latest mail `sender` wrote on the case passed our MTA's DMARC check for
    its From domain (recorded on its `mail_received` event when it was processed)."""
    for event in reversed(ctx.store.events(case_id)):
        if event["kind"] == "mail_received" and event["detail"].get("sender") == sender:
            return bool(event["detail"].get("dmarc_pass"))
    return False


def verified(ctx: Context, thread: Thread, recipient: str) -> bool:
    """A recipient the desk may quote: the author of the mail answered (never another
    address), whose mail our MTA's DMARC check passed for its From domain, at a domain in the
    operators' register (ドメイン名) that is no free-mail domain. Anyone else may be a third
    party whose address a stranger wrote in From:."""
    if not thread.dmarc_pass or recipient != (thread.recipient or "").lower():
        return False
    domain = recipient.rsplit("@", 1)[-1]
    if load_trust_rules(ctx.config.rules_dir).is_free_mail(domain):
        return False
    return ctx.store.operator_domain_registered(domain)


def base_context(
    ctx: Context, case: dict[str, Any], thread: Thread, from_addr: str
) -> dict[str, Any]:
    """What every case mail's template may use. `sender_name` and `window` are the window
    (窓口) the mailbox `from_addr` signs as (rules/operator.toml)."""
    routing = ctx.routing
    window = _window_of(ctx, from_addr)
    return {
        "case": case,
        "case_number": format_case_number(case["id"]),
        "procedure_name": routing.name_of(case["procedure"]),
        "recipient_name": thread.recipient_name,
        "original_subject": thread.subject,
        "now": ctx.now(),
        "sender_name": window.name,
        "window": {
            "name": window.name,
            "signature": list(window.signature),
            "address": from_addr,
        },
        "addresses": {box.local_part: box.address for box in ctx.config.mailboxes},
        "accepted_subjects": [
            {"name": rule.name, "subject": rule.subject, "address": ctx.address_for(rule.mailbox)}
            for rule, _ in routing.subjects
        ],
    }


def _window_of(ctx: Context, from_addr: str) -> Window:
    box = ctx.config.mailbox_for(from_addr)
    return load_window(ctx.config.rules_dir, box.local_part if box else "code")


def render_context(
    ctx: Context,
    case: dict[str, Any],
    reply: Reply,
    thread: Thread,
    recipient: str,
    from_addr: str,
) -> dict[str, Any]:
    """The one place a case mail's context is built. For a recipient the desk has not
    `verified`, nothing of the sender's goes out as written: their display name and subject
    are left out and every link or mail address in what is quoted (attachment names, form
    values, problem messages that echo them) is replaced (`mail.quoting.quotable`); what
    the desk wrote (`DESK_WRITTEN`: what staff typed, its own signature) stays."""
    context = base_context(ctx, case, thread, from_addr) | reply.context
    if verified(ctx, thread, recipient):
        return context
    # a name the reply brings itself is the register's (an objection result addressed to the
    # source's registered contact), not what the sender wrote in From:
    left_out = [key for key in LEFT_OUT if key not in reply.context]
    return quotable(context, ctx.config.own_addresses, DESK_WRITTEN, left_out)


def send_time(ctx: Context, reply: Reply, now: datetime) -> datetime:
    if not reply.window:
        return now
    return ctx.calendar.window_open(now)


def reply_into(
    ctx: Context, effect: Effect, case: dict[str, Any], reply: Reply, thread: Thread
) -> PlannedMail | None:
    """Render and compose one mail into `effect`. None when it has no recipient, when the
    per-sender budget of automatic replies for the day is spent (two robots must never
    ping-pong) or when the case or its thread reached its automatic mails (`_loop_capped`);
    the effect then carries an event that says so. The context is `render_context`'s."""
    now = effect.now
    recipient = (reply.to or thread.recipient or case.get("sender") or "").lower()
    cc = tuple(dict.fromkeys(a.lower() for a in reply.cc if a and a.lower() != recipient))
    if not recipient:
        effect.event(case["id"], "bot", "reply_skipped", kind=reply.kind, why="no recipient")
        return None
    if reply.kind in AUTOMATIC_KINDS:
        start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        sent_today = ctx.store.auto_replies_since(recipient, start_of_day)
        sent_today += effect.planned_to(recipient)
        if sent_today >= ctx.config.limits.auto_replies_per_sender_per_day:
            effect.event(
                case["id"],
                "bot",
                "reply_suppressed",
                kind=reply.kind,
                why=f"{sent_today} automatic replies to {recipient} today",
            )
            return None
        if _loop_capped(ctx, effect, case, reply, recipient):
            return None
    from_addr = thread.mailbox_address or ctx.address_for(
        ctx.routing.get(case["procedure"]).mailbox if ctx.routing.get(case["procedure"]) else "code"
    )
    context = render_context(ctx, case, reply, thread, recipient, from_addr)
    subject, body = ctx.renderer.mail(reply.template, context)
    mail = _planned(
        ctx,
        case["id"],
        reply.kind,
        from_addr,
        recipient,
        subject,
        body,
        send_time(ctx, reply, now),
        now=now,
        in_reply_to=thread.message_id if reply.in_reply else None,
        references=thread.references if reply.in_reply else (),
        charset=ctx.config.outgoing.charset,
        attachments=reply.attachments,
        cc=cc,
    )
    effect.mails.append(mail)
    effect.event(
        case["id"],
        "bot",
        "mail_planned",
        kind=reply.kind,
        to=recipient,
        **({"cc": list(cc)} if cc else {}),
        message_id=mail.message_id,
        subject=subject,
    )
    return mail


LOOP_TOLD = "staff_told_loop"
EVER = datetime(1970, 1, 1, tzinfo=UTC)


def thread_root(case: dict[str, Any]) -> int:
    """The case a thread began with: a case opened by a mail written in another case's thread
    keeps that case's root in its data."""
    return int((case.get("data") or {}).get("thread_root") or case["id"])


def _loop_capped(
    ctx: Context, effect: Effect, case: dict[str, Any], reply: Reply, recipient: str
) -> bool:
    """Whether the automatic mails on this case, or in its thread, reached the limits of
    rules/trust.toml `[loops]`, whoever they went to (SPEC §8: no loops). A robot answering
    each of our mails from a new address is a new stranger each time, with a case and a daily
    budget of its own; only these counts end it. The mail is then not planned (an event says
    why) and staff are told once per thread, and by at most ALERTS_PER_DAY such mails a day
    (a stranger can start threads too; past it the events on the cases say what happened)."""
    rules = load_trust_rules(ctx.config.rules_dir)
    root = thread_root(case)
    on_case, in_thread = ctx.store.automatic_mails(AUTOMATIC_KINDS, case["id"], root)
    planned = [m for m in effect.mails if m.kind in AUTOMATIC_KINDS]
    on_case += sum(m.case_id == case["id"] for m in planned)
    in_thread += len(planned)
    if on_case < rules.automatic_per_case and in_thread < rules.automatic_per_thread:
        return False
    why = (
        f"{on_case} automatic mails on this case (limit {rules.automatic_per_case})"
        if on_case >= rules.automatic_per_case
        else f"{in_thread} automatic mails in the thread of "
        f"{format_case_number(root)} (limit {rules.automatic_per_thread})"
    )
    effect.event(case["id"], "bot", "reply_suppressed", kind=reply.kind, why=why)
    told = [e for e in effect.events if e.kind == LOOP_TOLD]
    if any(e.case_id == root for e in told) or ctx.store.count_events(LOOP_TOLD, EVER, root):
        return True
    if ctx.store.count_events(LOOP_TOLD, effect.now - ALERT_INTERVAL) + len(told) >= ALERTS_PER_DAY:
        effect.event(
            root, "bot", "staff_alert_withheld", reason=f"{ALERTS_PER_DAY} alerts within a day"
        )
        return True
    subject, body = ctx.renderer.mail(
        "staff_loop_stopped",
        {
            "case_number": format_case_number(root),
            "this_case_number": format_case_number(case["id"]),
            "recipient": recipient,
            "why": why,
        },
    )
    effect.mails += [
        staff_mail(ctx, "staff_loop_stopped", address, subject, body, effect.now)
        for address in ctx.config.staff_addresses
    ]
    effect.event(root, "bot", LOOP_TOLD, case=case["id"], why=why)
    return True


def plan_reply(
    ctx: Context, case: dict[str, Any], reply: Reply, thread: Thread, now: datetime
) -> int | None:
    """Plan one mail on its own (a reminder, a staff reply). Returns the outbox id, or None
    when it was skipped or suppressed (`reply_into`)."""
    effect = Effect(now)
    planned = reply_into(ctx, effect, case, reply, thread)
    ids = ctx.store.apply(effect)
    return ids[0] if planned is not None else None


def staff_mail(
    ctx: Context,
    kind: str,
    recipient: str,
    subject: str,
    body: str,
    now: datetime,
    *,
    html: str | None = None,
    attachments: tuple[OutgoingAttachment, ...] = (),
) -> PlannedMail:
    """A mail to staff (report, digest, a reply undeliverable): no case, no thread, sent at
    once."""
    return _planned(
        ctx,
        None,
        kind,
        ctx.address_for("code"),
        recipient,
        subject,
        body,
        now,
        now=now,
        charset="utf-8",
        attachments=attachments,
        auto_submitted="auto-generated",
        html=html,
    )


def _planned(
    ctx: Context,
    case_id: int | None,
    kind: str,
    from_addr: str,
    recipient: str,
    subject: str,
    body: str,
    send_at: datetime,
    *,
    now: datetime,
    **options: Any,
) -> PlannedMail:
    """One mail composed under a Message-ID fixed now (`options`: compose's own keywords).
    The From header's name is `[outgoing] from_name` when set, else the window the mailbox
    `from_addr` signs as."""
    message_id = new_message_id(ctx.config.message_id_domain, case_id)
    raw = compose(
        from_addr=from_addr,
        from_name=ctx.config.outgoing.from_name or _window_of(ctx, from_addr).name,
        to=recipient,
        subject=subject,
        body=body,
        message_id=message_id,
        date=now,
        **options,
    )
    return PlannedMail(case_id, kind, message_id, recipient, subject, raw, send_at)


STAFF_TOLD = "staff_told_undeliverable"
ALERT_INTERVAL = timedelta(days=1)
ALERTS_PER_CASE = 1
ALERTS_PER_DAY = 10


def undeliverable_into(
    effect: Effect, ctx: Context, row: dict[str, Any] | None, error: str
) -> None:
    """A reply refused for good (5xx, or bounced later) is told to staff at once: nobody should
    believe a participant was answered when they were not. Never for staff mail itself.
    `row` is the outbox row (`Store.outbox_row`) of the reply.

    At most once per case and ten times over the whole desk in any 24 hours: bounces are a
    stranger's to send (and a flood of forged-From applications brings real ones), and without
    a bound each one mailed every staff address. A second alert for one case adds nothing (its
    participant is one address); past the budget the reply is still marked on its case, where
    `mailbot cases`, the web desk and `mailbot doctor` (undeliverable replies) show it, and the
    withheld alert is an event."""
    if row is None or row["case_id"] is None:
        return
    case_id = row["case_id"]
    since = effect.now - ALERT_INTERVAL
    told = [e for e in effect.events if e.kind == STAFF_TOLD]
    if (
        ctx.store.count_events(STAFF_TOLD, since, case_id) + sum(e.case_id == case_id for e in told)
        >= ALERTS_PER_CASE
    ):
        effect.event(
            case_id,
            "bot",
            "staff_alert_withheld",
            reason="already told about this case within a day",
        )
        return
    if ctx.store.count_events(STAFF_TOLD, since) + len(told) >= ALERTS_PER_DAY:
        effect.event(
            case_id,
            "bot",
            "staff_alert_withheld",
            reason=f"{ALERTS_PER_DAY} alerts already mailed within a day",
        )
        return
    subject, body = ctx.renderer.mail(
        "staff_undeliverable",
        {
            "case_number": format_case_number(case_id),
            "kind": mail_kind(row["kind"]),
            "recipient": row["recipient"],
            "subject": row["subject"],
            "error": error,
            "url": ctx.config.case_url(case_id) or "",
        },
    )
    effect.mails += [
        staff_mail(ctx, "staff_undeliverable", address, subject, body, effect.now)
        for address in ctx.config.staff_addresses
    ]
    effect.event(case_id, "bot", STAFF_TOLD, outbox_id=row["id"])


def outcome_effect(
    ctx: Context,
    outcome: Outcome,
    *,
    case_id: int | None,
    procedure: str,
    thread: Thread,
    actor: str,
    now: datetime,
    new_case_fields: dict[str, Any] | None = None,
) -> Effect:
    """What an outcome writes, decided from reads alone: the case change (a new case under
    the id the store reserves), its events and the replies, rendered. Nothing is written."""
    store = ctx.store
    effect = Effect(
        now,
        register_operator=outcome.register_operator,
        register_grid_code=outcome.register_grid_code,
    )
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
        before = None
        fields = {"procedure": procedure, **(new_case_fields or {}), **changes}
        fields["data"] = outcome.data
        effect.case = CaseWrite(store.next_case_id(), fields, new=True)
        effect.event(
            effect.case.case_id, actor, "opened", procedure=procedure, status=outcome.status
        )
    else:
        before = store.case(case_id)
        assert before is not None
        check_transition(before["status"], outcome.status)
        effect.case = CaseWrite(case_id, {"data": before["data"] | outcome.data, **changes})
        if before["status"] != outcome.status:
            effect.event(case_id, actor, "status", old=before["status"], new=outcome.status)
    case = case_after(before, effect.case, now)
    if problems:
        effect.event(case["id"], actor, "problems", problems=problems)
    for kind, detail in outcome.events:
        effect.event(case["id"], actor, kind, **detail)
    if outcome.linked_cases:
        kind, others = outcome.linked_cases
        for other in others:
            effect.event(other, actor, kind, cases=[format_case_number(case["id"])])
    for reply in outcome.replies:
        reply_into(ctx, effect, case, reply, thread)
    return effect


def apply_outcome(ctx: Context, outcome: Outcome, **where: Any) -> int:
    """`outcome_effect` (same keywords) written in one store call. Returns the case id."""
    effect = outcome_effect(ctx, outcome, **where)
    ctx.store.apply(effect)
    assert effect.case is not None
    return effect.case.case_id


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4 … minutes, at most an hour between tries."""
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))
