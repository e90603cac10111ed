"""The web desk's working state per staff member and case: reply drafts kept on the server (a
refused form or a reload loses nothing typed) and who has a case open (presence)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime

DESK_WORK = """
    CREATE TABLE reply_drafts (
        case_id INTEGER NOT NULL REFERENCES cases (id),
        login TEXT NOT NULL,
        text TEXT NOT NULL,
        saved_at TEXT NOT NULL,
        PRIMARY KEY (case_id, login)
    );
    CREATE TABLE case_viewers (
        case_id INTEGER NOT NULL REFERENCES cases (id),
        login TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (case_id, login)
    );
    CREATE INDEX case_viewers_seen ON case_viewers (seen_at);
    """
"""Schema step: reply drafts and case viewers."""


class DeskWork:
    """Mixed into `Store`; every method runs on the store's one connection."""

    execute: Callable[..., sqlite3.Cursor]

    def save_draft(self, case_id: int, login: str, text: str, now: datetime) -> None:
        """Keep `login`'s reply text for the case (an empty text drops the draft)."""
        if not text.strip():
            self.drop_draft(case_id, login)
            return
        self.execute(
            "INSERT INTO reply_drafts (case_id, login, text, saved_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (case_id, login) DO UPDATE SET text = excluded.text,"
            " saved_at = excluded.saved_at",
            (case_id, login, text, now.isoformat(timespec="seconds")),
        )

    def draft(self, case_id: int, login: str) -> str | None:
        row = self.execute(
            "SELECT text FROM reply_drafts WHERE case_id = ? AND login = ?", (case_id, login)
        ).fetchone()
        return str(row[0]) if row else None

    def drop_draft(self, case_id: int, login: str) -> None:
        self.execute("DELETE FROM reply_drafts WHERE case_id = ? AND login = ?", (case_id, login))

    def saw_case(self, case_id: int, login: str, now: datetime) -> None:
        """`login` has the case open now."""
        self.execute(
            "INSERT INTO case_viewers (case_id, login, seen_at) VALUES (?, ?, ?)"
            " ON CONFLICT (case_id, login) DO UPDATE SET seen_at = excluded.seen_at",
            (case_id, login, now.isoformat(timespec="seconds")),
        )

    def case_viewers(self, case_id: int, since: datetime, *, besides: str) -> list[str]:
        """The logins other than `besides` that had the case open at or after `since`."""
        rows = self.execute(
            "SELECT login FROM case_viewers WHERE case_id = ? AND login != ?"
            " AND julianday(seen_at) >= julianday(?) ORDER BY login",
            (case_id, besides, since.isoformat(timespec="seconds")),
        )
        return [str(r[0]) for r in rows]

    def outbox_after(self, outbox_id: int) -> list[dict]:
        """The mails planned after `outbox_id`, oldest first, with their raw bytes."""
        rows = self.execute(
            "SELECT id, kind, recipient, subject, raw, send_at FROM outbox WHERE id > ?"
            " ORDER BY id",
            (outbox_id,),
        )
        return [dict(r) for r in rows]
