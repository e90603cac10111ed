"""What `mailbot doctor` and `mailbot backup` read from a database file without opening it as a
`Store`: read-only, so a check never migrates, locks or creates anything."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mailbot.private import private_file
from mailbot.store.journal import journal_path


@dataclass(frozen=True)
class Health:
    integrity: str
    stored: int
    oldest_stored: str | None
    due: int
    oldest_due: str | None
    undeliverable: int
    journalled: int = 0


def read_health(path: Path, now: datetime) -> Health:
    """Raises sqlite3.Error when the file is not a readable database."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        integrity = conn.execute("PRAGMA quick_check").fetchone()[0]
        stored = conn.execute(
            "SELECT count(*), min(received_at) FROM messages WHERE state = 'stored'"
        ).fetchone()
        due = conn.execute(
            "SELECT count(*), min(send_at) FROM outbox WHERE state = 'pending' AND send_at <= ?",
            (now.isoformat(timespec="seconds"),),
        ).fetchone()
        failed = conn.execute(
            "SELECT count(*) FROM outbox WHERE state IN ('failed', 'bounced')"
        ).fetchone()[0]
    finally:
        conn.close()
    return Health(integrity, stored[0], stored[1], due[0], due[1], failed, _journalled(path))


def _journalled(database: Path) -> int:
    """Replies a stopped run sent and recorded only in its send journal (store/journal.py)."""
    path = journal_path(database)
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM sent").fetchone()[0])
    finally:
        conn.close()


def backup_checked(source: sqlite3.Connection, target: Path) -> str:
    """SQLite's online backup into `target` (created 0600: it is the whole database);
    returns the copy's integrity check result."""
    copy = sqlite3.connect(private_file(target))
    try:
        source.backup(copy, pages=1024)
        return str(copy.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        copy.close()
