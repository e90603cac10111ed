"""One stored raw message → parsed, classified, checked, applied. Every mail ends as a case.

A mail that cannot be parsed, whose handling raises, or whose processing started twice without
finishing (it killed the process) is quarantined with the reason, and the batch goes on. A case
changes only by what a mail carries: a follow-up without a form is a message on the case, and a
stranger's mail on a case is held apart (mailbot/mail/trust.py). Nothing here sends mail.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbot.context import Context
from mailbot.desk.mail_decisions import apply_report_reply, report_reply
from mailbot.errors import QuarantineError, StoreError
from mailbot.forms.fields import find_participation_categories
from mailbot.mail import Mail
from mailbot.mail.loops import NO_SENDER, no_reply_reason
from mailbot.mail.parse import parse
from mailbot.mail.trust import TrustRules, load_trust_rules
from mailbot.outbox.planner import Thread, apply_outcome
from mailbot.outbox.send import tell_staff_undeliverable
from mailbot.outcome import Incoming
from mailbot.procedures import registry
from mailbot.procedures.common import own_text
from mailbot.procedures.forms import held, stranger_held
from mailbot.routing import ThreadHit, classify
from mailbot.states import Status
from mailbot.store import StoredMessage
from mailbot.store.registers import operators_for_sender
from mailbot.text import case_number_in, format_case_number, nfkc, single_line

log = logging.getLogger(__name__)
_OUR_ID = re.compile(rb"<mailbot\.\d+\.[0-9a-f]{32}@[^>\s]+>")
# A mail whose processing started this often without finishing killed the process each time
# (a reader's allocation failure aborts it, no exception reaches us): it is set aside.
MAX_STARTS = 2


@dataclass(frozen=True)
class Result:
    key: str
    procedure: str
    outcome: str
    case_id: int | None
    ms: float = 0.0


def _mailbox_local(ctx: Context, address: str) -> str:
    box = ctx.config.mailbox_for(address)
    return box.local_part if box else address.split("@", 1)[0].lower()


def _thread_for(ctx: Context, mail: Mail) -> ThreadHit | None:
    found = ctx.store.find_thread(mail.thread_ids)
    if found is None:
        number = case_number_in(mail.subject)
        if number is not None and ctx.store.case(number):
            found = (number, None)
    if found is None:
        return None
    case = ctx.store.case(found[0])
    if case is None:
        return None
    return ThreadHit(case_id=found[0], procedure=case["procedure"], outbound_kind=found[1])


_DMARC_FAIL = re.compile(r"\bdmarc\s*=\s*fail\b", re.IGNORECASE)


def dmarc_failed(mail: Mail) -> bool:
    """Our receiving MTA's verdict (the topmost Authentication-Results header, which it adds
    above anything the sender wrote) says the From domain's DMARC check failed."""
    return bool(mail.authentication_results and _DMARC_FAIL.search(mail.authentication_results))


def _thread(mail: Mail, mailbox_address: str) -> Thread:
    return Thread(
        message_id=mail.message_id,
        references=mail.references,
        recipient=mail.from_addr,
        recipient_name=single_line(mail.from_name, 60),
        subject=single_line(mail.subject, 200),
        mailbox_address=mailbox_address,
    )


def _case_fields(mail: Mail, mailbox_address: str, received_at: str) -> dict[str, Any]:
    return {
        "sender": mail.from_addr,
        "sender_name": single_line(mail.from_name, 100),
        "mailbox": mailbox_address,
        "subject": single_line(mail.subject, 300),
        "received_at": received_at,
    }


def process_batch(
    ctx: Context, batch: list[StoredMessage], ready: Sequence[Mail | None] = ()
) -> list[Result]:
    """Group commit: the batch's starts are counted in one commit, then every mail is applied
    in a savepoint of one transaction, so a mail that raises rolls back alone and is
    quarantined, and one COMMIT makes the whole batch durable. A process killed inside the
    batch loses the batch's effects but not its counted starts: the runner then takes those
    mails one at a time (`Store.start_batch`), so only a mail that stops the process twice
    on its own is ever set aside. `ready`
    holds what the read-ahead worker prepared, mail by mail (None: prepare it here)."""
    _count_start(ctx, batch, +1)
    results: list[Result] = []
    try:
        with ctx.store.transaction():
            for n, stored in enumerate(batch):
                results.append(_process_one(ctx, stored, ready[n] if n < len(ready) else None))
    except BaseException:
        _uncount(ctx, batch)
        raise
    return results


def _process_one(ctx: Context, stored: StoredMessage, ready: Mail | None) -> Result:
    started = time.perf_counter()
    try:
        if stored.attempts >= MAX_STARTS:
            raise QuarantineError(
                f"processing of this mail started {stored.attempts} times and never finished"
                " (the process stopped on it); set aside so that the mails behind it go on"
            )
        with ctx.store.transaction():
            result = _process(ctx, stored, ready)
    except StoreError:
        raise
    except Exception as exc:
        reason = _reason(exc)
        log.warning("quarantined %s: %s", stored.key, reason)
        case_id = _quarantine(ctx, stored, reason)
        result = Result(stored.key, "quarantined", reason, case_id, 0.0)
    ms = (time.perf_counter() - started) * 1000
    log.info(
        "mail key=%s procedure=%s outcome=%s case=%s ms=%.1f",
        stored.key,
        result.procedure,
        result.outcome,
        result.case_id,
        ms,
    )
    return Result(result.key, result.procedure, result.outcome, result.case_id, ms)


def _count_start(ctx: Context, batch: list[StoredMessage], step: int) -> None:
    """A mail processed alone counts a start of its own (two, and it is set aside); a batch
    counts only that it was in a batch."""
    if len(batch) == 1:
        with ctx.store.transaction():
            ctx.store.start_attempt(batch[0].id, step)
    else:
        ctx.store.start_batch([stored.id for stored in batch], step)


def _uncount(ctx: Context, batch: list[StoredMessage]) -> None:
    """The run stopped for a reason that is not these mails (the database refused, Ctrl-C):
    the batch rolled back, and its starts must not count towards setting a mail aside."""
    try:
        _count_start(ctx, batch, -1)
    except StoreError:
        log.warning("could not uncount the attempts on %s", ", ".join(s.key for s in batch))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, QuarantineError):
        return exc.reason
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {where.name}:{where.lineno}" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def _quarantine(ctx: Context, stored: StoredMessage, reason: str) -> int:
    now = ctx.now()
    with ctx.store.transaction():
        case_id = ctx.store.create_case(
            now,
            procedure="unrecognized",
            status=Status.QUARANTINED,
            mailbox=stored.mailbox,
            received_at=stored.received_at,
            reason=reason,
        )
        ctx.store.add_event(case_id, now, "bot", "quarantined", reason=reason, key=stored.key)
        ctx.store.finish_message(
            stored.id, state="quarantined", case_id=case_id, outcome=reason, now=now
        )
    return case_id


def content_digest(mail: Mail) -> str:
    """What the mail says, apart from the delivery headers that differ between two copies of
    one mail (the To copy and the Cc copy): sender, subject, body and attachments."""
    digest = hashlib.sha256()
    for part in (mail.from_addr, mail.subject, mail.text):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    for attachment in mail.attachments:
        digest.update(attachment.filename.encode("utf-8", "surrogatepass") + b"\0")
        digest.update(hashlib.sha256(attachment.data).digest())
    return digest.hexdigest()


def _unparseable(mail: Mail) -> str | None:
    return next((d for d in mail.defects if d.startswith("unparseable:")), None)


def _process(ctx: Context, stored: StoredMessage, ready: Mail | None) -> Result:
    limit = ctx.config.limits.max_message_bytes
    if len(stored.raw) > limit:
        raise QuarantineError(f"message of {len(stored.raw)} bytes is over the {limit}-byte limit")
    mail = ready if ready is not None else parse(stored.raw)
    broken = _unparseable(mail)
    if broken:
        raise QuarantineError(f"the mail could not be parsed ({broken.split(':', 1)[1].strip()})")
    workbook = report_reply(ctx, mail)
    if workbook is not None:
        outcome = apply_report_reply(ctx, stored, mail, workbook)
        return Result(stored.key, "staff_decisions", outcome, None)
    now = ctx.now()
    store = ctx.store
    sha = hashlib.sha256(stored.raw).hexdigest()
    digest = content_digest(mail)
    rules = load_trust_rules(ctx.config.rules_dir)
    with store.transaction():
        finish = {
            "message_id": mail.message_id,
            "sender": mail.from_addr,
            "subject": mail.subject,
            "text": mail.text,
            "attachment_names": [a.filename for a in mail.attachments],
            "digest": digest,
        }
        duplicate = store.duplicate_of(stored.id, mail.message_id, mail.from_addr, digest, sha)
        if duplicate is not None:
            store.add_event(
                duplicate, now, "bot", "duplicate", mailbox=stored.mailbox, key=stored.key
            )
            store.finish_message(
                stored.id, state="done", case_id=duplicate, outcome="duplicate", now=now, **finish
            )
            return Result(stored.key, "duplicate", "duplicate", duplicate)
        collision = store.message_id_taken(stored.id, mail.message_id)

        local = _mailbox_local(ctx, stored.mailbox)
        thread_hit = _thread_for(ctx, mail)
        never_answer = ctx.config.own_addresses | frozenset(ctx.config.staff_addresses)
        robot = no_reply_reason(mail, never_answer, ctx.config.message_id_domain, rules)
        if robot:
            case_id = _robot_mail(ctx, stored, mail, robot, thread_hit, now)
            _note_collision(ctx, case_id, collision, mail, now)
            held_for_staff = robot == NO_SENDER
            store.finish_message(
                stored.id,
                state="done",
                case_id=case_id,
                outcome=f"held for staff: {robot}" if held_for_staff else f"not answered: {robot}",
                now=now,
                **finish,
            )
            return Result(stored.key, "held" if held_for_staff else "ignored", robot, case_id)

        classification = classify(ctx.routing, mail.subject, local, thread_hit)
        handler = registry()[classification.procedure]
        case = store.case(classification.case_id) if classification.case_id else None
        incoming = Incoming(
            mail=mail,
            classification=classification,
            received_at=datetime.fromisoformat(stored.received_at),
            mailbox_address=stored.mailbox,
        )
        finished = case is not None and case["status"] in (Status.CLOSED, Status.IGNORED)
        if dmarc_failed(mail):
            checked = handler.check(incoming, ctx, None if finished else case)
            outcome = held(
                case,
                "DMARC 検証に失敗したメールです（差出人のなりすましの可能性）",
                answer=False,
                problems=checked.problems,
                data=checked.data,
            )
        elif finished:
            outcome = held(case, f"完了済みの案件 {format_case_number(case['id'])} への返信です")
        elif case is not None and _message_only(ctx, mail, case):
            if _stranger(ctx, rules, mail, case):
                outcome = stranger_held(case, mail.from_addr)
            else:
                _message_on_case(ctx, stored, mail, case, now)
                _note_collision(ctx, case["id"], collision, mail, now)
                store.finish_message(
                    stored.id,
                    state="done",
                    case_id=case["id"],
                    outcome="message on the case",
                    now=now,
                    **finish,
                )
                return Result(stored.key, classification.procedure, "message", case["id"])
        elif case is not None and _unverified_redirect(rules, mail):
            outcome = held(
                case,
                f"差出人を確認できないメールです（認証結果なし、返信先 {mail.reply_to} が"
                f"差出人 {mail.from_addr} と異なる）。案件 {format_case_number(case['id'])} は"
                "変更していません",
                answer=False,
            )
        else:
            outcome = handler.check(incoming, ctx, case)
        case_id = apply_outcome(
            ctx,
            outcome,
            case_id=outcome.attach_to or (case["id"] if case and not outcome.new_case else None),
            procedure=classification.procedure,
            thread=_thread(mail, stored.mailbox),
            actor="bot",
            now=now,
            new_case_fields=_case_fields(mail, stored.mailbox, stored.received_at),
        )
        store.add_event(
            case_id,
            now,
            "bot",
            "mail_received",
            key=stored.key,
            mailbox=stored.mailbox,
            message_id=mail.message_id,
            sender=mail.from_addr,
            attachments=[a.filename for a in mail.attachments],
            **({"defects": list(mail.defects)} if mail.defects else {}),
        )
        _note_collision(ctx, case_id, collision, mail, now)
        store.finish_message(
            stored.id, state="done", case_id=case_id, outcome=outcome.status, now=now, **finish
        )
    return Result(stored.key, classification.procedure, outcome.status, case_id)


def _note_collision(
    ctx: Context, case_id: int, collision: dict[str, Any] | None, mail: Mail, now: datetime
) -> None:
    """A Message-ID seen before on another mail: this one was stored and checked on its own;
    staff see which earlier mail carried the same id."""
    if collision is not None:
        ctx.store.add_event(
            case_id,
            now,
            "bot",
            "message_id_collision",
            message_id=mail.message_id,
            earlier_message=collision["id"],
            earlier_sender=collision["sender"],
            earlier_case=collision["case_id"],
        )


def _stranger(ctx: Context, rules: TrustRules, mail: Mail, case: dict[str, Any]) -> bool:
    """A mail on a case from someone who is not the case's participant: not the address that
    opened it, not the same organisation's domain (free-mail domains never count), and not a
    registered contact of the case's operator."""
    sender = case.get("sender") or ""
    if not sender or rules.same_party(sender, mail.from_addr):
        return False
    code = case.get("operator_code")
    if code:
        owners = operators_for_sender(ctx.store, mail.from_addr, rules.free_mail)
        if any(op["code"] == code for op in owners):
            return False
    return True


_VERIFIED = re.compile(r"\b(?:dmarc|dkim|spf)\s*=\s*pass\b", re.IGNORECASE)


def _unverified_redirect(rules: TrustRules, mail: Mail) -> bool:
    """A mail whose answers would go elsewhere than its From, with nothing from our MTA that
    vouches for that From: what a spoofed From looks like."""
    if not mail.reply_to or rules.same_party(mail.reply_to, mail.from_addr):
        return False
    return not (mail.authentication_results and _VERIFIED.search(mail.authentication_results))


_NEW_CONTENT = re.compile(r"■")
_THREAD_ANSWERED = frozenset({Status.AWAITING_REPLY})


def _message_only(ctx: Context, mail: Mail, case: dict[str, Any]) -> bool:
    """A mail on an existing case that brings nothing to re-check: no form or document, no
    ■ fields, no 参加区分 in the participant's own text. A question in the receipt's thread
    must not erase the form the case holds (a case waiting for an answer, and an answer to an
    inquiry, are always checked)."""
    if case["status"] in _THREAD_ANSWERED:
        return False
    rule = ctx.routing.get(case["procedure"])
    if rule is not None and rule.thread_only:
        return False
    if any(not a.content_type.lower().startswith("image/") for a in mail.attachments):
        return False
    text = own_text(mail)
    return not (_NEW_CONTENT.search(nfkc(text)) or find_participation_categories(text))


def _message_on_case(
    ctx: Context, stored: StoredMessage, mail: Mail, case: dict[str, Any], now: datetime
) -> None:
    """The mail joins the case's history for staff; the case's status and data stay."""
    ctx.store.add_event(
        case["id"],
        now,
        "bot",
        "participant_message",
        key=stored.key,
        message_id=mail.message_id,
        sender=mail.from_addr,
        subject=single_line(mail.subject, 300),
        text=single_line(own_text(mail), 2000),
        attachments=[single_line(a.filename, 120) for a in mail.attachments],
    )


def _robot_mail(
    ctx: Context,
    stored: StoredMessage,
    mail: Mail,
    reason: str,
    thread_hit: ThreadHit | None,
    now: datetime,
) -> int:
    """Bounces mark the reply they return; other robot mail is kept on its case unanswered."""
    store = ctx.store
    if mail.is_delivery_report:
        for match in _OUR_ID.finditer(stored.raw):
            mid = match.group(0).decode("ascii", "replace")
            hit = store.find_thread([mid])
            if hit:
                bounced = store.mark_bounced(mid, "delivery status report received")
                store.add_event(hit[0], now, "bot", "bounced", message_id=mid, key=stored.key)
                if bounced is not None:
                    tell_staff_undeliverable(
                        ctx, bounced, "配信不能通知（バウンス）を受信しました", now
                    )
                return hit[0]
    held_for_staff = reason == NO_SENDER
    if thread_hit and not held_for_staff:
        store.add_event(thread_hit.case_id, now, "bot", "robot_mail", reason=reason, key=stored.key)
        return thread_hit.case_id
    case_id = store.create_case(
        now,
        procedure="unrecognized",
        status=Status.HELD if held_for_staff else Status.IGNORED,
        sender=mail.from_addr,
        sender_name=single_line(mail.from_name, 100),
        mailbox=stored.mailbox,
        subject=single_line(mail.subject, 300),
        received_at=stored.received_at,
        reason=(
            "差出人アドレスを読み取れないメールです（返信していません。担当者が確認してください）"
            if held_for_staff
            else f"not answered: {reason}"
        ),
    )
    store.add_event(
        case_id,
        now,
        "bot",
        "held" if held_for_staff else "robot_mail",
        reason=reason,
        key=stored.key,
    )
    return case_id
