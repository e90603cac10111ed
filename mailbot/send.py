"""Delivering the outbox: SMTP (aiosmtplib) or a Maildir folder (the embedded default).

The sender takes due rows, delivers the bytes planned for them, and marks them sent; transient
failures back off and retry, permanent ones are recorded on the case. It never renders or plans.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import aiosmtplib

from mailbot.config import OutgoingConfig
from mailbot.context import Context
from mailbot.errors import PermanentSendError, SendError, TransientSendError
from mailbot.mailboxes.maildir import deliver
from mailbot.notices import NOTICE_KINDS, mark_notified
from mailbot.planner import retry_delay

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(days=2)


class Sender(Protocol):
    def send_many(self, items: list[tuple[str, str, bytes]]) -> list[SendError | None]:
        """Deliver (message_id, recipient, raw) items; one result per item, None when sent."""
        ...


class MaildirSender:
    """Each sent mail becomes one file in `<path>/new/`, named by its outbox Message-ID so a
    second delivery of the same row overwrites rather than duplicates."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def send_many(self, items: list[tuple[str, str, bytes]]) -> list[SendError | None]:
        results: list[SendError | None] = []
        for message_id, _recipient, raw in items:
            unique = message_id.strip("<>").replace("/", "_").replace("@", "_at_")
            try:
                deliver(self.path, raw, f"{unique}.eml")
                results.append(None)
            except OSError as exc:
                results.append(TransientSendError(f"{self.path}: {exc.strerror}"))
        return results


@dataclass
class SmtpSender:
    config: OutgoingConfig
    envelope_from: str
    ssl_context: ssl.SSLContext | None = None

    def send_many(self, items: list[tuple[str, str, bytes]]) -> list[SendError | None]:
        return asyncio.run(self._send_many(items))

    async def _send_many(self, items: list[tuple[str, str, bytes]]) -> list[SendError | None]:
        cfg = self.config
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.security == "ssl",
            start_tls=cfg.security == "starttls",
            tls_context=self.ssl_context,
            timeout=cfg.timeout,
        )
        try:
            await client.connect()
            if cfg.username and cfg.password is not None:
                await client.login(cfg.username, cfg.password)
        except (aiosmtplib.SMTPException, OSError) as exc:
            error = _classify(exc, f"{cfg.host}:{cfg.port}")
            return [error for _ in items]
        results: list[SendError | None] = []
        try:
            for _message_id, recipient, raw in items:
                try:
                    await client.sendmail(self.envelope_from, [recipient], raw)
                    results.append(None)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    results.append(_classify(exc, recipient))
                    if not client.is_connected:
                        await client.connect()
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()
        return results


def _classify(exc: BaseException, what: str) -> SendError:
    code = getattr(exc, "code", None)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        code = exc.recipients[0].code
    detail = getattr(exc, "message", None) or exc
    message = f"{what}: {type(exc).__name__}: {f'{code} ' if isinstance(code, int) else ''}{detail}"
    if isinstance(code, int) and 500 <= code < 600:
        return PermanentSendError(message, code)
    return TransientSendError(message, code if isinstance(code, int) else None)


def make_sender(ctx: Context) -> Sender:
    cfg = ctx.config.outgoing
    if cfg.backend == "maildir":
        assert cfg.path is not None
        return MaildirSender(cfg.path)
    envelope = cfg.username if cfg.username and "@" in cfg.username else ctx.address_for("code")
    return SmtpSender(cfg, envelope)


def flush_outbox(ctx: Context, sender: Sender, batch: int = 200) -> tuple[int, int]:
    """Send every due row. Returns (sent, failed-or-deferred)."""
    sent = failed = 0
    store = ctx.store
    while True:
        now = ctx.now()
        rows = store.due_mail(now, limit=batch)
        if not rows:
            return sent, failed
        items = [(r["message_id"], r["recipient"], r["raw"]) for r in rows]
        results = sender.send_many(items)
        now = ctx.now()
        with store.transaction():
            for row, error in zip(rows, results, strict=True):
                if error is None:
                    store.mark_sent(row["id"], now)
                    if row["case_id"]:
                        store.add_event(
                            row["case_id"],
                            now,
                            "bot",
                            "mail_sent",
                            kind=row["kind"],
                            to=row["recipient"],
                            message_id=row["message_id"],
                        )
                    if row["kind"] in NOTICE_KINDS:
                        mark_notified(ctx, row["message_id"], now)
                    sent += 1
                    continue
                failed += 1
                _record_failure(ctx, row, error, now)
        if len(rows) < batch or failed:
            return sent, failed


def _record_failure(ctx: Context, row: sqlite3.Row, error: SendError, now: datetime) -> None:
    store = ctx.store
    created = store.execute("SELECT created_at FROM outbox WHERE id = ?", (row["id"],)).fetchone()[
        0
    ]
    too_old = now - datetime.fromisoformat(created) > GIVE_UP_AFTER
    if isinstance(error, PermanentSendError) or too_old:
        store.mark_failed(row["id"], str(error))
        if row["case_id"]:
            store.add_event(
                row["case_id"],
                now,
                "bot",
                "mail_failed",
                kind=row["kind"],
                to=row["recipient"],
                error=str(error),
                permanent=True,
            )
        log.error("outbox %s to %s failed for good: %s", row["id"], row["recipient"], error)
    else:
        store.mark_retry(row["id"], str(error), now + retry_delay(row["attempts"] + 1))
        log.warning("outbox %s to %s deferred: %s", row["id"], row["recipient"], error)
