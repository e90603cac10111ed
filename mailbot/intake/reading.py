"""Whether each mailbox can be read, told to the people who must fix it.

A mailbox that cannot be read (a refused login, a certificate the server's name does not
match, a name that does not resolve, a server that does not answer) is retried with a capped
backoff, logged once when it starts failing, when the kind of failure changes and when it is
read again (and every LOG_EVERY while it lasts, not every retry), recorded in the store
(`mailbox_status`, which /healthz, /metrics and `mailbot doctor` read), and, once it has lasted
`[monitoring] mailbox_alert_minutes`, mailed to `[staff] addresses`, then at most hourly while
it lasts. Times come from the run's clock (`--now`).
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from mailbot.context import Context
from mailbot.errors import StoreError
from mailbot.mail.render import jdatetime
from mailbot.outbox.planner import staff_mail
from mailbot.store import Store
from mailbot.store.effect import Effect
from mailbot.store.monitor import MailboxStatus

log = logging.getLogger(__name__)

FIRST_BACKOFF = 5.0
MAX_BACKOFF = 300.0
LOG_EVERY = 15 * 60.0  # a failure that lasts is logged again this often (monotonic seconds)
OK_EVERY = 30.0  # a mailbox read well is recorded at most this often
ALERT_EVERY = timedelta(hours=1)
KIND_LABELS = {
    "auth": "ログインが拒否されました（ユーザー名・パスワード・トークンをご確認ください）",
    "tls": "TLS（証明書）の検証に失敗しました",
    "dns": "サーバー名を解決できません（DNS）",
    "connection": "サーバーに接続できません（接続拒否・応答なし）",
    "other": "メールボックスを読み取れません",
}


def failure_kind(exc: BaseException) -> str:
    """auth, tls, dns, connection or other, from the exception and the ones it came from."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror):
            return "dns"
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return "tls"
        if isinstance(seen, ConnectionError | TimeoutError | socket.timeout):
            return "connection"
        name = type(seen).__name__.lower()
        text = str(seen).lower()
        if "login" in name or "auth" in name or "login refused" in text:
            return "auth"
        seen = seen.__cause__ or seen.__context__
    return "other"


class ReadingState:
    """One watcher's view of its mailbox: the backoff, what was logged, what was recorded.
    `store` is the watcher's own connection; a record the write lock keeps out past the
    store's busy timeout is skipped (the next read records again), never raised."""

    def __init__(self, address: str, store: Store, now: Callable[[], datetime]) -> None:
        self.address, self.store, self.now = address, store, now
        self.failing_kind: str | None = None
        self.failing_at = 0.0
        self.backoff = FIRST_BACKOFF
        self.logged_at = 0.0
        self.recorded_ok_at = -OK_EVERY

    def ok(self) -> None:
        """A good read: log the recovery once, record it (at most every OK_EVERY)."""
        moment = time.monotonic()
        if self.failing_kind is not None:
            log.warning(
                "mailbox %s: read again after %.0f s unreadable",
                self.address,
                moment - self.failing_at,
            )
        elif moment - self.recorded_ok_at < OK_EVERY:
            return
        self._record(lambda at: self.store.record_mailbox_ok(self.address, at))
        self.failing_kind = None
        self.backoff = FIRST_BACKOFF
        self.recorded_ok_at = moment

    def failed(self, exc: BaseException) -> float:
        """A failed read: log it when it is news, record it; returns the seconds to wait
        before the next try (FIRST_BACKOFF doubling to MAX_BACKOFF)."""
        kind = failure_kind(exc)
        moment = time.monotonic()
        if self.failing_kind is None:
            self.failing_at = moment
        if kind != self.failing_kind:
            log.warning("mailbox %s unreadable (%s): %s", self.address, kind, exc)
            self.logged_at = moment
        elif moment - self.logged_at >= LOG_EVERY:
            log.warning(
                "mailbox %s still unreadable after %.0f s (%s): %s",
                self.address,
                moment - self.failing_at,
                kind,
                exc,
            )
            self.logged_at = moment
        self.failing_kind = kind
        self._record(lambda at: self.store.record_mailbox_failure(self.address, kind, str(exc), at))
        delay = self.backoff
        self.backoff = min(self.backoff * 2, MAX_BACKOFF)
        log.info("mailbox %s: retrying in %.0f s", self.address, delay)
        return delay

    def _record(self, write: Callable[[datetime], None]) -> None:
        try:
            with self.store.transaction():
                write(self.now())
        except StoreError as exc:
            log.debug("mailbox %s: status not recorded: %s", self.address, exc)


def record_read(ctx: Context, address: str, error: BaseException | None) -> None:
    """`run --once`: what its one read of a mailbox came to."""
    with ctx.store.transaction():
        if error is None:
            ctx.store.record_mailbox_ok(address, ctx.now())
        else:
            ctx.store.record_mailbox_failure(address, failure_kind(error), str(error), ctx.now())


def alert_unreadable(ctx: Context) -> list[str]:
    """Mails staff about each mailbox unreadable for `mailbox_alert_minutes`, at most once an
    hour per mailbox while it lasts (looked at again under the write lock, so the daemon and
    a `run --once` beside it tell staff once). Returns the addresses told about."""
    now = ctx.now()
    threshold = ctx.config.monitoring.mailbox_alert_minutes * 60
    told = []
    for box in ctx.config.mailboxes:
        status = ctx.store.mailbox_statuses().get(box.address)
        if not _alert_due(status, now, threshold):
            continue
        with ctx.store.transaction():
            status = ctx.store.mailbox_statuses().get(box.address)
            if not _alert_due(status, now, threshold):
                continue
            assert status is not None and status.failing_since is not None
            subject, body = ctx.renderer.mail(
                "staff_mailbox_unreadable",
                {
                    "mailbox": box.address,
                    "since": datetime.fromisoformat(status.failing_since),
                    "minutes": int(status.failing_for(now) // 60),
                    "kind": KIND_LABELS.get(status.failure_kind or "other", KIND_LABELS["other"]),
                    "error": status.last_error or "",
                },
            )
            effect = Effect(now)
            effect.mails += [
                staff_mail(ctx, "staff_mailbox_unreadable", address, subject, body, now)
                for address in ctx.config.staff_addresses
            ]
            if effect.mails:
                ctx.store.apply(effect)
            else:
                log.warning("mailbox %s unreadable, and no [staff] addresses to tell", box.address)
            ctx.store.mark_mailbox_alerted(box.address, now)
        log.warning(
            "mailbox %s unreadable since %s: staff told",
            box.address,
            jdatetime(status.failing_since),
        )
        told.append(box.address)
    return told


def _alert_due(status: MailboxStatus | None, now: datetime, threshold: float) -> bool:
    if status is None or status.failing_for(now) < threshold:
        return False
    alerted = status.alerted_at
    return not alerted or now - datetime.fromisoformat(alerted) >= ALERT_EVERY
