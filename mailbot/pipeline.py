"""One stored raw message → parsed, classified, checked, applied. Every mail ends as a case.

A mail that cannot be parsed or whose handling raises is quarantined with the reason, and the
batch goes on. Nothing here sends mail.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailbot.classify import ThreadHit, classify
from mailbot.context import Context
from mailbot.errors import QuarantineError, StoreError
from mailbot.loops import no_reply_reason
from mailbot.mail import Mail
from mailbot.mail_decisions import apply_report_reply, report_reply
from mailbot.parse import parse
from mailbot.planner import Thread, apply_outcome
from mailbot.procedures import registry
from mailbot.procedures.base import Incoming
from mailbot.procedures.forms import held
from mailbot.send import tell_staff_undeliverable
from mailbot.states import Status
from mailbot.store import StoredMessage
from mailbot.text import case_number_in, format_case_number, single_line

log = logging.getLogger(__name__)
_OUR_ID = re.compile(rb"<mailbot\.\d+\.[0-9a-f]{32}@[^>\s]+>")


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
        recipient=mail.reply_to or mail.from_addr,
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


def process(ctx: Context, stored: StoredMessage) -> Result:
    started = time.perf_counter()
    try:
        result = _process(ctx, stored)
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


def _process(ctx: Context, stored: StoredMessage) -> Result:
    limit = ctx.config.limits.max_message_bytes
    if len(stored.raw) > limit:
        raise QuarantineError(f"message of {len(stored.raw)} bytes is over the {limit}-byte limit")
    mail = parse(stored.raw)
    workbook = report_reply(ctx, mail)
    if workbook is not None:
        outcome = apply_report_reply(ctx, stored, mail, workbook)
        return Result(stored.key, "staff_decisions", outcome, None)
    now = ctx.now()
    store = ctx.store
    sha = hashlib.sha256(stored.raw).hexdigest()
    with store.transaction():
        finish = {
            "message_id": mail.message_id,
            "sender": mail.from_addr,
            "subject": mail.subject,
            "text": mail.text,
            "attachment_names": [a.filename for a in mail.attachments],
        }
        duplicate = store.duplicate_of(stored.id, mail.message_id, sha)
        if duplicate is not None:
            store.add_event(
                duplicate, now, "bot", "duplicate", mailbox=stored.mailbox, key=stored.key
            )
            store.finish_message(
                stored.id, state="done", case_id=duplicate, outcome="duplicate", now=now, **finish
            )
            return Result(stored.key, "duplicate", "duplicate", duplicate)

        local = _mailbox_local(ctx, stored.mailbox)
        thread_hit = _thread_for(ctx, mail)
        robot = no_reply_reason(mail, ctx.config.own_addresses, ctx.config.message_id_domain)
        if robot:
            case_id = _robot_mail(ctx, stored, mail, robot, thread_hit, now)
            store.finish_message(
                stored.id,
                state="done",
                case_id=case_id,
                outcome=f"not answered: {robot}",
                now=now,
                **finish,
            )
            return Result(stored.key, "ignored", robot, case_id)

        classification = classify(ctx.routing, mail.subject, local, thread_hit)
        handler = registry(ctx)[classification.procedure]
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
        store.finish_message(
            stored.id, state="done", case_id=case_id, outcome=outcome.status, now=now, **finish
        )
    return Result(stored.key, classification.procedure, outcome.status, case_id)


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
                store.execute(
                    "UPDATE outbox SET state = 'bounced', last_error = ? WHERE message_id = ?",
                    ("delivery status report received", mid),
                )
                store.add_event(hit[0], now, "bot", "bounced", message_id=mid, key=stored.key)
                bounced = store.execute(
                    "SELECT id FROM outbox WHERE message_id = ?", (mid,)
                ).fetchone()
                if bounced is not None:
                    tell_staff_undeliverable(
                        ctx, bounced[0], "配信不能通知（バウンス）を受信しました", now
                    )
                return hit[0]
    if thread_hit:
        store.add_event(thread_hit.case_id, now, "bot", "robot_mail", reason=reason, key=stored.key)
        return thread_hit.case_id
    case_id = store.create_case(
        now,
        procedure="unrecognized",
        status=Status.IGNORED,
        sender=mail.from_addr,
        sender_name=single_line(mail.from_name, 100),
        mailbox=stored.mailbox,
        subject=single_line(mail.subject, 300),
        received_at=stored.received_at,
        reason=f"not answered: {reason}",
    )
    store.add_event(case_id, now, "bot", "robot_mail", reason=reason, key=stored.key)
    return case_id
