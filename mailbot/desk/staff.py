"""Staff work on a case besides the decision rules: accounts, the owner (担当), internal notes
and free-text replies. The CLI and the web desk both call these, so a refusal reads the same
in either, and every change lands in the case history with the login that made it.

Internal notes are events only: nothing here ever puts a note into a mail.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailbot.context import Context
from mailbot.desk.decisions import current_case, decide
from mailbot.errors import DecisionError, MailbotError
from mailbot.mail.parse import parse
from mailbot.outbox.planner import case_thread, plan_reply
from mailbot.outcome import Reply
from mailbot.text import format_case_number

LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")
MIN_PASSWORD = 10
MAX_NOTE = 4000
MAX_REPLY = 20000
_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Made on the first login check, not at import: every CLI command imports this module,
    and one argon2 hash is 0.2-0.4 s of each command's start."""
    return _HASHER.hash("mailbot: no such account")


def actor(login: str) -> str:
    return f"staff:{login}"


def add_staff(ctx: Context, login: str, name: str, password: str) -> None:
    if not LOGIN.match(login):
        raise MailbotError(f"{login!r}: a login is 1–32 of a-z, 0-9, '.', '_', '-'")
    if not name.strip():
        raise MailbotError("--name: the display name (表示名) is required")
    if len(password) < MIN_PASSWORD:
        raise MailbotError(f"the password must have at least {MIN_PASSWORD} characters")
    with ctx.store.transaction():
        if ctx.store.staff(login) is not None:
            raise MailbotError(f"staff account {login!r} already exists")
        ctx.store.add_staff(login, name.strip(), _HASHER.hash(password), ctx.now())


def disable_staff(ctx: Context, login: str) -> None:
    """Lock the account out: its sessions and the browsers it logged in from are forgotten."""
    with ctx.store.transaction():
        if not ctx.store.disable_staff(login):
            raise MailbotError(f"no staff account {login!r}")
        ctx.store.end_staff_access(login)


def set_password(ctx: Context, login: str, password: str) -> None:
    """A new password (`mailbot staff password`). Every session of the account ends: whoever
    had the old password or a session made with it is out at their next request. Its known
    browsers stay known (a browser record opens nothing, it only keeps that browser's login
    attempts in a throttle bucket of their own), so a stranger guessing at the login cannot
    lock the staff member out of their usual browser after the change."""
    if len(password) < MIN_PASSWORD:
        raise MailbotError(f"the password must have at least {MIN_PASSWORD} characters")
    new_hash = _HASHER.hash(password)
    with ctx.store.transaction():
        if ctx.store.staff(login) is None:
            raise MailbotError(f"no staff account {login!r}")
        ctx.store.set_staff_password(login, new_hash)
        ctx.store.end_staff_sessions(login)


def check_password(ctx: Context, login: str, password: str) -> dict | None:
    """The enabled account these credentials open, else None. An unknown login costs the same
    argon2 work as a wrong password, so timing does not tell which logins exist."""
    dummy = _dummy_hash()
    account = ctx.store.staff(login)
    try:
        _HASHER.verify(account["password_hash"] if account else dummy, password)
    except (VerificationError, InvalidHashError):
        return None
    if account is None or account["disabled"]:
        return None
    if _HASHER.check_needs_rehash(account["password_hash"]):
        with ctx.store.transaction():
            ctx.store.set_staff_password(login, _HASHER.hash(password))
    return account


def active_staff(ctx: Context, login: str) -> dict | None:
    account = ctx.store.staff(login)
    return account if account and not account["disabled"] else None


def _open_case(ctx: Context, case_id: int, expected_version: int | None) -> dict:
    return current_case(ctx, case_id, expected_version, since="the page was drawn")


def assign(
    ctx: Context, case_id: int, owner: str | None, *, by: str, expected_version: int | None = None
) -> None:
    """Make `owner` the case's 担当 (None: nobody). With `expected_version`, a case that
    changed meanwhile (someone else claimed it) is refused, not overwritten."""
    now = ctx.now()
    with ctx.store.transaction():
        case = _open_case(ctx, case_id, expected_version)
        if owner is not None and active_staff(ctx, owner) is None:
            raise DecisionError(f"担当者「{owner}」は有効なアカウントではありません")
        if case.get("owner") == owner:
            number = format_case_number(case_id)
            raise DecisionError(
                f"{number}の担当はすでに{owner}です" if owner else f"{number}はすでに担当者なしです"
            )
        ctx.store.update_case(case_id, now, owner=owner)
        ctx.store.add_event(case_id, now, actor(by), "assigned", old=case.get("owner"), new=owner)


def add_note(ctx: Context, case_id: int, text: str, *, by: str) -> None:
    """An internal note: kept in the history for staff, never mailed. Notes do not change the
    case, so they never make another staff member's open form stale."""
    text = text.strip()
    if not text:
        raise DecisionError("メモが空です")
    if len(text) > MAX_NOTE:
        raise DecisionError(f"メモは{MAX_NOTE}文字までです")
    with ctx.store.transaction():
        _open_case(ctx, case_id, None)
        ctx.store.add_event(case_id, ctx.now(), actor(by), "note", text=text)


def mark_handled(
    ctx: Context, case_id: int, *, by: str, expected_version: int | None = None
) -> None:
    """The participant's unanswered mail needs no answer (a thank-you, a question answered by
    phone): the case stops waiting on us, and reminders to the participant may go again.
    Raises DecisionError when nothing on the case waits."""
    now = ctx.now()
    with ctx.store.transaction():
        _open_case(ctx, case_id, expected_version)
        since = ctx.store.waiting_on_us([case_id]).get(case_id)
        if since is None:
            raise DecisionError(
                f"{format_case_number(case_id)}には未対応の参加者のメールはありません"
            )
        ctx.store.update_case(case_id, now)
        ctx.store.add_event(case_id, now, actor(by), "handled", since=since)


@dataclass(frozen=True)
class ReplyResult:
    case_id: int
    outbox_id: int


def reply(
    ctx: Context, case_id: int, text: str, *, by: str, expected_version: int | None = None
) -> ReplyResult:
    """A free-text answer to the participant in their own thread, with the case number in the
    subject, planned through the outbox and recorded on the case."""
    text = text.strip()
    if not text:
        raise DecisionError("返信の本文が空です")
    if len(text) > MAX_REPLY:
        raise DecisionError(f"返信は{MAX_REPLY}文字までです")
    now = ctx.now()
    with ctx.store.transaction():
        case = _open_case(ctx, case_id, expected_version)
        thread = case_thread(ctx, case_id)
        if not (thread.recipient or case.get("sender")):
            raise DecisionError(
                f"{format_case_number(case_id)}には返信先（送信者のアドレス）がありません"
            )
        account = ctx.store.staff(by)
        context = {
            "text": text,
            "staff_name": account["name"] if account else by,
            "topic": reply_topic(thread.subject or case.get("subject") or ""),
        }
        outbox_id = plan_reply(
            ctx,
            case,
            Reply(kind="staff_reply", template="staff_reply", context=context),
            thread,
            now,
        )
        if outbox_id is None:
            raise DecisionError(
                f"{format_case_number(case_id)}の返信を送信キューに入れられませんでした"
            )
        ctx.store.update_case(case_id, now)
        ctx.store.add_event(case_id, now, actor(by), "staff_reply", text=text, outbox=outbox_id)
    return ReplyResult(case_id, outbox_id)


_REPLY_PREFIX = re.compile(r"^(?:\s*(?:re|fw|fwd|aw|sv)\s*[:：]\s*)+", re.IGNORECASE)
_CASE_TAG = re.compile(r"【受付番号\s*MB-\d+】\s*")


def reply_topic(subject: str) -> str:
    """What a staff reply's subject answers: the participant's subject without the Re:/Fw:
    prefixes and our 【受付番号 …】 tag (the reply puts its own in front), on one line."""
    topic = " ".join(subject.split())
    topic = _CASE_TAG.sub("", _REPLY_PREFIX.sub("", topic)).strip()
    topic = _REPLY_PREFIX.sub("", topic).strip()
    return topic[:120] or "お問い合わせの件"


def reply_and(
    ctx: Context,
    case_id: int,
    text: str,
    *,
    by: str,
    expected_version: int | None = None,
    claim: bool = False,
    close: bool = False,
) -> ReplyResult:
    """One step of the desk: reply, and in the same transaction take the case (担当) and/or
    end it (対応終了). The version is checked once, before anything changes."""
    with ctx.store.transaction():
        case = _open_case(ctx, case_id, expected_version)
        if claim and case.get("owner") != by:
            assign(ctx, case_id, by, by=by)
        result = reply(ctx, case_id, text, by=by)
        if close:
            decide(ctx, case_id, "close", by=by)
    return result


def backfill_search(ctx: Context) -> int:
    """Index the bodies of mails stored before the search index existed (schema step 5), a
    batch per transaction so `mailbot run` beside it never waits long. Returns how many."""
    done = 0
    while batch := ctx.store.messages_without_text():
        for message_row in batch:
            try:
                mail = parse(bytes(ctx.store.raw_of(message_row)))
                text, names = mail.text, [a.filename for a in mail.attachments]
            except Exception:
                text, names = "", []
            with ctx.store.transaction():
                ctx.store.set_message_text(message_row, text, names)
            done += 1
    return done


def find_cases(
    ctx: Context,
    *,
    open_only: bool = False,
    search: str | None = None,
    owner: str | None = None,
    status: str | None = None,
    procedure: str | None = None,
) -> list[dict]:
    """Cases by the queue's filters. `owner` is a login, or `none` for cases nobody has;
    `search` is full text (see `Store.search_cases`)."""
    if search and search.strip():
        cases = ctx.store.cases_by_id(ctx.store.search_cases(search), open_only=open_only)
    else:
        cases = ctx.store.cases(open_only=open_only)
    if owner == "none":
        cases = [c for c in cases if not c.get("owner")]
    elif owner:
        cases = [c for c in cases if c.get("owner") == owner]
    if status:
        cases = [c for c in cases if c["status"] == status]
    if procedure:
        cases = [c for c in cases if c["procedure"] == procedure]
    return cases
