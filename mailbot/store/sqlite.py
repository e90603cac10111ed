"""The SQLite store: raw mails, cases, the event log, the outbox. Owns the schema.

Raw bytes are committed before a mailbox is told to ack them; a case change, its events and the
replies it plans are written in one transaction (`Store.transaction`). The schema carries a
version (`PRAGMA user_version`) and moves forward only through the ordered `MIGRATIONS`.
This module never sends mail and never parses it (beyond `mailbot.mail.arrival`'s look at the
topmost Received header when the mailbox gave no arrival time, migration step 9, which
reads the thread headers of mails processed before it once, and `order_key`'s and
`answers_a_thread`'s byte patterns over the raw header block, for ordering only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from mailbot.errors import StoreBusy, StoreError
from mailbot.mail.arrival import arrival_time
from mailbot.mail.parse import parse
from mailbot.private import narrow, private_file
from mailbot.store.desk import DeskQueries
from mailbot.store.deskwork import DESK_WORK, DeskWork
from mailbot.store.effect import Effect
from mailbot.store.monitor import MIGRATION as MONITOR_MIGRATION
from mailbot.store.monitor import MonitorQueries
from mailbot.store.queries import Queries
from mailbot.store.searchfold import case_number, fold
from mailbot.store.waiting import PARTICIPANT_WAITS, WaitingQueries, waiting_since_sql
from mailbot.text import name_key

log = logging.getLogger(__name__)
T = TypeVar("T")


def _thread_columns(conn: sqlite3.Connection) -> None:
    """Step 10: a processed mail keeps what a later reply's thread needs (its References and the
    sender's display name beside the Message-ID, subject and address kept already), so the
    desk answers in the participant's thread without parsing the stored raw mail again.
    Mails processed before this step: the latest of each case (the one a reply answers) is
    parsed once, here; one today's parser cannot read keeps empty columns, and its case's
    next reply starts a thread of its own rather than stopping the upgrade."""
    conn.execute("ALTER TABLE messages ADD COLUMN thread_references TEXT")
    conn.execute("ALTER TABLE messages ADD COLUMN sender_name TEXT")
    latest = conn.execute(
        "SELECT max(id) FROM messages WHERE state = 'done' AND case_id IS NOT NULL GROUP BY case_id"
    ).fetchall()
    for (message_row,) in latest:
        raw = conn.execute("SELECT raw FROM messages WHERE id = ?", (message_row,)).fetchone()[0]
        try:
            mail = parse(bytes(raw))
        except Exception:
            continue
        conn.execute(
            "UPDATE messages SET thread_references = ?, sender_name = ? WHERE id = ?",
            (json.dumps(list(mail.references)), mail.from_name, message_row),
        )


_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FROM_FIELD = re.compile(rb"^from[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
_THREAD_FIELD = re.compile(rb"^(?:in-reply-to|references)[ \t]*:", re.IGNORECASE | re.MULTILINE)
_ANGLE_ADDRESS = re.compile(rb"<([^\s<>@]+@[^\s<>@]+)>")
_BARE_ADDRESS = re.compile(rb"[^\s<>()\",;:@]+@[^\s<>()\",;:@]+")
ORDER_KEY_HEADER_BYTES = 64 * 1024


def _operator_name_keys(conn: sqlite3.Connection) -> None:
    """Step 12: each operator's `name_key` (`text.name_key`), indexed: an application's
    事業者名称 is looked up in the register once per mail, which read and folded every
    operator's row before."""
    conn.execute("ALTER TABLE operators ADD COLUMN name_key TEXT")
    for code, name in conn.execute("SELECT code, name FROM operators").fetchall():
        conn.execute("UPDATE operators SET name_key = ? WHERE code = ?", (name_key(name), code))
    conn.execute("CREATE INDEX operators_name_key ON operators (name_key)")


def _header_block(raw: bytes) -> bytes:
    head = raw[:ORDER_KEY_HEADER_BYTES]
    end = _HEADER_END.search(head)
    return head[: end.start()] if end else head


def order_key(raw: bytes) -> str | None:
    """The lower-cased address of the first From field of the raw header block, read with a
    bytes pattern and no parse; None when there is none, or it is encoded or unreadable.
    Used ONLY to keep one sender's mails in arrival order when newer mail goes ahead of a
    backlog (`fresh_messages`): never for trust, identity or where a reply goes (that is the
    parsed, checked sender), so a forged or odd From can at most change which mail waits."""
    field = _FROM_FIELD.search(_header_block(raw))
    if field is None:
        return None
    value = field.group(1).strip()
    angled = _ANGLE_ADDRESS.findall(value)
    bare = _BARE_ADDRESS.fullmatch(value)
    address = angled[-1] if angled else bare.group(0) if bare else None
    if address is None:
        return None
    try:
        return address.decode("ascii").lower()
    except UnicodeDecodeError:
        return None


def answers_a_thread(raw: bytes) -> bool:
    """Whether the raw header block has In-Reply-To or References: such a mail may answer a
    mail still waiting, from another address too (a colleague's reply-all), so it never goes
    ahead of a backlog (`fresh_messages`); ordering only, like `order_key`."""
    return _THREAD_FIELD.search(_header_block(raw)) is not None


def _order_keys(conn: sqlite3.Connection) -> None:
    """Step 11: each stored mail's ordering key (`order_key`) and whether it answers a thread
    (`answers_a_thread`), so that mail arriving while a backlog drains may go ahead of it
    without overtaking its own sender's earlier mail or the mail it answers. Mails still
    waiting get theirs now, from the first bytes of the raw mail only."""
    conn.execute("ALTER TABLE messages ADD COLUMN order_key TEXT")
    conn.execute("ALTER TABLE messages ADD COLUMN answers_thread INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        "CREATE INDEX messages_waiting_by_key ON messages (order_key, id) WHERE state = 'stored'"
    )
    waiting = conn.execute(
        "SELECT id, substr(raw, 1, ?) FROM messages WHERE state = 'stored'",
        (ORDER_KEY_HEADER_BYTES,),
    ).fetchall()
    conn.executemany(
        "UPDATE messages SET order_key = ?, answers_thread = ? WHERE id = ?",
        [
            (order_key(bytes(head)), answers_a_thread(bytes(head)), message_row)
            for message_row, head in waiting
        ],
    )


_MAIL_VIEWS = """
    CREATE TABLE mail_views (
        message INTEGER PRIMARY KEY REFERENCES messages (id),
        case_id INTEGER NOT NULL,
        received_at TEXT NOT NULL,
        state TEXT NOT NULL,
        outcome TEXT,
        shown TEXT NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX mail_views_case ON mail_views (case_id);
    """
"""Step 19: what staff are shown of a processed mail (sender, recipients, subject, HTML or
not, attachments by name, size and type: `mail/shown.py`; the body text; where and how it
ended), kept when it is processed so that a case page never parses raw mail. A table of its
own: every column of `messages` after `raw` is reached only by walking the raw mail's chain
of overflow pages (reading `state` of eight 26 MB mails took 0.3 s). Mails processed before
this step get theirs the first time their case is shown (`desk/mailview.py`), one parse
each, rather than here: a database of 100,000 mails would parse them all in the upgrade."""

_STAFF_DESK = """
    CREATE TABLE staff (
        login TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    ALTER TABLE cases ADD COLUMN owner TEXT REFERENCES staff (login);
    CREATE INDEX cases_owner ON cases (owner);
    ALTER TABLE messages ADD COLUMN body_text TEXT;
    ALTER TABLE messages ADD COLUMN attachment_names TEXT NOT NULL DEFAULT '[]';
    CREATE INDEX IF NOT EXISTS messages_by_case ON messages (case_id);
    CREATE VIRTUAL TABLE case_search USING fts5 (
        subject, sender, company, body, attachments, tokenize = 'trigram'
    );
    INSERT INTO case_search (rowid, subject, sender, company, body, attachments)
        SELECT id, coalesce(subject, ''), coalesce(sender, '') || ' ' || coalesce(sender_name, ''),
               coalesce(operator_code, ''), '', '' FROM cases;
    CREATE TABLE web_sessions (
        token_hash TEXT PRIMARY KEY,
        login TEXT NOT NULL REFERENCES staff (login),
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        seen_at TEXT NOT NULL
    );
    CREATE TABLE login_failures (
        at TEXT NOT NULL,
        login TEXT NOT NULL,
        client TEXT NOT NULL
    );
    CREATE INDEX login_failures_at ON login_failures (at);
    """
"""Step 5: staff accounts, owners, the search index and the web desk's sessions."""

_PROCESSING_STARTS = """
    CREATE TABLE processing_starts (
        message INTEGER PRIMARY KEY REFERENCES messages (id),
        starts INTEGER NOT NULL
    );
    ALTER TABLE messages ADD COLUMN digest TEXT;
    CREATE INDEX messages_digest ON messages (digest);
    CREATE TABLE report_rows (
        report TEXT NOT NULL,
        case_id INTEGER NOT NULL,
        version INTEGER NOT NULL,
        made_at TEXT NOT NULL,
        PRIMARY KEY (report, case_id)
    );
    """
"""Step 6 of a database made since the staff desk: the crash-loop breaker's counts, content
digests and the rows a morning report listed."""


def _step_six(conn: sqlite3.Connection) -> None:
    """Step 6. Before the staff desk (up to 34f1d6d) `_PROCESSING_STARTS` was step 5, so a
    database that version left at 5 has it and lacks `_STAFF_DESK`: it gets the staff desk
    here instead, and both histories arrive at the same schema."""
    had = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'processing_starts'"
    ).fetchone()
    run_script(conn, _STAFF_DESK if had else _PROCESSING_STARTS)


def _fold_search_index(conn: sqlite3.Connection) -> None:
    """The search index folded (`searchfold.fold`) as queries now are: each row rewritten
    from its own stored text."""
    rows = conn.execute(
        "SELECT rowid, subject, sender, company, body, attachments FROM case_search"
    ).fetchall()
    for row in rows:
        conn.execute("DELETE FROM case_search WHERE rowid = ?", (row[0],))
        conn.execute(
            "INSERT INTO case_search (rowid, subject, sender, company, body, attachments)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (row[0], *(fold(value or "") for value in row[1:])),
        )


def run_script(conn: sqlite3.Connection, script: str) -> None:
    """A migration step's statements, in the caller's transaction."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        mailbox TEXT NOT NULL,
        key TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        raw BLOB NOT NULL,
        received_at TEXT NOT NULL,
        message_id TEXT,
        sender TEXT,
        subject TEXT,
        state TEXT NOT NULL DEFAULT 'stored',
        case_id INTEGER,
        outcome TEXT,
        processed_at TEXT,
        UNIQUE (mailbox, key)
    );
    CREATE INDEX messages_state ON messages (state);
    CREATE INDEX messages_message_id ON messages (message_id);
    CREATE INDEX messages_sha256 ON messages (sha256);
    CREATE TABLE cases (
        id INTEGER PRIMARY KEY,
        procedure TEXT NOT NULL,
        status TEXT NOT NULL,
        sender TEXT,
        sender_name TEXT,
        operator_code TEXT,
        source_id TEXT,
        mailbox TEXT,
        subject TEXT,
        received_at TEXT NOT NULL,
        completed_at TEXT,
        due TEXT,
        problems TEXT NOT NULL DEFAULT '[]',
        data TEXT NOT NULL DEFAULT '{}',
        reason TEXT,
        version INTEGER NOT NULL DEFAULT 1,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX cases_status ON cases (status);
    CREATE INDEX cases_operator ON cases (operator_code);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        case_id INTEGER NOT NULL REFERENCES cases (id),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_case ON events (case_id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        case_id INTEGER REFERENCES cases (id),
        kind TEXT NOT NULL,
        message_id TEXT NOT NULL UNIQUE,
        recipient TEXT NOT NULL,
        subject TEXT NOT NULL,
        raw BLOB NOT NULL,
        created_at TEXT NOT NULL,
        send_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT,
        last_error TEXT,
        sent_at TEXT
    );
    CREATE INDEX outbox_due ON outbox (state, send_at);
    CREATE INDEX outbox_recipient ON outbox (recipient, created_at);
    CREATE TABLE jobs (
        name TEXT PRIMARY KEY,
        last_run_at TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE operators (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        short_name TEXT,
        postal_code TEXT,
        address TEXT,
        domain TEXT,
        contact_email TEXT,
        licenses TEXT NOT NULL DEFAULT '[]',
        areas TEXT NOT NULL DEFAULT '[]',
        grid_codes TEXT NOT NULL DEFAULT '[]',
        origin TEXT NOT NULL DEFAULT 'import',
        updated_at TEXT NOT NULL
    );
    CREATE INDEX operators_domain ON operators (domain);
    CREATE INDEX operators_contact ON operators (contact_email);
    CREATE TABLE sources (
        source_id TEXT PRIMARY KEY,
        operator_code TEXT NOT NULL,
        operator_name TEXT,
        contact_person TEXT,
        contact_email TEXT,
        name TEXT,
        category TEXT,
        area TEXT,
        auction_year INTEGER,
        capacity_kw INTEGER,
        supply_start_fy INTEGER,
        roadmap_target INTEGER NOT NULL DEFAULT 0,
        roadmap_revision INTEGER NOT NULL DEFAULT 0,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX sources_operator ON sources (operator_code);
    """,
    """
    CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        case_id INTEGER NOT NULL REFERENCES cases (id),
        source_id TEXT NOT NULL,
        operator_code TEXT NOT NULL,
        result TEXT NOT NULL,
        message_id TEXT,
        notified_on TEXT,
        objection_deadline TEXT,
        data TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
    );
    CREATE INDEX notices_source ON notices (source_id, kind);
    """,
    """
    CREATE TABLE reminders (
        case_id INTEGER NOT NULL,
        occasion TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (case_id, occasion)
    );
    """,
    _STAFF_DESK,
    _step_six,
    """
    CREATE INDEX cases_open ON cases (id) WHERE status NOT IN ('closed', 'ignored');
    CREATE INDEX cases_received ON cases (received_at);
    CREATE INDEX outbox_case ON outbox (case_id, created_at);
    """,
    """
    ALTER TABLE processing_starts ADD COLUMN batched INTEGER NOT NULL DEFAULT 0;
    """,
    """
    CREATE TABLE login_devices (
        token_hash TEXT PRIMARY KEY,
        login TEXT NOT NULL,
        created_at TEXT NOT NULL,
        seen_at TEXT NOT NULL
    );
    CREATE INDEX login_devices_login ON login_devices (login);
    ALTER TABLE login_failures ADD COLUMN device TEXT;
    CREATE INDEX login_failures_login ON login_failures (login, at);
    CREATE INDEX login_failures_client ON login_failures (client, at);
    CREATE INDEX web_sessions_login ON web_sessions (login);
    """,
    _thread_columns,
    _order_keys,
    _operator_name_keys,
    """
    CREATE INDEX events_kind_at ON events (kind, at);
    """,
    """
    CREATE TABLE journal_folds (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        folds INTEGER NOT NULL,
        at TEXT NOT NULL
    );
    """,
    """
    CREATE TABLE grid_codes (
        grid_code TEXT PRIMARY KEY,
        operator_code TEXT NOT NULL,
        plant_name TEXT NOT NULL,
        area TEXT,
        issued_at TEXT NOT NULL
    );
    CREATE INDEX grid_codes_operator ON grid_codes (operator_code);
    ALTER TABLE operators ADD COLUMN issued_grid_codes TEXT NOT NULL DEFAULT '[]';
    """,
    _fold_search_index,
    DESK_WORK,
    MONITOR_MIGRATION,
    _MAIL_VIEWS,
]


def _names_in(data: Any) -> list[str]:
    """Company names a case's data carries (事業者名称 of a form, of a source, …)."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and ("名称" in key or key in ("operator_name", "name")):
                found.append(value)
            elif isinstance(value, dict | list):
                found += _names_in(value)
    elif isinstance(data, list):
        for value in data:
            found += _names_in(value)
    return found


def _now_text(now: datetime) -> str:
    return now.isoformat(timespec="seconds")


def _delivered(item: tuple[str, bytes] | tuple[str, bytes, datetime | None]) -> datetime | None:
    return item[2] if len(item) > 2 else None  # type: ignore[misc]


def narrow_companions(database: Path) -> None:
    """A database's -wal and -shm made before its file was private (`private.narrow`): SQLite
    creates new ones with the database file's mode, but keeps those it finds."""
    for suffix in ("-wal", "-shm"):
        narrow(database.with_name(database.name + suffix))


BUSY_SECONDS = 30.0  # how long a write waits for another connection's transaction
PATIENCE_SECONDS = 600.0  # how long `patiently` tries again


def _store_error(message: str, exc: sqlite3.Error) -> StoreError:
    """StoreBusy when another connection kept the write lock past the busy timeout."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return (
        StoreBusy(message)
        if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        else StoreError(message)
    )


def patiently(write: Callable[[], T], what: str, patience: float = PATIENCE_SECONDS) -> T:
    """Run a write, again and again while another connection keeps the write lock (each try
    waits BUSY_SECONDS), up to `patience` seconds: for writes that must not be lost because
    they record what already happened outside (a send the server accepted, mail fetched)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return write()
        except StoreBusy as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("%s: %s; trying again", what, exc)


@dataclass(frozen=True)
class StoredMessage:
    id: int
    mailbox: str
    key: str
    raw: bytes
    received_at: str
    attempts: int = 0
    batched: int = 0


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BLOB_IO_BYTES = 1024 * 1024
# What of a mail's text the search index keeps: a sender who replies to their own case with
# megabytes of text must not make every later change of that case rewrite megabytes.
SEARCH_BODY_CHARS = 100_000
SEARCH_CASE_CHARS = 1_000_000
BLOB_PIECE = 1024 * 1024


class Store(Queries, DeskQueries, WaitingQueries, DeskWork, MonitorQueries):
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            private_file(path)
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_SECONDS)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            narrow_companions(path)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open the database: {exc}") from exc
        self._depth = 0
        self._unindexed: set[int] = set()

    def close(self) -> None:
        self.conn.close()

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                if callable(script):
                    script(self.conn)
                else:
                    run_script(self.conn, script)
                self.conn.execute(f"PRAGMA user_version = {number}")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    @contextmanager
    def deferred_sync(self) -> Iterator[None]:
        """Commits that need not reach the disk on their own (synchronous=NORMAL in WAL): a
        killed process loses none of them, and a power cut only work that is redone from the
        committed raw mail. They become durable with the next FULL commit of any connection
        (the WAL is one file, synced whole): a recorded send, mail stored before its ack."""
        self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA synchronous=FULL")

    @contextmanager
    def synced(self) -> Iterator[None]:
        """Commits made durable on their own inside `deferred_sync` (synchronous=FULL): such a
        commit syncs the whole WAL, so every deferred commit before it becomes durable too."""
        level = self.conn.execute("PRAGMA synchronous").fetchone()[0]
        self.conn.execute("PRAGMA synchronous=FULL")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA synchronous={int(level)}")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads that must agree with each other, without the write lock: a deferred
        transaction sees one state of the database (WAL) while other processes write. Inside
        a transaction it is that transaction's own view. A `transaction()` inside it is a
        programming error and says so (RuntimeError, which a job logs and retries, rather
        than SQLite's "cannot start a transaction", a StoreError that ends the run)."""
        if self._depth or self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit. Nested use is a savepoint inside the outer transaction: it rolls
        back alone when it raises (one mail of a group-committed batch), and is made durable
        only by the outer COMMIT."""
        if self._depth:
            name = f"sp{self._depth}"
            self._depth += 1
            self.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                raise
            else:
                self.execute(f"RELEASE {name}")
            finally:
                self._depth -= 1
            return
        if self.conn.in_transaction:
            raise RuntimeError("a write transaction inside a snapshot: reads only there")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _store_error(f"{self.path}: cannot write: {exc}", exc) from exc
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._unindexed.clear()
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self._depth = 0
        try:
            for case_id in sorted(self._unindexed):
                self._write_index(case_id)
            self.conn.execute("COMMIT")
        except (sqlite3.Error, StoreError) as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: cannot commit: {exc}") from exc
        finally:
            self._unindexed.clear()

    def execute(self, sql: str, params: Iterable[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        try:
            return self.conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise _store_error(f"{self.path}: {exc}", exc) from exc

    # raw messages

    def save_raw(
        self,
        mailbox: str,
        items: Sequence[tuple[str, bytes] | tuple[str, bytes, datetime | None]],
        now: datetime,
    ) -> int:
        """Store raw messages (key, bytes[, when the mailbox received it]) of one mailbox; known
        keys are left as they are. `received_at` is the arrival (`mailbot.mail.arrival`), not `now`.
        Returns how many were new. Committed when this returns."""
        timed = [
            (item[0], item[1], _now_text(arrival_time(item[1], _delivered(item), now)))
            for item in items
        ]
        small = [item for item in timed if len(item[1]) < BLOB_IO_BYTES]
        large = [item for item in timed if len(item[1]) >= BLOB_IO_BYTES]
        try:
            return self._save_raw(mailbox, small, large, now)
        except sqlite3.Error as exc:
            raise _store_error(f"{self.path}: cannot store mail: {exc}", exc) from exc

    def _save_raw(
        self,
        mailbox: str,
        small: list[tuple[str, bytes, str]],
        large: list[tuple[str, bytes, str]],
        now: datetime,
    ) -> int:
        rows = [
            (
                mailbox,
                key,
                hashlib.sha256(data).hexdigest(),
                len(data),
                data,
                arrived,
                order_key(data),
                answers_a_thread(data),
            )
            for key, data, arrived in small
        ]
        with self.transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT OR IGNORE INTO messages"
                " (mailbox, key, sha256, size, raw, received_at, order_key, answers_thread)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            for key, data, arrived in large:
                cur = self.conn.execute(
                    "INSERT OR IGNORE INTO messages"
                    " (mailbox, key, sha256, size, raw, received_at, order_key, answers_thread)"
                    " VALUES (?, ?, ?, ?, zeroblob(?), ?, ?, ?)",
                    (
                        mailbox,
                        key,
                        hashlib.sha256(data).hexdigest(),
                        len(data),
                        len(data),
                        arrived,
                        order_key(data),
                        answers_a_thread(data),
                    ),
                )
                if cur.rowcount:
                    self._write_blob(int(cur.lastrowid or 0), data)
            return self.conn.total_changes - before

    def _write_blob(self, message_row: int, data: bytes) -> None:
        """Large raw mails are streamed in and out of SQLite in pieces: binding or selecting the
        whole value costs SQLite its own full copy on top of Python's."""
        view = memoryview(data)
        with self.conn.blobopen("messages", "raw", message_row) as blob:
            for offset in range(0, len(data), BLOB_PIECE):
                blob.write(view[offset : offset + BLOB_PIECE])

    def _read_raw(self, message_row: int, size: int) -> bytes:
        if size < BLOB_IO_BYTES:
            row = self.execute("SELECT raw FROM messages WHERE id = ?", (message_row,)).fetchone()
            return row[0]
        out = bytearray(size)
        with self.conn.blobopen("messages", "raw", message_row, readonly=True) as blob:
            for offset in range(0, size, BLOB_PIECE):
                out[offset : offset + BLOB_PIECE] = blob.read(BLOB_PIECE)
        return out  # type: ignore[return-value]

    def known_keys(self, mailbox: str, keys: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(
                row[0]
                for row in self.execute(
                    f"SELECT key FROM messages WHERE mailbox = ? AND key IN ({marks})",
                    [mailbox, *chunk],
                )
            )
        return found

    def count_pending(self) -> int:
        return int(
            self.execute("SELECT count(*) FROM messages WHERE state = 'stored'").fetchone()[0]
        )

    def pending_messages(self, limit: int = 500) -> Iterator[StoredMessage]:
        """Stored, unprocessed messages, oldest first, each read only when it is reached (a
        backlog of large mails never sits in memory at once)."""
        ids = [
            r[0]
            for r in self.execute(
                "SELECT id FROM messages WHERE state = 'stored' ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        ]
        yield from self._still_stored(ids)

    def newest_pending_id(self) -> int:
        """The id of the newest stored, unprocessed message (0: none): where a drain's backlog
        ends, and mail stored after it is fresh (`fresh_messages`)."""
        row = self.execute("SELECT max(id) FROM messages WHERE state = 'stored'").fetchone()
        return int(row[0] or 0)

    def fresh_messages(self, after: int, limit: int) -> Iterator[StoredMessage]:
        """Up to `limit` stored, unprocessed messages newer than id `after` that may go ahead
        of the older ones still waiting: those with an ordering key (`order_key`) and no earlier
        unprocessed mail of the same key, so that a sender's correction never overtakes the
        application it corrects. A mail without a key, or one that answers a thread
        (`answers_a_thread`), waits its turn, and the latter holds back its sender's later mail
        as any waiting mail does. The newest are taken (handed back oldest first): mail stored
        in bulk after the backlog was counted (a mailbox still being fetched) must not keep a
        mail that has just come waiting; what is not taken waits for the next backlog."""
        ids = [
            r[0]
            for r in self.execute(
                "SELECT id FROM messages AS m WHERE state = 'stored' AND id > ?"
                " AND order_key IS NOT NULL AND NOT answers_thread"
                " AND NOT EXISTS (SELECT 1 FROM messages AS m2"
                " WHERE m2.state = 'stored' AND m2.order_key = m.order_key AND m2.id < m.id)"
                " ORDER BY id DESC LIMIT ?",
                (after, limit),
            ).fetchall()
        ]
        ids.reverse()
        yield from self._still_stored(ids)

    def _still_stored(self, ids: list[int]) -> Iterator[StoredMessage]:
        """Each message read only when it is reached, and only while it is still unprocessed
        (the caller may have processed it since the ids were listed)."""
        for message_row in ids:
            r = self.execute(
                "SELECT id, mailbox, key, size, received_at, starts, batched FROM messages"
                " LEFT JOIN processing_starts ON message = id WHERE id = ? AND state = 'stored'",
                (message_row,),
            ).fetchone()
            if r is not None:
                raw = self._read_raw(r[0], r[3])
                yield StoredMessage(r[0], r[1], r[2], raw, r[4], r[5] or 0, r[6] or 0)

    def start_attempt(self, message_row: int, step: int) -> None:
        """Count (+1), committed before any work, that processing of this mail began: a mail
        that kills the process leaves the count behind, and the next run sees it. -1 takes a
        start back when the run stopped for a reason that is not the mail. A table of its own:
        updating the message row would make SQLite rewrite the whole raw mail."""
        self.execute(
            "INSERT INTO processing_starts (message, starts) VALUES (?, ?)"
            " ON CONFLICT (message) DO UPDATE SET starts = max(0, starts + ?)",
            (message_row, max(0, step), step),
        )

    def start_batch(self, message_rows: Sequence[int], step: int) -> None:
        """Count, in one commit, that a batch of mails began (group commit: one fsync for the
        batch's starts, one for its effects). Kept apart from `starts`: a batch that never
        finished does not say which of its mails stopped the process, so it sends each of them
        through alone next time without counting against any."""
        with self.transaction():
            for message_row in message_rows:
                self.execute(
                    "INSERT INTO processing_starts (message, starts, batched) VALUES (?, 0, ?)"
                    " ON CONFLICT (message) DO UPDATE SET batched = max(0, batched + ?)",
                    (message_row, max(0, step), step),
                )

    def finish_message(
        self,
        message_row: int,
        *,
        state: str,
        case_id: int | None,
        outcome: str,
        now: datetime,
        message_id: str | None = None,
        sender: str | None = None,
        subject: str | None = None,
        text: str | None = None,
        attachment_names: Iterable[str] = (),
        digest: str | None = None,
        references: Sequence[str] | None = None,
        sender_name: str | None = None,
        shown: str | None = None,
    ) -> None:
        """`text` and `attachment_names` (the parsed body and file names) feed the case's
        full-text search row, written in the same transaction as the case; `references` and
        `sender_name` (with the Message-ID, subject and sender) are the thread a later reply
        answers in (`latest_done_message`); `text` and `shown` are what staff read of the
        mail (`keep_mail_view`; a mail without them, or without a case, loses its view)."""
        names = json.dumps(list(attachment_names), ensure_ascii=False)
        thread = json.dumps(list(references)) if references is not None else None
        self.execute(
            "UPDATE messages SET state = ?, case_id = ?, outcome = ?, processed_at = ?,"
            " message_id = coalesce(?, message_id), sender = coalesce(?, sender),"
            " subject = coalesce(?, subject), body_text = coalesce(?, body_text),"
            " attachment_names = ?, digest = coalesce(?, digest),"
            " thread_references = coalesce(?, thread_references),"
            " sender_name = coalesce(?, sender_name) WHERE id = ?",
            (
                state,
                case_id,
                outcome,
                _now_text(now),
                message_id,
                sender,
                subject,
                text,
                names,
                digest,
                thread,
                sender_name,
                message_row,
            ),
        )
        if shown is not None and case_id is not None:
            self.keep_mail_view(message_row, shown, text or "")
        else:
            self.execute("DELETE FROM mail_views WHERE message = ?", (message_row,))
        if case_id is not None:
            self._index_case(case_id)

    def duplicate_of(
        self,
        message_row: int,
        message_id: str | None,
        sender: str | None,
        digest: str,
        sha256: str,
    ) -> int | None:
        """The case of an earlier copy of this same mail: the same bytes, or the same
        Message-ID from the same sender with the same content (one mail sent To one address
        and Cc the other). A Message-ID alone decides nothing: anyone can copy one."""
        row = self.execute(
            "SELECT case_id FROM messages WHERE id != ? AND case_id IS NOT NULL"
            " AND (sha256 = ? OR (? IS NOT NULL AND message_id = ? AND sender = ?"
            " AND digest = ?)) ORDER BY id LIMIT 1",
            (message_row, sha256, message_id, message_id, sender or "", digest),
        ).fetchone()
        return row[0] if row else None

    def message_id_taken(self, message_row: int, message_id: str | None) -> dict[str, Any] | None:
        """An earlier, different mail that carried this Message-ID (noted for staff)."""
        if not message_id:
            return None
        row = self.execute(
            "SELECT id, sender, case_id FROM messages WHERE id != ? AND message_id = ?"
            " AND case_id IS NOT NULL ORDER BY id LIMIT 1",
            (message_row, message_id),
        ).fetchone()
        return dict(row) if row else None

    def messages_to_retry(self, case_id: int | None) -> list[tuple[int, int | None]]:
        """(message row, case id) of one case's mails, or of every quarantined mail."""
        if case_id is not None:
            sql, params = "SELECT id, case_id FROM messages WHERE case_id = ?", (case_id,)
        else:
            sql, params = "SELECT id, case_id FROM messages WHERE state = 'quarantined'", ()
        return [(r[0], r[1]) for r in self.execute(sql + " ORDER BY id", params).fetchall()]

    def requeue_message(self, message_row: int) -> None:
        """Back to the queue as if just stored (`mailbot retry`)."""
        self.execute(
            "UPDATE messages SET state = 'stored', case_id = NULL, outcome = NULL,"
            " processed_at = NULL WHERE id = ?",
            (message_row,),
        )
        self.execute("DELETE FROM processing_starts WHERE message = ?", (message_row,))
        self.execute("DELETE FROM mail_views WHERE message = ?", (message_row,))

    def raw_of(self, message_row: int) -> bytes:
        return self.execute("SELECT raw FROM messages WHERE id = ?", (message_row,)).fetchone()[0]

    # cases

    def next_case_id(self) -> int:
        """The id the next case will take: stable while the caller holds the write transaction
        (a mail's effect is decided and applied inside it), so replies planned before the case
        is written can carry its number."""
        if not self._depth:
            raise StoreError("a case id is reserved only inside a transaction (Store.transaction)")
        return int(self.execute("SELECT coalesce(max(id), 0) + 1 FROM cases").fetchone()[0])

    def apply(self, effect: Effect) -> list[int]:
        """Write one mail's (or one decision's) whole effect in one savepoint: the case, the
        registers, the events, the planned mails, the bounces and the stored mail's finish.
        Returns the outbox ids of the planned mails."""
        from mailbot.store.registers import register_grid_code, register_operator

        now = effect.now
        with self.transaction():
            if effect.case is not None:
                if effect.case.new:
                    self.create_case(now, id=effect.case.case_id, **effect.case.fields)
                else:
                    self.update_case(effect.case.case_id, now, **effect.case.fields)
            if effect.register_operator:
                register_operator(self, effect.register_operator, now)
            if effect.register_grid_code:
                register_grid_code(self, *effect.register_grid_code, now)
            for event in effect.events:
                self.add_event(event.case_id, now, event.actor, event.kind, **event.detail)
            planned = [
                self.plan_mail(
                    case_id=mail.case_id,
                    kind=mail.kind,
                    message_id=mail.message_id,
                    recipient=mail.recipient,
                    subject=mail.subject,
                    raw=mail.raw,
                    now=now,
                    send_at=mail.send_at,
                )
                for mail in effect.mails
            ]
            for message_id, error in effect.bounced:
                self.mark_bounced(message_id, error)
            if effect.message is not None:
                finish = effect.message
                self.finish_message(
                    finish.message_row,
                    state=finish.state,
                    case_id=finish.case_id,
                    outcome=finish.outcome,
                    now=now,
                    message_id=finish.message_id,
                    sender=finish.sender,
                    subject=finish.subject,
                    text=finish.text,
                    attachment_names=finish.attachment_names,
                    digest=finish.digest,
                    references=finish.references,
                    sender_name=finish.sender_name,
                    shown=finish.shown,
                )
        return planned

    def create_case(self, now: datetime, **fields: Any) -> int:
        fields = self._encode(fields)
        fields.setdefault("received_at", _now_text(now))
        fields["updated_at"] = _now_text(now)
        cols = ", ".join(fields)
        marks = ", ".join("?" * len(fields))
        cur = self.execute(f"INSERT INTO cases ({cols}) VALUES ({marks})", list(fields.values()))
        case_id = int(cur.lastrowid or 0)
        self._index_case(case_id)
        return case_id

    def update_case(self, case_id: int, now: datetime, **fields: Any) -> None:
        fields = self._encode(fields)
        fields["updated_at"] = _now_text(now)
        sets = ", ".join(f"{col} = ?" for col in fields)
        self.execute(
            f"UPDATE cases SET {sets}, version = version + 1 WHERE id = ?",
            [*fields.values(), case_id],
        )
        self._index_case(case_id)

    @staticmethod
    def _encode(fields: dict[str, Any]) -> dict[str, Any]:
        out = dict(fields)
        for key in ("problems", "data"):
            if key in out and not isinstance(out[key], str):
                out[key] = json.dumps(out[key], ensure_ascii=False, default=str)
        for key in ("received_at", "completed_at", "due"):
            if key in out and out[key] is not None and not isinstance(out[key], str):
                out[key] = out[key].isoformat()
        return out

    def case(self, case_id: int) -> dict[str, Any] | None:
        row = self.execute("SELECT * FROM cases WHERE id = ?", (case_id,)).fetchone()
        return self._decode(row) if row else None

    def cases(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM cases"
        if open_only:
            sql += " WHERE status NOT IN ('closed', 'ignored')"
        return [self._decode(r) for r in self.execute(sql + " ORDER BY id")]

    def cases_by_id(self, ids: Iterable[int], *, open_only: bool = False) -> list[dict[str, Any]]:
        """These cases (a search's hits) in id order, read by primary key: a search among
        100,000 cases touches only what it found."""
        sql = "SELECT * FROM cases WHERE id IN (SELECT value FROM json_each(?))"
        if open_only:
            sql += " AND status NOT IN ('closed', 'ignored')"
        rows = self.execute(sql + " ORDER BY id", (json.dumps(sorted(ids)),))
        return [self._decode(r) for r in rows]

    def queue_page(
        self,
        *,
        today: str,
        limit: int,
        offset: int = 0,
        open_only: bool = False,
        ids: Iterable[int] | None = None,
        owner: str | None = None,
        status: str | None = None,
        procedure: str | None = None,
        overdue_only: bool = False,
        view: str | None = None,
        age_overdue_days: int = 5,
    ) -> tuple[int, list[dict[str, Any]]]:
        """One page of the staff queue and how many cases match. Overdue open cases come first,
        then the cases that wait on us (`waiting_since`, see store/waiting.py), then the open
        and then the finished ones by their date: the due date, or for a case without one the day it turns overdue, which
        is `age_overdue_days` after its oldest unanswered mail (else after it came in), as the
        report workbook colours it; then by number. Each row carries `waiting_since`.

        `view`: None for all that match; `desk` for the default desk (cases waiting on the
        participant left out unless the participant wrote); `participant` for just those;
        `waiting` for the cases that wait on us. Filtering, counting and ordering happen in
        SQLite so a page of 100,000 cases decodes only its own rows. `ids` are a search's hits;
        `owner` is a login, or `none` for cases nobody has."""
        where, params = ["1"], []
        if ids is not None:
            where.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(sorted(ids)))
        if open_only:
            where.append("status NOT IN ('closed', 'ignored')")
        if owner == "none":
            where.append("coalesce(owner, '') = ''")
        elif owner:
            where.append("owner = ?")
            params.append(owner)
        if status:
            where.append("status = ?")
            params.append(status)
        if procedure:
            where.append("procedure = ?")
            params.append(procedure)
        waiting_col = (
            f"CASE WHEN status NOT IN ('closed', 'ignored') THEN {waiting_since_sql()} END"
        )
        inner = f"SELECT *, {waiting_col} AS waiting_since FROM cases WHERE {' AND '.join(where)}"
        shift = f"+{max(0, int(age_overdue_days) - 1)} days"
        key = (
            "(CASE WHEN coalesce(due, '') != '' THEN substr(due, 1, 10)"
            " ELSE date(substr(coalesce(waiting_since, received_at), 1, 10), ?) END)"
        )
        overdue = f"(status NOT IN ('closed', 'ignored') AND {key} < ?)"
        outer, outer_params = ["1"], []
        waits = "status IN (" + ",".join(f"'{s}'" for s in PARTICIPANT_WAITS) + ")"
        if view == "desk":
            outer.append(f"(NOT {waits} OR waiting_since IS NOT NULL)")
        elif view == "participant":
            outer.append(f"({waits} AND waiting_since IS NULL)")
        elif view == "waiting":
            outer.append("waiting_since IS NOT NULL")
        if overdue_only:
            outer.append(overdue)
            outer_params += [shift, today]
        clause = " AND ".join(outer)
        # one pass: the cases are read and `waiting_since` worked out once (a materialised
        # CTE), the count rides along as a window over the same rows
        rows = self.execute(
            f"WITH q AS MATERIALIZED ({inner}) SELECT *, count(*) OVER () AS total_rows"
            f" FROM q WHERE {clause} ORDER BY {overdue} DESC,"
            f" waiting_since IS NULL, status IN ('closed', 'ignored'), {key}, id"
            " LIMIT ? OFFSET ?",
            [*params, *outer_params, shift, today, shift, limit, offset],
        ).fetchall()
        if rows:
            total = rows[0]["total_rows"]
        else:
            total = self.execute(
                f"WITH q AS MATERIALIZED ({inner}) SELECT count(*) FROM q WHERE {clause}",
                [*params, *outer_params],
            ).fetchone()[0]
        decoded = [self._decode(r) for r in rows]
        for case in decoded:
            case.pop("total_rows", None)
        return total, decoded

    def cases_as_json(
        self, fields: Sequence[str], *, open_only: bool = False, owner: str | None = None
    ) -> Iterator[tuple[int, str]]:
        """(id, the case as one JSON object) per case in id order, the object built by SQLite's
        json_object so 100,000 cases stream in well under a second. `fields` are columns, and
        `number` (MB-000001), `problems` (the stored list) and `remarks` (the staff remarks in
        the case's data, else []). `owner` is a login, or `none` for cases nobody has; open
        cases come through the partial index `cases_open`, already in id order."""
        special = {
            "number": "printf('MB-%06d', id)",
            "problems": "json(coalesce(nullif(problems, ''), '[]'))",
            "remarks": "json(CASE WHEN json_type(data, '$.remarks') = 'array'"
            " THEN data -> '$.remarks' ELSE '[]' END)",
        }
        pairs = ", ".join(f"'{name}', {special.get(name, name)}" for name in fields)
        sql, params = f"SELECT id, json_object({pairs}) FROM cases WHERE 1", []
        if open_only:
            sql += " AND status NOT IN ('closed', 'ignored')"
        if owner == "none":
            sql += " AND owner IS NULL"
        elif owner:
            sql += " AND owner = ?"
            params.append(owner)
        for row in self.execute(sql + " ORDER BY id", params):
            yield row[0], row[1]

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        out["problems"] = json.loads(out["problems"] or "[]")
        out["data"] = json.loads(out["data"] or "{}")
        return out

    def add_event(
        self, case_id: int, now: datetime, actor: str, kind: str, /, **detail: Any
    ) -> None:
        self.execute(
            "INSERT INTO events (case_id, at, actor, kind, detail) VALUES (?, ?, ?, ?, ?)",
            (
                case_id,
                _now_text(now),
                actor,
                kind,
                json.dumps(detail, ensure_ascii=False, default=str),
            ),
        )

    def events(self, case_id: int) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT at, actor, kind, detail FROM events WHERE case_id = ? ORDER BY id", (case_id,)
        )
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    def case_messages(self, case_id: int) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT id, mailbox, key, message_id, sender, subject, received_at, state, outcome"
            " FROM messages WHERE case_id = ? ORDER BY id",
            (case_id,),
        )
        return [dict(r) for r in rows]

    def find_thread(self, message_ids: Iterable[str]) -> tuple[int, str | None] | None:
        """The case (and the kind of our mail) that one of these Message-IDs belongs to."""
        for mid in message_ids:
            row = self.execute(
                "SELECT case_id, kind FROM outbox WHERE message_id = ? AND case_id IS NOT NULL",
                (mid,),
            ).fetchone()
            if row:
                return row[0], row[1]
            row = self.execute(
                "SELECT case_id FROM messages WHERE message_id = ? AND case_id IS NOT NULL"
                " ORDER BY id LIMIT 1",
                (mid,),
            ).fetchone()
            if row:
                return row[0], None
        return None

    # full-text search (SQLite FTS5, trigram: Japanese substrings of 3+ characters)

    def _index_case(self, case_id: int) -> None:
        """Inside a transaction the case is only noted, and its search row rewritten once just
        before COMMIT (a new case was indexed twice per mail: when opened, and when its mail
        was filed), so the index still never lags a committed case."""
        if self._depth:
            self._unindexed.add(case_id)
        else:
            self._write_index(case_id)

    def _write_index(self, case_id: int) -> None:
        """Rewrite the case's search row from the case and its mails."""
        case = self.execute(
            "SELECT subject, sender, sender_name, operator_code, data FROM cases WHERE id = ?",
            (case_id,),
        ).fetchone()
        if case is None:
            return
        company = [case["operator_code"] or ""]
        if case["operator_code"]:
            op = self.execute(
                "SELECT name, short_name FROM operators WHERE code = ?", (case["operator_code"],)
            ).fetchone()
            if op is not None:
                company += [op["name"] or "", op["short_name"] or ""]
        company += _names_in(json.loads(case["data"] or "{}"))
        bodies, files, subjects = [], [], [case["subject"] or ""]
        indexed = 0
        for row in self.execute(
            "SELECT subject, substr(body_text, 1, ?) AS body_text, attachment_names"
            " FROM messages WHERE case_id = ?",
            (SEARCH_BODY_CHARS, case_id),
        ):
            if indexed < SEARCH_CASE_CHARS:
                bodies.append(row["body_text"] or "")
                indexed += len(bodies[-1])
            files += json.loads(row["attachment_names"] or "[]")
            if row["subject"] and row["subject"] not in subjects:
                subjects.append(row["subject"])
        self.execute("DELETE FROM case_search WHERE rowid = ?", (case_id,))
        self.execute(
            "INSERT INTO case_search (rowid, subject, sender, company, body, attachments)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                case_id,
                fold("\n".join(subjects)),
                fold(f"{case['sender'] or ''} {case['sender_name'] or ''}"),
                fold("\n".join(dict.fromkeys(c for c in company if c))),
                fold("\n".join(bodies)),
                fold("\n".join(files)),
            ),
        )

    def messages_without_text(self, limit: int = 200) -> list[int]:
        return [
            r[0]
            for r in self.execute(
                "SELECT id FROM messages WHERE body_text IS NULL AND case_id IS NOT NULL"
                " ORDER BY id LIMIT ?",
                (limit,),
            )
        ]

    def set_message_text(self, message_row: int, text: str, attachment_names: list[str]) -> None:
        self.execute(
            "UPDATE messages SET body_text = ?, attachment_names = ? WHERE id = ?",
            (text, json.dumps(attachment_names, ensure_ascii=False), message_row),
        )
        row = self.execute("SELECT case_id FROM messages WHERE id = ?", (message_row,)).fetchone()
        if row and row[0] is not None:
            self._index_case(row[0])

    def search_cases(self, text: str) -> set[int]:
        """Cases whose subject, sender, company, body or attachment names contain every
        whitespace-separated term, or that a term names by its 受付番号 (MB-000082, 82).
        The query is folded as the index is (`searchfold.fold`: NFKC, case, 異体字). Terms of
        3+ characters use the trigram index; shorter ones (a 2-character name such as 東電)
        fall back to LIKE over the same columns. NUL and other control characters are no part
        of a term: FTS5 reads a query string only to its first NUL, so three NULs left the
        phrase's quote open ("unterminated string")."""
        found: set[int] | None = None
        for term in _CONTROL.sub(" ", fold(text)).split():
            if len(term) >= 3:
                phrase = '"' + term.replace('"', '""') + '"'
                rows = self.execute(
                    "SELECT rowid FROM case_search WHERE case_search MATCH ?", (phrase,)
                )
            else:
                like = (
                    "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                )
                rows = self.execute(
                    "SELECT rowid FROM case_search WHERE "
                    + " OR ".join(
                        f"{col} LIKE ? ESCAPE '\\'"
                        for col in ("subject", "sender", "company", "body", "attachments")
                    ),
                    (like,) * 5,
                )
            ids = {r[0] for r in rows}
            number = case_number(term)
            if (
                number is not None
                and self.execute("SELECT 1 FROM cases WHERE id = ?", (number,)).fetchone()
            ):
                ids.add(number)
            found = ids if found is None else found & ids
        return found or set()

    # staff accounts and case owners

    def add_staff(self, login: str, name: str, password_hash: str, now: datetime) -> None:
        try:
            self.conn.execute(
                "INSERT INTO staff (login, name, password_hash, created_at) VALUES (?, ?, ?, ?)",
                (login, name, password_hash, _now_text(now)),
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"staff account {login!r} already exists") from exc

    def staff(self, login: str) -> dict[str, Any] | None:
        row = self.execute("SELECT * FROM staff WHERE login = ?", (login,)).fetchone()
        return dict(row) if row else None

    def staff_list(self) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.execute(
                "SELECT login, name, disabled, created_at FROM staff ORDER BY login"
            )
        ]

    def set_staff_password(self, login: str, password_hash: str) -> None:
        self.execute("UPDATE staff SET password_hash = ? WHERE login = ?", (password_hash, login))

    def disable_staff(self, login: str) -> bool:
        found = self.execute("UPDATE staff SET disabled = 1 WHERE login = ?", (login,)).rowcount
        self.end_web_sessions(login=login)
        return found == 1

    # web desk sessions (only a hash of the cookie's token is kept) and login throttling

    def add_web_session(self, token_hash: str, login: str, csrf: str, now: datetime) -> None:
        self.execute(
            "INSERT INTO web_sessions (token_hash, login, csrf, created_at, seen_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (token_hash, login, csrf, _now_text(now), _now_text(now)),
        )

    def web_session(self, token_hash: str) -> dict[str, Any] | None:
        row = self.execute(
            "SELECT * FROM web_sessions WHERE token_hash = ?", (token_hash,)
        ).fetchone()
        return dict(row) if row else None

    def touch_web_session(self, token_hash: str, now: datetime) -> None:
        self.execute(
            "UPDATE web_sessions SET seen_at = ? WHERE token_hash = ?",
            (_now_text(now), token_hash),
        )

    def end_web_sessions(self, *, token_hash: str | None = None, login: str | None = None) -> None:
        if token_hash is not None:
            self.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash,))
        if login is not None:
            self.execute("DELETE FROM web_sessions WHERE login = ?", (login,))

    def outbox_kind(self, message_id: str, recipient: str) -> str | None:
        """The kind of the mail we sent to `recipient` under this Message-ID."""
        row = self.execute(
            "SELECT kind FROM outbox WHERE message_id = ? AND recipient = ?",
            (message_id, recipient.lower()),
        ).fetchone()
        return row[0] if row else None

    def seen_message(self, message_row: int, message_id: str | None, outcome: str) -> bool:
        """Another stored copy of this mail (same Message-ID) already ended with `outcome`."""
        if not message_id:
            return False
        row = self.execute(
            "SELECT 1 FROM messages WHERE id != ? AND message_id = ? AND outcome LIKE ?",
            (message_row, message_id, outcome + "%"),
        ).fetchone()
        return row is not None

    def outbox_raw(self, outbox_id: int) -> bytes | None:
        row = self.execute("SELECT raw FROM outbox WHERE id = ?", (outbox_id,)).fetchone()
        return row[0] if row else None

    # outbox

    def plan_mail(
        self,
        *,
        case_id: int | None,
        kind: str,
        message_id: str,
        recipient: str,
        subject: str,
        raw: bytes,
        now: datetime,
        send_at: datetime,
    ) -> int:
        cur = self.execute(
            "INSERT INTO outbox (case_id, kind, message_id, recipient, subject, raw, created_at,"
            " send_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                case_id,
                kind,
                message_id,
                recipient.lower(),
                subject,
                raw,
                _now_text(now),
                _now_text(send_at),
            ),
        )
        return int(cur.lastrowid or 0)

    def due_mail(
        self, now: datetime, limit: int = 500, skip: Collection[int] = (), upto: int | None = None
    ) -> list[sqlite3.Row]:
        """`skip`: rows sent already but recorded only in the send journal so far; `upto`: the
        newest row known to be durable (the sender that goes along sends no other)."""
        t = _now_text(now)
        return self.execute(
            "SELECT id, case_id, kind, message_id, recipient, raw, attempts FROM outbox"
            " WHERE state = 'pending' AND send_at <= ?"
            " AND (next_attempt_at IS NULL OR next_attempt_at <= ?) AND id <= ?"
            " AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?",
            (t, t, upto if upto is not None else 2**63 - 1, json.dumps(sorted(skip)), limit),
        ).fetchall()

    def note_journal_fold(self, now: datetime) -> None:
        """A write in every fold of the send journal, so that the fold's FULL commit syncs the
        WAL (a commit that wrote nothing syncs nothing)."""
        self.execute(
            "INSERT INTO journal_folds (id, folds, at) VALUES (1, 1, ?)"
            " ON CONFLICT (id) DO UPDATE SET folds = folds + 1, at = excluded.at",
            (_now_text(now),),
        )

    def newest_outbox_id(self) -> int:
        return int(self.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0])

    def still_pending(self, message_rows: Collection[int]) -> set[int]:
        """Which of these messages no process has finished yet (two runs may list the same
        waiting mail; whichever commits second must leave it)."""
        rows = self.execute(
            "SELECT id FROM messages WHERE state = 'stored'"
            " AND id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(message_rows)),),
        ).fetchall()
        return {row[0] for row in rows}

    def outbox_rows(self, ids: Collection[int]) -> dict[int, sqlite3.Row]:
        """The outbox rows with these ids, by id, as `due_mail` gives them, with their state
        (the send journal names rows by id)."""
        rows = self.execute(
            "SELECT id, case_id, kind, message_id, recipient, state FROM outbox"
            " WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(ids)),),
        ).fetchall()
        return {row["id"]: row for row in rows}

    def mark_sent(self, outbox_id: int, now: datetime) -> None:
        self.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1,"
            " last_error = NULL WHERE id = ?",
            (_now_text(now), outbox_id),
        )

    def mark_retry(self, outbox_id: int, error: str, next_attempt: datetime) -> None:
        self.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?"
            " WHERE id = ?",
            (error, _now_text(next_attempt), outbox_id),
        )

    def mark_failed(self, outbox_id: int, error: str) -> None:
        self.execute(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?"
            " WHERE id = ?",
            (error, outbox_id),
        )

    def outbox_for_case(self, case_id: int) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT id, kind, message_id, recipient, subject, created_at, send_at, state,"
            " attempts, last_error, sent_at FROM outbox WHERE case_id = ? ORDER BY id",
            (case_id,),
        )
        return [dict(r) for r in rows]

    def auto_replies_since(self, recipient: str, since: datetime, kind: str | None = None) -> int:
        sql = "SELECT count(*) FROM outbox WHERE recipient = ? AND created_at >= ?"
        params: list[Any] = [recipient.lower(), _now_text(since)]
        if kind:
            sql += " AND kind = ?"
            params.append(kind)
        return int(self.execute(sql, params).fetchone()[0])

    # reports

    def record_report(self, key: str, now: datetime, rows: list[tuple[int, int]]) -> None:
        """Which cases (at which version) a report workbook listed: `decisions apply` takes
        decisions only for those."""
        with self.transaction():
            self.conn.executemany(
                "INSERT OR IGNORE INTO report_rows (report, case_id, version, made_at)"
                " VALUES (?, ?, ?, ?)",
                [(key, case_id, version, _now_text(now)) for case_id, version in rows],
            )

    def open_cases_for_report(self) -> list[dict[str, Any]]:
        """The open cases with what a report row shows, in id order: `problems` decoded and
        the staff remarks out of `data` as `remarks`, without decoding the rest of `data`
        (the form's fields), which a report of 30,000 rows would decode for nothing."""
        rows = self.execute(
            "SELECT id, procedure, status, sender, operator_code, subject, received_at, due,"
            " problems, json_extract(data, '$.remarks') AS remarks, version, owner,"
            " coalesce(json_extract(data, '$.form.\"事業者名称\"'),"
            " json_extract(data, '$.form.\"事業者名称(発電所所有者)\"')) AS form_company"
            " FROM cases WHERE status NOT IN ('closed', 'ignored') ORDER BY id"
        )
        out = []
        for row in rows:
            case = dict(row)
            problems = case["problems"]
            case["problems"] = json.loads(problems) if problems and problems != "[]" else []
            remarks = case["remarks"]
            case["remarks"] = json.loads(remarks) if remarks else []
            out.append(case)
        return out

    def report_cases(self, key: str) -> dict[int, int]:
        """case id → version, of the report with that key (empty when unknown)."""
        rows = self.execute("SELECT case_id, version FROM report_rows WHERE report = ?", (key,))
        return {r[0]: r[1] for r in rows}

    # scheduled jobs

    def job_last_run(self, name: str) -> str | None:
        row = self.execute("SELECT last_run_at FROM jobs WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def claim_reminder(self, case_id: int, occasion: str, now: datetime) -> bool:
        """True the first time an occasion is claimed: a reminder goes out once per occasion,
        however often the job that finds it runs."""
        cur = self.execute(
            "INSERT OR IGNORE INTO reminders (case_id, occasion, at) VALUES (?, ?, ?)",
            (case_id, occasion, _now_text(now)),
        )
        return cur.rowcount == 1

    def set_job_run(self, name: str, at: datetime) -> None:
        self.execute(
            "INSERT INTO jobs (name, last_run_at) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET last_run_at = excluded.last_run_at",
            (name, _now_text(at)),
        )
