"""Backups that can be restored without losing mail (`mailbot backup`, `mailbot restore`).

A mailbox forgets nothing on its own: once a mail's bytes are committed, the IMAP server
flags it `$MailbotStored` and a Maildir file moves to cur/ with the S flag, so a run never
fetches it again. A database put back from a backup lacks every mail stored after the backup,
and without help those mails would never be read again. So each backup records, in a table of
its own copy (`backup_marks`), what each mailbox had given the store by then: for IMAP the
UIDVALIDITY and the highest UID stored, for every mailbox how many keys. After a restore the
restored database says which keys it holds, and `intake.refetch` makes every other one waiting
again. This module holds the database side: the marks, the checks of a backup file, the lock
every process holds while it has the database open, and the swap of the files.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from mailbot.errors import MailbotError
from mailbot.private import open_private, private_file
from mailbot.store.sqlite import MIGRATIONS


@dataclass(frozen=True)
class Mark:
    """What one mailbox had given the store when the backup was taken."""

    mailbox: str
    uidvalidity: int | None
    """The UIDVALIDITY of the newest IMAP keys stored (None: no IMAP key)."""
    high_uid: int
    """The highest UID stored under that UIDVALIDITY (0: none)."""
    stored: int
    taken_at: str


@dataclass(frozen=True)
class BackupFile:
    path: Path
    schema_version: int
    marks: tuple[Mark, ...]
    recorded: bool
    """False for a backup made before marks were recorded: they are read from its messages."""


MARKS_TABLE = """CREATE TABLE IF NOT EXISTS backup_marks (
    mailbox TEXT PRIMARY KEY,
    uidvalidity INTEGER,
    high_uid INTEGER NOT NULL,
    stored INTEGER NOT NULL,
    taken_at TEXT NOT NULL
)"""


def _marks_from_messages(conn: sqlite3.Connection, taken_at: str) -> list[Mark]:
    """Per mailbox: the key count, and for IMAP keys (`imap:UIDVALIDITY:UID`) the highest UID
    under the newest UIDVALIDITY (the one whose mail was stored last)."""
    marks = []
    for mailbox, stored in conn.execute(
        "SELECT mailbox, count(*) FROM messages GROUP BY mailbox ORDER BY mailbox"
    ).fetchall():
        newest = conn.execute(
            "SELECT key FROM messages WHERE mailbox = ? AND key LIKE 'imap:%'"
            " ORDER BY id DESC LIMIT 1",
            (mailbox,),
        ).fetchone()
        validity, high = None, 0
        if newest is not None:
            validity = int(newest[0].split(":")[1])
            high = conn.execute(
                "SELECT coalesce(max(CAST(substr(key, ?) AS INTEGER)), 0) FROM messages"
                " WHERE mailbox = ? AND key LIKE ?",
                (len(f"imap:{validity}:") + 1, mailbox, f"imap:{validity}:%"),
            ).fetchone()[0]
        marks.append(Mark(mailbox, validity, int(high), int(stored), taken_at))
    return marks


def record_marks(copy: Path, taken_at: datetime) -> list[Mark]:
    """Writes into the backup `copy` what each mailbox had given the store (read from the
    copy itself, so the marks and the mails it holds agree exactly). Returns the marks."""
    conn = sqlite3.connect(copy, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        marks = _marks_from_messages(conn, taken_at.isoformat(timespec="seconds"))
        conn.execute(MARKS_TABLE)
        conn.execute("DELETE FROM backup_marks")
        conn.executemany(
            "INSERT INTO backup_marks VALUES (?, ?, ?, ?, ?)",
            [(m.mailbox, m.uidvalidity, m.high_uid, m.stored, m.taken_at) for m in marks],
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return marks


def read_marks(conn: sqlite3.Connection) -> tuple[list[Mark], bool]:
    """The marks a backup recorded, and True; or, in a backup made before they were recorded,
    the same read from its messages, and False."""
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'backup_marks'"
    ).fetchone()
    if not has_table:
        return _marks_from_messages(conn, ""), False
    rows = conn.execute(
        "SELECT mailbox, uidvalidity, high_uid, stored, taken_at FROM backup_marks"
    ).fetchall()
    return [Mark(r[0], r[1], int(r[2]), int(r[3]), r[4]) for r in rows], True


def check_backup(path: Path) -> BackupFile:
    """Opens `path` read-only and checks that it is a whole mailbot database this version can
    run on: `PRAGMA integrity_check` ok, a schema version from 1 up to this code's.

    Raises MailbotError saying what is wrong; OSError when the file cannot be read."""
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise MailbotError(f"{path}: not a database: {exc}") from exc
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            raise MailbotError(f"{path}: fails its integrity check: {integrity}")
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if not 1 <= version <= len(MIGRATIONS):
            raise MailbotError(
                f"{path}: schema version {version}; this mailbot runs versions 1 to"
                f" {len(MIGRATIONS)}"
                + (" (the backup comes from a newer mailbot)" if version else "")
            )
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
        ).fetchone():
            raise MailbotError(f"{path}: not a mailbot database (no messages table)")
        marks, recorded = read_marks(conn)
    except sqlite3.DatabaseError as exc:
        raise MailbotError(f"{path}: not a readable database: {exc}") from exc
    finally:
        conn.close()
    return BackupFile(path, version, tuple(marks), recorded)


def stored_keys(conn: sqlite3.Connection, mailbox: str) -> set[str]:
    return {
        row[0] for row in conn.execute("SELECT key FROM messages WHERE mailbox = ?", (mailbox,))
    }


def stored_shas(conn: sqlite3.Connection) -> set[str]:
    """The SHA-256 of every stored mail, to match mail by content where keys cannot."""
    return {row[0] for row in conn.execute("SELECT sha256 FROM messages")}


@dataclass(frozen=True)
class SentBefore:
    """A reply the replaced database records as sent after the backup."""

    message_id: str
    recipient: str
    subject: str
    raw: bytes
    sent_at: str


def body_of(raw: bytes) -> bytes:
    """A planned or sent mail's bytes below its header block: what a reader sees, the same
    for a reply planned twice from the same mail (its Message-ID and Date are headers)."""
    cut = raw.find(b"\r\n\r\n")
    return raw[cut + 4 :] if cut >= 0 else raw


def sent_replies(database: Path, taken_at: str) -> list[SentBefore] | None:
    """Every reply the database `database` (the one a restore replaced) sent after
    `taken_at`. None when it cannot be read."""
    try:
        conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT message_id, recipient, subject, raw, sent_at FROM outbox"
                " WHERE state = 'sent' AND sent_at > ? ORDER BY sent_at, id",
                (taken_at,),
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return [SentBefore(str(r[0]), str(r[1]), str(r[2]), bytes(r[3]), str(r[4])) for r in rows]


def pending_replies(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every reply not yet sent, as `Store.due_mail` gives them, with subject and raw."""
    return conn.execute(
        "SELECT id, case_id, kind, message_id, recipient, subject, raw, attempts FROM outbox"
        " WHERE state = 'pending' ORDER BY id"
    ).fetchall()


def adopt_sent(conn: sqlite3.Connection, outbox_id: int, sent: SentBefore) -> None:
    """The pending row `outbox_id` becomes the mail `sent` that already went out (its
    Message-ID and bytes), inside the caller's transaction, so a participant's answer to
    that mail finds its thread."""
    conn.execute(
        "UPDATE outbox SET message_id = ?, raw = ? WHERE id = ?",
        (sent.message_id, sent.raw, outbox_id),
    )


def lock_path(database: Path) -> Path:
    return Path(f"{database}.in-use")


def hold_shared(database: Path) -> IO[str] | None:
    """The lock every process holds while it has the database open (`Context.open`): shared,
    so runs, the web desk and staff commands go side by side, and a restore, which needs it
    alone, is refused while any of them runs. Blocks while a restore swaps the files. Returns
    the open lock file (closing it releases the lock), or None where the lock file cannot be
    made (a read-only folder, where no restore can write either): opening the database then
    says what is wrong, as it did before the lock."""
    try:
        handle = open_private(lock_path(database), "a")  # held for the context's life
    except OSError:
        return None
    fcntl.flock(handle, fcntl.LOCK_SH)
    return handle


@contextmanager
def database_alone(database: Path) -> Iterator[None]:
    """The database to this process alone for a restore.

    Raises MailbotError when another mailbot process has it open."""
    with open_private(lock_path(database), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MailbotError(
                f"{database}: a mailbot process has the database open (mailbot run, a staff"
                " command or a web desk request): stop it, then restore"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_database(database: Path, backup: Path, stamp: str) -> Path | None:
    """Puts a copy of `backup` in place of `database` (under `database_alone`). The database
    it replaces is kept beside it as `<name>.replaced-<stamp>` (with its WAL), never deleted.
    Returns that path, or None when there was no database."""
    kept = None
    if database.exists():
        kept = database.with_name(f"{database.name}.replaced-{stamp}")
        if kept.exists():
            raise MailbotError(f"{kept}: exists; wait a second and restore again")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{database}{suffix}")
            if source.exists():
                os.replace(source, Path(f"{kept}{suffix}"))
    incoming = database.with_name(f"{database.name}.restoring")
    shutil.copyfile(backup, private_file(incoming))  # copyfile keeps the 0600 it finds
    with open(incoming, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(incoming, database)
    _fsync_dir(database.parent)
    return kept
