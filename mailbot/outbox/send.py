"""Delivering the outbox: SMTP (aiosmtplib) or a Maildir folder (the embedded default).

The sender takes due rows, delivers the bytes planned for them, and marks them sent; transient
failures back off and retry, permanent ones are recorded on the case. It never renders or plans.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import logging
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol

import aiosmtplib

from mailbot.config import OutgoingConfig
from mailbot.context import Context
from mailbot.errors import MailbotError, PermanentSendError, SendError, TransientSendError
from mailbot.intake.mailboxes.maildir import deliver
from mailbot.mail.compose import envelope_recipients, stamp_date
from mailbot.mailauth import (
    TokenError,
    certificate_problem,
    one_line,
    sasl_string,
    server_answer,
    tls_context,
    tokens_for,
)
from mailbot.outbox.notified import NOTICE_KINDS, mark_notified
from mailbot.outbox.planner import retry_delay, undeliverable_into
from mailbot.private import open_private
from mailbot.store import patiently
from mailbot.store.effect import Effect
from mailbot.store.journal import SendJournal

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(days=2)
SEND_LOCK_WAIT = 30.0
STOP_POLL = 0.1


Done = Callable[[int, "SendError | None"], None]


class Sender(Protocol):
    def send_many(self, items: list[tuple[str, str, bytes]], done: Done) -> None:
        """Deliver (message_id, recipient, raw) items, calling `done(index, error)` as soon as
        the server has answered each one (None when it took it), so the caller can record that
        before the next is sent: a crash then repeats at most the one in flight."""
        ...


class MaildirSender:
    """Each sent mail becomes one file in `<path>/new/`, named by its outbox Message-ID so a
    second delivery of the same row overwrites rather than duplicates."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send_many(self, items: list[tuple[str, str, bytes]], done: Done) -> None:
        for index, (message_id, _recipient, raw) in enumerate(items):
            unique = message_id.strip("<>").replace("/", "_").replace("@", "_at_")
            try:
                deliver(self.path, raw, f"{unique}.eml")
            except OSError as exc:
                done(index, TransientSendError(f"{self.path}: {exc.strerror}"))
                continue
            done(index, None)


async def smtp_login(client: aiosmtplib.SMTP, cfg: OutgoingConfig) -> str:
    """Authenticate a connected client as `cfg` says: an OAuth2 token (renewed once if the
    server refuses a cached one, `Tokens.renew`), a password, or not at all. Returns how
    ("XOAUTH2 as code@…", "" when not logged in). Raises SMTPAuthenticationError with one
    line naming the login and the server's answer, TokenError when no token could be had.
    The doctor and the sender share it, so doctor's row is what the sender will meet."""
    if cfg.auth == "oauth2":
        assert cfg.oauth2 is not None
        user = cfg.username or ""
        mechanism = cfg.oauth2.mechanism
        tokens = tokens_for(cfg.oauth2, user)
        answer = ""
        for attempt in (1, 2):
            token = tokens.get() if attempt == 1 else tokens.renew()
            if token is None:
                break
            initial = sasl_string(mechanism, user, token, cfg.host or "", cfg.port or 0)
            try:
                await _sasl(client, mechanism, initial)
                return f"{mechanism.upper()} as {user}"
            except aiosmtplib.SMTPAuthenticationError as exc:
                answer = f"{exc.code} {one_line(exc.message)}"
        raise aiosmtplib.SMTPAuthenticationError(
            535,
            f"{cfg.name}: smtp {cfg.host}:{cfg.port} refused the OAuth2 token for {user}"
            f" ({mechanism.upper()}): {answer}",
        )
    if cfg.logs_in:
        await client.login(cfg.username or "", cfg.password or "")
        return f"as {cfg.username}"
    return ""


async def _sasl(client: aiosmtplib.SMTP, mechanism: str, initial: bytes) -> None:
    """AUTH XOAUTH2 / OAUTHBEARER with an initial response. A refusal comes as a 334 error
    challenge (base64 JSON) that the client answers (empty line; OAUTHBEARER: %x01) to get
    the final 5xx; both go into the error."""
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    response = await client.execute_command(
        b"AUTH", mechanism.upper().encode(), base64.b64encode(initial)
    )
    challenge = ""
    if response.code == 334:
        challenge = server_answer(response.message.encode())
        response = await client.execute_command(b"AQ==" if mechanism == "oauthbearer" else b"")
    if response.code != 235:
        said = one_line(response.message)
        raise aiosmtplib.SMTPAuthenticationError(
            response.code, f"{said} ({challenge})" if challenge else said
        )


@dataclass
class SmtpSender:
    """Sends over SMTP. `routes`: a mailbox's own login (`[mailboxes.outgoing]`), by the
    address its replies are From; a reply from any other address goes through `config`
    with `envelope_from`. One connection per login for a batch."""

    config: OutgoingConfig
    envelope_from: str
    ssl_context: ssl.SSLContext | None = None
    stop: threading.Event | None = None
    """The daemon's SIGTERM: a connection attempt in progress is given up (the rows stay due,
    untouched), so a server that never answers does not hold the shutdown for `timeout`."""
    routes: dict[str, OutgoingConfig] = field(default_factory=dict)

    def send_many(self, items: list[tuple[str, str, bytes]], done: Done) -> None:
        asyncio.run(self._send_many(items, done))

    def _route(self, raw: bytes) -> tuple[OutgoingConfig, str]:
        if self.routes:
            cfg = self.routes.get(_from_address(raw))
            if cfg is not None:
                return cfg, cfg.envelope_from or self.envelope_from
        return self.config, self.envelope_from

    async def _connect(self, cfg: OutgoingConfig) -> aiosmtplib.SMTP:
        context = self.ssl_context
        if context is None and cfg.security != "none":
            context = tls_context(cfg.ca_file)
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.security == "ssl",
            start_tls=cfg.security == "starttls",
            tls_context=context,
            timeout=cfg.timeout,
        )
        await client.connect()
        try:
            await smtp_login(client, cfg)
        except BaseException:
            client.close()
            raise
        return client

    async def _connect_unless_stopped(self, cfg: OutgoingConfig) -> aiosmtplib.SMTP:
        """`_connect`, given up when `stop` is set meanwhile (looked at every STOP_POLL s)."""
        if self.stop is None:
            return await self._connect(cfg)
        if self.stop.is_set():
            raise _Stopped
        connecting = asyncio.ensure_future(self._connect(cfg))
        while not connecting.done():
            await asyncio.wait({connecting}, timeout=STOP_POLL)
            if self.stop.is_set() and not connecting.done():
                connecting.cancel()
                with suppress(asyncio.CancelledError, aiosmtplib.SMTPException, OSError):
                    await connecting
                raise _Stopped
        return connecting.result()

    async def _send_many(self, items: list[tuple[str, str, bytes]], done: Done) -> None:
        clients: dict[str, aiosmtplib.SMTP] = {}
        refused: dict[str, SendError] = {}
        try:
            for index, (message_id, recipient, raw) in enumerate(items):
                cfg, envelope = self._route(raw)
                if cfg.name in refused:
                    done(index, refused[cfg.name])
                    continue
                client = clients.get(cfg.name)
                if client is None or not client.is_connected:
                    try:
                        client = clients[cfg.name] = await self._connect_unless_stopped(cfg)
                    except _Stopped:
                        return
                    except (aiosmtplib.SMTPException, OSError, MailbotError) as exc:
                        refused[cfg.name] = _connect_error(exc, cfg)
                        done(index, refused[cfg.name])
                        continue
                copies = envelope_recipients(raw, recipient)[1:]
                try:
                    if copies:
                        await _send_copied(client, envelope, message_id, recipient, copies, raw)
                    else:
                        await client.sendmail(envelope, [recipient], raw)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    done(index, _classify(exc, recipient))
                    continue
                done(index, None)
        finally:
            for client in clients.values():
                if client.is_connected:
                    try:
                        await client.quit()
                    except (aiosmtplib.SMTPException, OSError):
                        client.close()


def _from_address(raw: bytes) -> str:
    """The address our own composed reply is From (lower case), read from its header."""
    header = BytesHeaderParser(policy=compat32).parsebytes(raw).get("From", "")
    return parseaddr(str(header))[1].lower()


async def _send_copied(
    client: aiosmtplib.SMTP,
    envelope: str,
    message_id: str,
    recipient: str,
    copies: list[str],
    raw: bytes,
) -> None:
    """One transaction to the To and its Cc: the To's RCPT first, and DATA only once the To
    took it. Raises what the server said of the To (the row is retried or failed whole, and
    no copy went out that a retry would send again); a refused copy is logged and the mail
    counts as sent."""
    try:
        await client.mail(envelope)
        await client.rcpt(recipient)
        for copied in copies:
            try:
                await client.rcpt(copied)
            except aiosmtplib.SMTPRecipientRefused as exc:
                log.warning("%s: copy to %s refused: %s", message_id, copied, exc.message)
        await client.data(raw)
    except aiosmtplib.SMTPResponseException:
        with suppress(ConnectionError, aiosmtplib.SMTPResponseException):
            await client.rset()
        raise


class _Stopped(Exception):
    """The daemon is stopping: no connection is made, the rows stay due."""


def _classify(exc: BaseException, what: str) -> SendError:
    code = getattr(exc, "code", None)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        code = exc.recipients[0].code
    detail = getattr(exc, "message", None) or exc
    message = f"{what}: {type(exc).__name__}: {f'{code} ' if isinstance(code, int) else ''}{detail}"
    if isinstance(code, int) and 500 <= code < 600:
        return PermanentSendError(message, code)
    return TransientSendError(message, code if isinstance(code, int) else None)


def _connect_error(exc: BaseException, cfg: OutgoingConfig) -> SendError:
    """A connection or login that failed: always worth another try later (the replies wait,
    with backoff, up to GIVE_UP_AFTER), since a refused login or an untrusted certificate is
    the desk's configuration, not the recipient's refusal. One line: the login's name, the
    server, the server's answer."""
    where = f"smtp {cfg.host}:{cfg.port}"
    problem = certificate_problem(exc, where)
    if problem:
        return TransientSendError(f"{cfg.name}: {problem}")
    if isinstance(exc, TokenError):
        return TransientSendError(f"{cfg.name}: no OAuth2 token for {cfg.username}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        if exc.message.startswith(f"{cfg.name}: "):
            return TransientSendError(exc.message, exc.code)
        said = one_line(exc.message)
        return TransientSendError(
            f"{cfg.name}: {where} refused the login of {cfg.username}: {exc.code} {said}", exc.code
        )
    error = _classify(exc, where)
    return TransientSendError(str(error), error.code)


def make_sender(ctx: Context, stop: threading.Event | None = None) -> Sender:
    """The configured sender; `stop` lets the daemon's SIGTERM cut an SMTP connection
    attempt short."""
    cfg = ctx.config.outgoing
    if cfg.backend == "maildir":
        assert cfg.path is not None
        return MaildirSender(cfg.path)
    cfg.require_password()
    envelope = cfg.username if cfg.username and "@" in cfg.username else ctx.address_for("code")
    routes = {}
    for box in ctx.config.mailboxes:
        if box.outgoing is not None:
            box.outgoing.require_password()
            routes[box.address.lower()] = box.outgoing
    return SmtpSender(cfg, envelope, stop=stop, routes=routes)


@dataclass
class _Recorder:
    """Commits each send's result the moment the server answered it: in the database, or,
    for the sender that goes along, a reply the server took in the send journal."""

    ctx: Context
    rows: list[sqlite3.Row]
    journal: SendJournal | None = None
    sent: int = 0
    failed: int = 0

    def __call__(self, index: int, error: SendError | None) -> None:
        """The server has answered: the record waits out another connection's long
        transaction (`patiently`), since a send that is not recorded goes out again."""
        if error is None and self.journal is not None:
            row = self.rows[index]
            self.journal.record(row["id"], row["message_id"], self.ctx.now())
            self.sent += 1
            return
        patiently(lambda: self._record(index, error), f"recording send {index}")

    def _record(self, index: int, error: SendError | None) -> None:
        row = self.rows[index]
        at = self.ctx.now()
        with self.ctx.store.transaction():
            if error is not None:
                self.failed += 1
                _record_failure(self.ctx, row, error, at)
                return
            record_sent(self.ctx, row, at)
            self.sent += 1


def record_sent(ctx: Context, row: sqlite3.Row, at: datetime) -> None:
    """What a reply the server took leaves in the database (inside the caller's transaction):
    the row sent, the case's history, and a notice's objection window from that day."""
    ctx.store.mark_sent(row["id"], at)
    _note_on_case(ctx, row, at, "mail_sent", message_id=row["message_id"])
    if row["kind"] in NOTICE_KINDS:
        mark_notified(ctx, row["message_id"], at)


def fold_journal(ctx: Context, journal: SendJournal) -> int:
    """Records the journal's sends in the database and drops them from the journal. The
    commit is a FULL one and always writes, so it also makes every batch committed before it
    durable: the newest outbox row it returns is one a power cut cannot take back, and the
    sender that goes along sends no newer one. Folding twice, or beside another process
    folding, records each send once (a row already sent is left alone); an entry whose row
    is not the reply it names (a database restored from a backup) is left out, with a
    warning, rather than marking another reply sent."""
    entries = journal.entries()
    with ctx.store.synced(), ctx.store.transaction():
        rows = ctx.store.outbox_rows({outbox_id for _, outbox_id, _, _ in entries})
        done: set[int] = set()
        for _, outbox_id, message_id, at in entries:
            row = rows.get(outbox_id)
            if row is None or row["message_id"] != message_id:
                log.warning(
                    "%s: the journal names reply %s as sent, which is not outbox row %s here",
                    journal.path,
                    message_id,
                    outbox_id,
                )
            elif row["state"] == "pending" and outbox_id not in done:
                record_sent(ctx, row, at)
                done.add(outbox_id)
        ctx.store.note_journal_fold(ctx.now())
        durable = ctx.store.newest_outbox_id()
    if entries:
        journal.clear(entries[-1][0])
    return durable


def settle_journal(ctx: Context, durable: bool = False) -> int | None:
    """What a killed run's sender left only in the journal joins the database (and leaves
    the journal) before mail is processed or sent: a delivery report about such a reply finds
    it sent, and no sender sends it again. `durable`: fold (and so sync) even when the journal
    is empty, and return the newest outbox row that commit covers (None when nothing was
    folded)."""
    with SendJournal(ctx.store.path, create=False) as journal:
        if durable or journal.entries():
            return fold_journal(ctx, journal)
    return None


@contextmanager
def sending_turn(database: Path, wait: float) -> Iterator[bool]:
    """One sender at a time per database: the daemon and `run --once` or `ingest` (from cron
    or by hand) all flush the outbox, and two of them would read the same due rows and send each mail
    twice. True while this process holds the turn; False when another held it for `wait`
    seconds (the mail stays due and goes with that sender or the next flush)."""
    with open_private(database.with_name(database.name + ".send-lock"), "a") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def flush_outbox(
    ctx: Context,
    sender: Sender,
    batch: int = 200,
    journal: SendJournal | None = None,
    upto: int | None = None,
) -> tuple[int, int]:
    """Send every due row, in this database's sending turn. Returns (sent, failed-or-deferred).
    Only rows a synced commit covers go (`upto`): the batches are committed without a sync of
    their own, and a reply must not go out for a case a power cut could take back. With a
    `journal` (the sender that goes along) the replies the server takes are recorded there
    and the caller names `upto`; without one, what is left there is settled first, in a
    synced commit when anything is due."""
    with sending_turn(ctx.store.path, SEND_LOCK_WAIT) as mine:
        if not mine:
            log.warning("another process is sending this outbox; its due mail goes with it")
            return 0, 0
        if journal is None:
            due = bool(ctx.store.due_mail(ctx.now(), limit=1))
            upto = settle_journal(ctx, durable=due)
            if not due:
                return 0, 0
        return _flush(ctx, sender, batch, journal, upto)


def _flush(
    ctx: Context, sender: Sender, batch: int, journal: SendJournal | None, upto: int | None
) -> tuple[int, int]:
    sent = failed = 0
    while True:
        skip = journal.named() if journal is not None else ()
        rows = ctx.store.due_mail(ctx.now(), limit=batch, skip=skip, upto=upto)
        if not rows:
            return sent, failed
        recorder = _Recorder(ctx, rows, journal)
        handed_over = ctx.now()
        sender.send_many(
            [(r["message_id"], r["recipient"], stamp_date(r["raw"], handed_over)) for r in rows],
            recorder,
        )
        sent += recorder.sent
        failed += recorder.failed
        if len(rows) < batch or recorder.failed or recorder.sent < len(rows):
            return sent, failed


def _note_on_case(
    ctx: Context, row: sqlite3.Row, at: datetime, event: str, **detail: object
) -> None:
    """What became of a participant's mail joins its case's history (staff mail has none)."""
    if row["case_id"]:
        ctx.store.add_event(
            row["case_id"], at, "bot", event, kind=row["kind"], to=row["recipient"], **detail
        )


def _record_failure(ctx: Context, row: sqlite3.Row, error: SendError, now: datetime) -> None:
    store = ctx.store
    created = (store.outbox_row(row["id"]) or {})["created_at"]
    too_old = now - datetime.fromisoformat(created) > GIVE_UP_AFTER
    if isinstance(error, PermanentSendError) or too_old:
        store.mark_failed(row["id"], str(error))
        _note_on_case(ctx, row, now, "mail_failed", error=str(error), permanent=True)
        log.error("outbox %s to %s failed for good: %s", row["id"], row["recipient"], error)
        tell_staff_undeliverable(ctx, row["id"], str(error), now)
    else:
        store.mark_retry(row["id"], str(error), now + retry_delay(row["attempts"] + 1))
        log.warning("outbox %s to %s deferred: %s", row["id"], row["recipient"], error)


def tell_staff_undeliverable(ctx: Context, outbox_id: int, error: str, now: datetime) -> None:
    """Staff hear at once of a reply refused for good, within `planner.undeliverable_into`'s
    bound."""
    effect = Effect(now)
    undeliverable_into(effect, ctx, ctx.store.outbox_row(outbox_id), error)
    if effect.mails or effect.events:
        ctx.store.apply(effect)
