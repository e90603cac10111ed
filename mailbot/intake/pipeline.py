"""One stored raw message → parsed, classified, checked, applied. Every mail ends as a case.

A mail that cannot be parsed, whose handling raises, or whose processing started twice without
finishing (it killed the process) is quarantined with the reason, and the batch goes on. A case
changes only by what a mail carries: a follow-up without a form is a message on the case, and a
stranger's mail on a case is held apart (mailbot/mail/trust.py). Nothing here sends mail.

The stages only read the store and return values — parse (`Mail`), route (`Route`), check
(`Outcome`), plan (`Effect`) — and the store writes a mail's whole effect in one call
(`Store.apply`).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from mailbot.context import Context
from mailbot.desk.mail_decisions import apply_report_reply, report_reply
from mailbot.errors import QuarantineError, StoreError
from mailbot.forms.fields import find_participation_categories
from mailbot.mail import Mail
from mailbot.mail.loops import NO_SENDER, no_reply_reason
from mailbot.mail.parse import parse
from mailbot.mail.trust import AuthVerdict, TrustRules, auth_verdict, load_trust_rules
from mailbot.outbox.planner import Thread, outcome_effect, thread_root, undeliverable_into
from mailbot.outcome import Incoming, Outcome
from mailbot.procedures import registry
from mailbot.procedures.common import own_text
from mailbot.procedures.forms import held, stranger_held
from mailbot.routing import Classification, ThreadHit, classify
from mailbot.states import Status
from mailbot.store import StoredMessage
from mailbot.store.effect import CaseWrite, Effect, MessageFinish
from mailbot.store.registers import operators_for_sender
from mailbot.text import case_number_in, format_case_number, nfkc, single_line

log = logging.getLogger(__name__)
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


def _thread(mail: Mail, mailbox_address: str, dmarc_pass: bool) -> Thread:
    return Thread(
        message_id=mail.message_id,
        references=mail.references,
        recipient=mail.from_addr,
        recipient_name=single_line(mail.from_name, 60),
        subject=single_line(mail.subject, 200),
        mailbox_address=mailbox_address,
        dmarc_pass=dmarc_pass,
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
    holds what the read-ahead worker prepared, mail by mail (None: prepare it here). A mail
    another process finished since the batch was listed (two runs at once) is left to it.
    Each mail's log line comes after the commit: it says what is done, not what a kill may
    still take back."""
    _count_start(ctx, batch, +1)
    results: list[Result] = []
    try:
        with ctx.store.transaction():
            pending = ctx.store.still_pending([stored.id for stored in batch])
            for n, stored in enumerate(batch):
                if stored.id in pending:
                    results.append(_process_one(ctx, stored, ready[n] if n < len(ready) else None))
    except BaseException:
        _uncount(ctx, batch)
        raise
    for result in results:
        log.info(
            "mail key=%s procedure=%s outcome=%s case=%s ms=%.1f",
            result.key,
            result.procedure,
            result.outcome,
            result.case_id,
            result.ms,
        )
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
    effect = Effect(ctx.now())
    case_id = ctx.store.next_case_id()
    effect.case = CaseWrite(
        case_id,
        {
            "procedure": "unrecognized",
            "status": Status.QUARANTINED,
            "mailbox": stored.mailbox,
            "received_at": stored.received_at,
            "reason": reason,
        },
        new=True,
    )
    effect.event(case_id, "bot", "quarantined", reason=reason, key=stored.key)
    effect.message = MessageFinish(stored.id, "quarantined", case_id, reason)
    ctx.store.apply(effect)
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


@dataclass(frozen=True)
class Route:
    """Where a parsed mail goes, found by reads alone: an earlier copy of it (`duplicate`), the
    robot it came from (`robot`, a no_reply_reason), else its procedure and case."""

    digest: str
    duplicate: int | None = None
    collision: dict[str, Any] | None = None
    thread_hit: ThreadHit | None = None
    robot: str | None = None
    classification: Classification | None = None
    case: dict[str, Any] | None = None


def _process(ctx: Context, stored: StoredMessage, ready: Mail | None) -> Result:
    """receive (the runner stored the raw mail) → parse → route → check → plan, each a value;
    then the store writes the mail's whole effect in one call."""
    mail = parse_stored(ctx, stored, ready)
    workbook = report_reply(ctx, mail)
    if workbook is not None:
        outcome = apply_report_reply(ctx, stored, mail, workbook)
        return Result(stored.key, "staff_decisions", outcome, None)
    rules = load_trust_rules(ctx.config.rules_dir)
    route = route_mail(ctx, stored, mail, rules)
    checked = check_mail(ctx, stored, mail, route, rules)
    effect, result = plan_effect(ctx, stored, mail, route, checked)
    ctx.store.apply(effect)
    return result


def parse_stored(ctx: Context, stored: StoredMessage, ready: Mail | None) -> Mail:
    """The stored raw mail as a Mail (the read-ahead worker's, when it prepared one); a mail
    over the size limit or beyond parsing raises QuarantineError."""
    limit = ctx.config.limits.max_message_bytes
    if len(stored.raw) > limit:
        raise QuarantineError(f"message of {len(stored.raw)} bytes is over the {limit}-byte limit")
    mail = ready if ready is not None else parse(stored.raw)
    broken = _unparseable(mail)
    if broken:
        raise QuarantineError(f"the mail could not be parsed ({broken.split(':', 1)[1].strip()})")
    return mail


def route_mail(ctx: Context, stored: StoredMessage, mail: Mail, rules: TrustRules) -> Route:
    store = ctx.store
    sha = hashlib.sha256(stored.raw).hexdigest()
    digest = content_digest(mail)
    duplicate = store.duplicate_of(stored.id, mail.message_id, mail.from_addr, digest, sha)
    if duplicate is not None:
        return Route(digest, duplicate=duplicate)
    collision = store.message_id_taken(stored.id, mail.message_id)
    thread_hit = _thread_for(ctx, mail)
    never_answer = ctx.config.own_addresses | frozenset(ctx.config.staff_addresses)
    robot = no_reply_reason(mail, never_answer, ctx.config.message_id_domain, rules)
    if robot:
        return Route(digest, collision=collision, thread_hit=thread_hit, robot=robot)
    local = _mailbox_local(ctx, stored.mailbox)
    classification = classify(ctx.routing, mail.subject, local, thread_hit)
    case = store.case(classification.case_id) if classification.case_id else None
    return Route(
        digest,
        collision=collision,
        thread_hit=thread_hit,
        classification=classification,
        case=case,
    )


def check_mail(
    ctx: Context, stored: StoredMessage, mail: Mail, route: Route, rules: TrustRules
) -> Outcome | None:
    """The procedure's verdict on a routed mail (held, when the mail must not change its case).
    None: nothing to check — a copy, robot mail, or a message that only joins its case."""
    if route.classification is None:
        return None
    case = route.case
    handler = registry()[route.classification.procedure]
    incoming = Incoming(
        mail=mail,
        classification=route.classification,
        received_at=datetime.fromisoformat(stored.received_at),
        mailbox_address=stored.mailbox,
    )
    finished = case is not None and case["status"] in (Status.CLOSED, Status.IGNORED)
    verdict = auth_verdict(mail.authentication_results, ctx.config.our_authserv_id)
    if verdict.dmarc_failed:
        checked = handler.check(incoming, ctx.for_handlers(), None if finished else case)
        return held(
            case,
            "DMARC 検証に失敗したメールです（差出人のなりすましの可能性）",
            answer=False,
            problems=checked.problems,
            data=checked.data,
        )
    other = verdict.judged_another(mail.from_addr)
    if other is not None:
        checked = handler.check(incoming, ctx.for_handlers(), None if finished else case)
        return held(
            case,
            f"差出人を確認できないメールです（受信サーバーの DMARC 検証は {other} を差出人として"
            f"判定しましたが、差出人欄は {mail.from_addr} です）",
            answer=False,
            problems=checked.problems,
            data=checked.data,
        )
    if finished:
        return held(case, f"完了済みの案件 {format_case_number(case['id'])} への返信です")
    if case is not None and _message_only(ctx, mail, case):
        if _stranger(ctx, rules, mail, case):
            return stranger_held(case, mail.from_addr)
        return None
    if case is not None and _unverified_redirect(rules, mail, verdict):
        return held(
            case,
            f"差出人を確認できないメールです（認証結果なし、返信先 {mail.reply_to} が"
            f"差出人 {mail.from_addr} と異なる）。案件 {format_case_number(case['id'])} は"
            "変更していません",
            answer=False,
        )
    return handler.check(incoming, ctx.for_handlers(), case)


def plan_effect(
    ctx: Context, stored: StoredMessage, mail: Mail, route: Route, checked: Outcome | None
) -> tuple[Effect, Result]:
    """Everything the mail writes, and the line the run logs for it."""
    effect = Effect(ctx.now())
    if route.duplicate is not None:
        effect.event(route.duplicate, "bot", "duplicate", mailbox=stored.mailbox, key=stored.key)
        effect.message = _finish(stored, mail, route, route.duplicate, "duplicate")
        return effect, Result(stored.key, "duplicate", "duplicate", route.duplicate)
    if route.robot:
        case_id = _robot_mail(ctx, stored, mail, route, effect)
        _note_collision(effect, case_id, route.collision, mail)
        held_for_staff = route.robot == NO_SENDER
        effect.message = _finish(
            stored,
            mail,
            route,
            case_id,
            f"held for staff: {route.robot}" if held_for_staff else f"not answered: {route.robot}",
        )
        procedure = "held" if held_for_staff else "ignored"
        return effect, Result(stored.key, procedure, route.robot, case_id)
    assert route.classification is not None
    procedure = route.classification.procedure
    case = route.case
    if checked is None:
        assert case is not None
        _message_on_case(effect, stored, mail, case)
        _note_collision(effect, case["id"], route.collision, mail)
        effect.message = _finish(stored, mail, route, case["id"], "message on the case")
        return effect, Result(stored.key, procedure, "message", case["id"])
    if case is not None and checked.new_case:
        root = thread_root(case)
        checked = replace(checked, data=checked.data | {"thread_root": root})
        checked.events.append(("in_thread", {"root": root, "case": case["id"]}))
    dmarc_pass = auth_verdict(mail.authentication_results, ctx.config.our_authserv_id).vouches_for(
        mail.from_addr
    )
    effect = outcome_effect(
        ctx,
        checked,
        case_id=checked.attach_to or (case["id"] if case and not checked.new_case else None),
        procedure=procedure,
        thread=_thread(mail, stored.mailbox, dmarc_pass),
        actor="bot",
        now=effect.now,
        new_case_fields=_case_fields(mail, stored.mailbox, stored.received_at),
    )
    assert effect.case is not None
    case_id = effect.case.case_id
    effect.event(
        case_id,
        "bot",
        "mail_received",
        key=stored.key,
        mailbox=stored.mailbox,
        message_id=mail.message_id,
        sender=mail.from_addr,
        attachments=[a.filename for a in mail.attachments],
        **({"defects": list(mail.defects)} if mail.defects else {}),
        **({"dmarc_pass": True} if dmarc_pass else {}),
    )
    _note_collision(effect, case_id, route.collision, mail)
    effect.message = _finish(stored, mail, route, case_id, checked.status)
    return effect, Result(stored.key, procedure, checked.status, case_id)


def _finish(
    stored: StoredMessage, mail: Mail, route: Route, case_id: int, outcome: str
) -> MessageFinish:
    return MessageFinish.done(stored.id, case_id, outcome, mail, route.digest)


def _note_collision(
    effect: Effect, case_id: int, collision: dict[str, Any] | None, mail: Mail
) -> None:
    """A Message-ID seen before on another mail: this one was stored and checked on its own;
    staff see which earlier mail carried the same id."""
    if collision is not None:
        effect.event(
            case_id,
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


def _unverified_redirect(rules: TrustRules, mail: Mail, verdict: AuthVerdict) -> bool:
    """A mail whose answers would go elsewhere than its From, and our MTA's DMARC pass aligned
    with that From (`verdict`) does not vouch for it (SPF or DKIM pass prove nothing about
    From): what a spoofed From looks like."""
    if not mail.reply_to or rules.same_party(mail.reply_to, mail.from_addr):
        return False
    return not verdict.vouches_for(mail.from_addr)


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
    effect: Effect, stored: StoredMessage, mail: Mail, case: dict[str, Any]
) -> None:
    """The mail joins the case's history for staff; the case's status and data stay."""
    effect.event(
        case["id"],
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
    ctx: Context, stored: StoredMessage, mail: Mail, route: Route, effect: Effect
) -> int:
    """Bounces mark the reply they return (and staff hear of it); other robot mail is kept on
    its case unanswered. Returns the case the mail ends on."""
    store = ctx.store
    reason = route.robot or ""
    if mail.is_delivery_report:
        for mid, sent in _cited_sent_mails(ctx, stored.raw, mail.returned_ids):
            effect.event(sent["case_id"], "bot", "bounced", message_id=mid, key=stored.key)
            if sent["state"] == "sent":
                effect.bounced.append((mid, "delivery status report received"))
                undeliverable_into(
                    effect, ctx, store.outbox_row_for(mid), "配信不能通知（バウンス）を受信しました"
                )
            return sent["case_id"]
    held_for_staff = reason == NO_SENDER
    if route.thread_hit and not held_for_staff:
        case_id = route.thread_hit.case_id
        effect.event(case_id, "bot", "robot_mail", reason=reason, key=stored.key)
        return case_id
    case_id = store.next_case_id()
    effect.case = CaseWrite(
        case_id,
        {
            "procedure": "unrecognized",
            "status": Status.HELD if held_for_staff else Status.IGNORED,
            "sender": mail.from_addr,
            "sender_name": single_line(mail.from_name, 100),
            "mailbox": stored.mailbox,
            "subject": single_line(mail.subject, 300),
            "received_at": stored.received_at,
            "reason": (_no_sender_reason(mail) if held_for_staff else f"not answered: {reason}"),
        },
        new=True,
    )
    effect.event(
        case_id, "bot", "held" if held_for_staff else "robot_mail", reason=reason, key=stored.key
    )
    return case_id


def _cited_sent_mails(
    ctx: Context, raw: bytes, ids: tuple[str, ...] | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(Message-ID, outbox row) of each mail we sent that a delivery report returns: an id in
    our own format and domain (`compose.new_message_id`) that the outbox holds as sent. Anyone
    can write a bounce; one that cites no mail of ours marks nothing and tells no one. The id
    is the returned mail's Message-ID field (our follow-up reply cites our receipt above its
    own id); only a report that returns no headers is searched for any id of ours."""
    domain = re.escape(ctx.config.message_id_domain)
    ours = re.compile(r"<mailbot\.\d+\.[0-9a-f]{32}@" + domain + r">", re.IGNORECASE)
    if ids is None:
        ids = tuple(m.group(0) for m in ours.finditer(raw.decode("ascii", "replace")))
    for mid in dict.fromkeys(i for i in ids if ours.fullmatch(i)):
        sent = ctx.store.sent_mail(mid)
        if sent is not None:
            yield mid, sent


def _no_sender_reason(mail: Mail) -> str:
    if mail.claimed_sender:
        return (
            "差出人を確認できないメールです（ヘッダーが壊れており、差出人欄 "
            f"{single_line(mail.claimed_sender, 120)} はヘッダーの外にあるため信用できません。"
            "返信せず、どの案件にも加えていません。担当者が確認してください）"
        )
    if mail.sender_problem:
        return (
            f"差出人を確認できないメールです（{single_line(mail.sender_problem, 300)}）。"
            "返信せず、どの案件にも加えていません。担当者が確認してください"
        )
    return "差出人アドレスを読み取れないメールです（返信していません。担当者が確認してください）"
