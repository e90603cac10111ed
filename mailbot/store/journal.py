"""The send journal: where the sender that goes along (`run --once` on a backlog) records each
reply the server accepted, instead of in the database.

The database's write lock is the main process's for most of a drain (a batch's transaction
is open while its mails are checked), so a sender recording each send there waited out one
batch per reply, and half of the replies were left for after the last batch. The journal is a
second SQLite file beside the database (`<database>.sends`) that senders write, each entry
committed with `synchronous=FULL` before the next reply goes, exactly as a send record in the
database was: a process killed between the server's answer and that commit repeats at most the
one reply in flight. The main process folds the entries into the database (the reply marked
sent, its case's history, a notice's objection window) after each batch's commit, in a FULL
commit that also makes the batch durable before its replies go, and then drops them; a sender
never takes a reply the journal names as due, and what a killed run left is folded before the
next run processes anything.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from mailbot.errors import StoreError
from mailbot.private import private_file
from mailbot.store.sqlite import BUSY_SECONDS, narrow_companions

SUFFIX = ".sends"


def journal_path(database: Path) -> Path:
    return database.with_name(database.name + SUFFIX)


class SendJournal:
    """One connection to the journal file; entries are (seq, outbox row, its Message-ID, sent
    at). The Message-ID is checked when folding: an outbox row id alone could name another
    reply in a database restored from a backup."""

    def __init__(self, database: Path, create: bool = True) -> None:
        self.path = journal_path(database)
        self.conn: sqlite3.Connection | None = None
        if not create and not self.path.exists():
            return
        try:
            private_file(self.path)
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_SECONDS)
            self.conn.execute("PRAGMA journal_mode=WAL")
            narrow_companions(self.path)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS sent (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " outbox_id INTEGER NOT NULL, message_id TEXT NOT NULL, at TEXT NOT NULL)"
            )
        except (sqlite3.Error, OSError) as exc:
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

    def record(self, outbox_id: int, message_id: str, at: datetime) -> None:
        """Durable before it returns (the next reply may go only after it)."""
        assert self.conn is not None
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute(
                    "INSERT INTO sent (outbox_id, message_id, at) VALUES (?, ?, ?)",
                    (outbox_id, message_id, at.isoformat()),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot record a send: {exc}") from exc

    def entries(self) -> list[tuple[int, int, str, datetime]]:
        """(seq, outbox row, Message-ID, sent at) of every entry not yet folded, oldest first:
        each sender's, not only this connection's (two runs may send from one outbox)."""
        if self.conn is None:
            return []
        try:
            rows = self.conn.execute(
                "SELECT seq, outbox_id, message_id, at FROM sent ORDER BY seq"
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read the send journal: {exc}") from exc
        return [(seq, row, mid, datetime.fromisoformat(at)) for seq, row, mid, at in rows]

    def named(self) -> set[int]:
        """The outbox rows the journal says were sent: no sender may take them as due."""
        return {outbox_id for _, outbox_id, _, _ in self.entries()}

    def clear(self, upto: int) -> None:
        """Drops the entries up to `upto`: call only once their fold is durable (a FULL
        commit of the database), since an entry dropped before that is a reply sent again.
        Entries written since (seq only grows: AUTOINCREMENT) stay."""
        if self.conn is None:
            return
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("DELETE FROM sent WHERE seq <= ?", (upto,))
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot clear the send journal: {exc}") from exc
