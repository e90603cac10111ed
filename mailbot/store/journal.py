"""The send journal: where the sender that goes along (`run --once` on a backlog) records each
reply the server accepted, instead of in the database.

The database's write lock is the main process's for most of a drain (a batch's transaction
is open while its mails are checked), so a sender recording each send there waited out one
batch per reply, and half of the replies were left for after the last batch. The journal is a
second SQLite file beside the database (`<database>.sends`) that only the sender writes, each
entry committed with `synchronous=FULL` before the next reply goes, exactly as a send record in
the database was: a process killed between the server's answer and that commit repeats at
most the one reply in flight. The main process folds the entries into the database (the
reply marked sent, its case's history, a notice's objection window) after each batch's
commit; every sender folds what a killed run left before it sends anything, so no journalled
reply goes out again.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from mailbot.errors import StoreError
from mailbot.store.sqlite import BUSY_SECONDS

SUFFIX = ".sends"


def journal_path(database: Path) -> Path:
    return database.with_name(database.name + SUFFIX)


class SendJournal:
    """One connection to the journal file; entries are (seq, outbox row, sent at). `seq`
    never goes back (AUTOINCREMENT), so a reader that remembers the last entry it folded
    reads only newer ones even after another process cleared the folded ones. `recorded`:
    the outbox rows recorded through this connection, which its sender must not take as
    due again before they are folded."""

    def __init__(self, database: Path, create: bool = True) -> None:
        self.path = journal_path(database)
        self.conn: sqlite3.Connection | None = None
        self.recorded: set[int] = set()
        if not create and not self.path.exists():
            return
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS sent (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " outbox_id INTEGER NOT NULL, at TEXT NOT NULL)"
            )
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"{self.path}: cannot open the send journal: {exc}") from exc

    def __enter__(self) -> SendJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def record(self, outbox_id: int, at: datetime) -> None:
        """Durable before it returns (the next reply may go only after it)."""
        assert self.conn is not None
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute(
                    "INSERT INTO sent (outbox_id, at) VALUES (?, ?)", (outbox_id, at.isoformat())
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record a send: {exc}") from exc
        self.recorded.add(outbox_id)

    def entries(self, after: int = 0) -> list[tuple[int, int, datetime]]:
        """(seq, outbox row, sent at) of the entries newer than `after`, oldest first."""
        if self.conn is None:
            return []
        try:
            rows = self.conn.execute(
                "SELECT seq, outbox_id, at FROM sent WHERE seq > ? ORDER BY seq", (after,)
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read the send journal: {exc}") from exc
        return [(seq, outbox_id, datetime.fromisoformat(at)) for seq, outbox_id, at in rows]

    def clear(self, upto: int) -> None:
        """Drops the entries up to `upto`: call only once their fold is durable (a FULL
        commit of the database), since an entry dropped before that is a reply sent again."""
        if self.conn is None:
            return
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("DELETE FROM sent WHERE seq <= ?", (upto,))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot clear the send journal: {exc}") from exc
