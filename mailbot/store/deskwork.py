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

    def workload(self, *, today: str, since: str) -> list[dict]:
        """Per 担当 (login, or '' for nobody): open cases, those waiting on us, those past
        their due date (`today`, a local ISO date), and the replies and decisions the login
        made at or after `since` (an instant)."""
        from mailbot.store.waiting import waiting_since_sql

        rows = self.execute(
            "SELECT coalesce(owner, '') AS owner, count(*) AS open,"
            f" coalesce(sum({waiting_since_sql('c')} IS NOT NULL), 0) AS waiting,"
            " coalesce(sum(coalesce(c.due, '') != '' AND substr(c.due, 1, 10) < ?), 0) AS overdue"
            " FROM cases c WHERE c.status NOT IN ('closed', 'ignored')"
            " GROUP BY coalesce(owner, '')",
            (today,),
        )
        found = {r["owner"]: dict(r) | {"done": 0} for r in rows}
        for row in self.execute(
            "SELECT substr(actor, 7) AS login, count(*) FROM events"
            " WHERE actor LIKE 'staff:%' AND kind IN ('staff_reply', 'decision', 'handled')"
            " AND julianday(at) >= julianday(?) GROUP BY actor",
            (since,),
        ):
            found.setdefault(
                row[0], {"owner": row[0], "open": 0, "waiting": 0, "overdue": 0, "done": 0}
            )["done"] = row[1]
        return sorted(found.values(), key=lambda r: (r["owner"] == "", r["owner"]))

    def service_levels_by_procedure(
        self, *, today: str, offset_minutes: int, open_statuses: list[str]
    ) -> dict[str, dict[str, int]]:
        """procedure → {kept, late, pending, overdue}: the cases with a due date, by whether
        their first decision came by it (or, undecided, whether it has passed)."""
        shift = f"{int(offset_minutes):+d} minutes"
        marks = ",".join("?" * len(open_statuses))
        rows = self.execute(
            "SELECT c.procedure, CASE"
            " WHEN d.first IS NOT NULL THEN"
            "  CASE WHEN date(d.first, ?) <= substr(c.due, 1, 10) THEN 'kept' ELSE 'late' END"
            f" WHEN c.status IN ({marks}) THEN"
            "  CASE WHEN substr(c.due, 1, 10) < ? THEN 'overdue' ELSE 'pending' END"
            " END AS level, count(*)"
            " FROM cases c LEFT JOIN (SELECT case_id, min(at) AS first FROM events"
            "  WHERE kind = 'decision' GROUP BY case_id) d ON d.case_id = c.id"
            " WHERE coalesce(c.due, '') != '' GROUP BY c.procedure, level",
            (shift, *open_statuses, today),
        )
        out: dict[str, dict[str, int]] = {}
        for procedure, level, count in rows:
            if level is not None:
                out.setdefault(procedure, {"kept": 0, "late": 0, "pending": 0, "overdue": 0})[
                    level
                ] = count
        return out
