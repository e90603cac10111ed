"""What operations watch: each mailbox's last good read and how long it has failed (written by
the run's watchers, read by every process), and the numbers of /healthz and /metrics.

The writes are a mixin of `Store`. The reads (`observe`) open the database read-only, as
`store/health.py` does for doctor: a probe never migrates, locks or creates anything, and a
missing or unreadable file is an answer ("database unreachable"), not an exception. Every
number is counted from stored rows, so two processes (`mailbot run` and `mailbot web`) and a
restart agree on them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

MIGRATION = """
CREATE TABLE mailbox_status (
    mailbox TEXT PRIMARY KEY,
    last_ok_at TEXT,
    failing_since TEXT,
    failure_kind TEXT,
    last_error TEXT,
    alerted_at TEXT,
    updated_at TEXT NOT NULL
);
"""
"""Schema step: one row per mailbox address, upserted by the watcher that reads it."""


def _t(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


@dataclass(frozen=True)
class MailboxStatus:
    """A mailbox as its reader last saw it. Times are ISO-8601 text as stored."""

    mailbox: str
    last_ok_at: str | None
    failing_since: str | None
    failure_kind: str | None
    last_error: str | None
    alerted_at: str | None

    def failing_for(self, now: datetime) -> float:
        """Seconds the mailbox has been unreadable (0 when it is read)."""
        if not self.failing_since:
            return 0.0
        return max(0.0, (now - datetime.fromisoformat(self.failing_since)).total_seconds())

    def last_ok_age(self, now: datetime) -> float | None:
        """Seconds since the last good read (None: never read)."""
        if not self.last_ok_at:
            return None
        return max(0.0, (now - datetime.fromisoformat(self.last_ok_at)).total_seconds())


def _status(row: sqlite3.Row | tuple[Any, ...]) -> MailboxStatus:
    return MailboxStatus(*tuple(row)[:6])


_COLUMNS = "mailbox, last_ok_at, failing_since, failure_kind, last_error, alerted_at"


class MonitorQueries:
    """Mixed into `Store`; every method runs on the store's one connection, each write in a
    transaction of its own unless the caller holds one."""

    execute: Callable[..., sqlite3.Cursor]

    def record_mailbox_ok(self, mailbox: str, at: datetime) -> None:
        """A good read (a fetch, an IDLE answer): the failure, if any, is over."""
        self.execute(
            "INSERT INTO mailbox_status (mailbox, last_ok_at, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (mailbox) DO UPDATE SET last_ok_at = excluded.last_ok_at,"
            " failing_since = NULL, failure_kind = NULL, last_error = NULL, alerted_at = NULL,"
            " updated_at = excluded.updated_at",
            (mailbox, _t(at), _t(at)),
        )

    def record_mailbox_failure(self, mailbox: str, kind: str, error: str, at: datetime) -> None:
        """A failed read: `failing_since` keeps the first failure of the run of failures."""
        self.execute(
            "INSERT INTO mailbox_status (mailbox, failing_since, failure_kind, last_error,"
            " updated_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (mailbox) DO UPDATE SET"
            " failing_since = coalesce(failing_since, excluded.failing_since),"
            " failure_kind = excluded.failure_kind, last_error = excluded.last_error,"
            " updated_at = excluded.updated_at",
            (mailbox, _t(at), kind, error[:500], _t(at)),
        )

    def mark_mailbox_alerted(self, mailbox: str, at: datetime) -> None:
        self.execute(
            "UPDATE mailbox_status SET alerted_at = ? WHERE mailbox = ?", (_t(at), mailbox)
        )

    def mailbox_statuses(self) -> dict[str, MailboxStatus]:
        rows = self.execute(f"SELECT {_COLUMNS} FROM mailbox_status").fetchall()
        return {row[0]: _status(row) for row in rows}


def read_mailbox_statuses(path: Path) -> dict[str, MailboxStatus]:
    """The recorded reads, read-only (for doctor). Raises sqlite3.Error when the file is not
    a readable database; an empty answer from a database older than the table."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'mailbox_status'"
        ).fetchone():
            return {}
        rows = conn.execute(f"SELECT {_COLUMNS} FROM mailbox_status").fetchall()
    finally:
        conn.close()
    return {row[0]: _status(row) for row in rows}


@dataclass
class Observation:
    """One read of the database for /healthz and /metrics. `error` is set (and the numbers
    left empty) when the database cannot be read."""

    error: str | None = None
    mailboxes: dict[str, MailboxStatus] = field(default_factory=dict)
    received: dict[str, int] = field(default_factory=dict)
    processed: dict[str, int] = field(default_factory=dict)
    """By outcome, cut at its first colon ("not answered: Auto-Submitted: …" counts as "not
    answered"): a label value is never a sender's header text."""
    quarantined: int = 0
    replies: dict[str, int] = field(default_factory=dict)
    open_cases: dict[str, int] = field(default_factory=dict)
    overdue: int = 0
    oldest_unprocessed: str | None = None
    outbox_due: int = 0
    oldest_due: str | None = None


def observe(path: Path, now: datetime, today: str) -> Observation:
    """Everything /healthz and /metrics show, read in one read-only snapshot. `today` is the
    local (Tokyo) date a due date is compared with, as the queue does."""
    if not path.is_file():
        return Observation(error=f"{path}: no database")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return Observation(error=f"{path}: {exc}")
    try:
        conn.execute("BEGIN")
        return _read(conn, now, today)
    except sqlite3.Error as exc:
        return Observation(error=f"{path}: {exc}")
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, now: datetime, today: str) -> Observation:
    seen = Observation()
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "mailbox_status" in tables:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM mailbox_status").fetchall()
        seen.mailboxes = {row[0]: _status(row) for row in rows}
    seen.received = dict(conn.execute("SELECT mailbox, count(*) FROM messages GROUP BY mailbox"))
    seen.processed = dict(
        conn.execute(
            "SELECT CASE WHEN instr(o, ':') THEN substr(o, 1, instr(o, ':') - 1) ELSE o END,"
            " count(*) FROM (SELECT coalesce(outcome, state) AS o FROM messages"
            " WHERE state != 'stored') GROUP BY 1"
        )
    )
    seen.quarantined = conn.execute(
        "SELECT count(*) FROM messages WHERE state = 'quarantined'"
    ).fetchone()[0]
    sent, failed, bounced, attempts, finished = conn.execute(
        "SELECT count(sent_at), count(*) FILTER (WHERE state = 'failed'),"
        " count(*) FILTER (WHERE state = 'bounced'), coalesce(sum(attempts), 0),"
        " count(*) FILTER (WHERE state IN ('sent', 'failed', 'bounced')) FROM outbox"
    ).fetchone()
    seen.replies = {
        "sent": sent,
        "deferred": attempts - finished,
        "failed": failed,
        "bounced": bounced,
    }
    seen.open_cases = dict(
        conn.execute(
            "SELECT status, count(*) FROM cases WHERE status NOT IN ('closed', 'ignored')"
            " GROUP BY status"
        )
    )
    seen.overdue = conn.execute(
        "SELECT count(*) FROM cases WHERE status NOT IN ('closed', 'ignored')"
        " AND coalesce(due, '') != '' AND substr(due, 1, 10) < ?",
        (today,),
    ).fetchone()[0]
    seen.oldest_unprocessed = conn.execute(
        "SELECT min(received_at) FROM messages WHERE state = 'stored'"
    ).fetchone()[0]
    seen.outbox_due, seen.oldest_due = conn.execute(
        "SELECT count(*), min(send_at) FROM outbox WHERE state = 'pending' AND send_at <= ?",
        (_t(now),),
    ).fetchone()
    return seen


def age(text: str | None, now: datetime) -> float:
    """Seconds from an ISO-8601 instant to `now` (0 for none)."""
    if not text:
        return 0.0
    return max(0.0, (now - datetime.fromisoformat(text)).total_seconds())
