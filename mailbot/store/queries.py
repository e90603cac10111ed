"""The reads and small writes the stages need beyond the core of sqlite.py, as typed methods.

Kept apart from sqlite.py's schema and pipeline writes so that a second backend implements
one list of methods and no caller outside store/ ever spells SQL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection
from datetime import date, datetime
from typing import Any

from mailbot.text import name_key


class Queries:
    """Mixed into `Store`; every method runs on the store's one connection."""

    execute: Callable[..., sqlite3.Cursor]

    # notices (seed 004 アセスメント結果通知書)
    def insert_notice(
        self,
        *,
        kind: str,
        case_id: int,
        source_id: str,
        operator_code: str,
        result: str,
        data: dict[str, Any],
        now: datetime,
    ) -> int:
        cur = self.execute(
            "INSERT INTO notices (kind, case_id, source_id, operator_code, result, data, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                kind,
                case_id,
                source_id,
                operator_code,
                result,
                json.dumps(data, ensure_ascii=False, default=str),
                now.isoformat(timespec="seconds"),
            ),
        )
        return int(cur.lastrowid or 0)

    def attach_notice_message(self, notice_id: int, message_id: str) -> None:
        self.execute("UPDATE notices SET message_id = ? WHERE id = ?", (message_id, notice_id))

    def notice_sent_as(self, message_id: str) -> dict[str, Any] | None:
        """The notice (id, case_id) whose mail has this Message-ID, if any."""
        row = self.execute(
            "SELECT id, case_id FROM notices WHERE message_id = ?", (message_id,)
        ).fetchone()
        return dict(row) if row else None

    def set_notice_notified(self, notice_id: int, day: date, deadline: date) -> None:
        self.execute(
            "UPDATE notices SET notified_on = ?, objection_deadline = ? WHERE id = ?",
            (day.isoformat(), deadline.isoformat(), notice_id),
        )

    def latest_notice(self, kind: str, source_id: str) -> dict[str, Any] | None:
        row = self.execute(
            "SELECT * FROM notices WHERE kind = ? AND source_id = ? ORDER BY id DESC LIMIT 1",
            (kind, source_id),
        ).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["data"] = json.loads(out["data"])
        return out

    def notices_of(self, kind: str, source_id: str) -> list[dict[str, Any]]:
        """Every notice of `kind` sent about the source, oldest first, data decoded."""
        rows = self.execute(
            "SELECT * FROM notices WHERE kind = ? AND source_id = ? ORDER BY id", (kind, source_id)
        ).fetchall()
        return [dict(r) | {"data": json.loads(r["data"])} for r in rows]

    def objection_accepted(self, notice_id: int) -> bool:
        """Staff accepted an objection to this notice (異議申立を認める)."""
        row = self.execute(
            "SELECT 1 FROM cases WHERE json_extract(data, '$.notice_id') = ?"
            " AND json_extract(data, '$.objection_result') = 'accepted' LIMIT 1",
            (notice_id,),
        ).fetchone()
        return row is not None

    def notice_count(self) -> int:
        return int(self.execute("SELECT count(*) FROM notices").fetchone()[0])

    # outbox
    def latest_outbox(self, case_id: int, kind: str | None = None) -> dict[str, Any] | None:
        """The case's newest planned mail (of `kind`, when given)."""
        sql = "SELECT * FROM outbox WHERE case_id = ?"
        params: tuple[Any, ...] = (case_id,)
        if kind is not None:
            sql += " AND kind = ?"
            params += (kind,)
        row = self.execute(sql + " ORDER BY id DESC LIMIT 1", params).fetchone()
        return dict(row) if row else None

    def first_outbox(self, case_id: int) -> dict[str, Any] | None:
        row = self.execute(
            "SELECT message_id, subject FROM outbox WHERE case_id = ? ORDER BY id LIMIT 1",
            (case_id,),
        ).fetchone()
        return dict(row) if row else None

    def last_mail_of_kind(self, case_id: int, kind: str) -> tuple[str, str] | None:
        """Message-ID and when (sent, else planned) of the newest mail of `kind` not failed."""
        row = self.execute(
            "SELECT message_id, coalesce(sent_at, send_at) AS at FROM outbox"
            " WHERE case_id = ? AND kind = ? AND state != 'failed' ORDER BY id DESC LIMIT 1",
            (case_id, kind),
        ).fetchone()
        return (row["message_id"], row["at"]) if row else None

    def outbox_row(self, outbox_id: int) -> dict[str, Any] | None:
        return self._outbox_row("id", outbox_id)

    def outbox_row_for(self, message_id: str) -> dict[str, Any] | None:
        """The outbox row of our mail with this Message-ID (what a delivery report names)."""
        return self._outbox_row("message_id", message_id)

    def _outbox_row(self, column: str, value: object) -> dict[str, Any] | None:
        row = self.execute(
            "SELECT id, case_id, kind, recipient, subject, created_at FROM outbox"
            f" WHERE {column} = ? ORDER BY id LIMIT 1",
            (value,),
        ).fetchone()
        return dict(row) if row else None

    def outbox_raw_of_case(self, outbox_id: int, case_id: int) -> bytes | None:
        row = self.execute(
            "SELECT raw FROM outbox WHERE id = ? AND case_id = ?", (outbox_id, case_id)
        ).fetchone()
        return bytes(row[0]) if row else None

    def outbox_count(self) -> int:
        return int(self.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def mark_bounced(self, message_id: str, error: str) -> int | None:
        """A delivery report returned our mail: the outbox row it names, now `bounced`."""
        self.execute(
            "UPDATE outbox SET state = 'bounced', last_error = ? WHERE message_id = ?",
            (error, message_id),
        )
        row = self.execute("SELECT id FROM outbox WHERE message_id = ?", (message_id,)).fetchone()
        return int(row[0]) if row else None

    def first_answer_waits(self) -> list[tuple[str, str]]:
        """(received_at, first reply planned at) for every case that got a reply."""
        rows = self.execute(
            "SELECT c.received_at, min(o.created_at) FROM cases c JOIN outbox o"
            " ON o.case_id = c.id GROUP BY c.id"
        )
        return [(r[0], r[1]) for r in rows]

    # messages (mail in)
    def mail_views_of_case(self, case_id: int, text_chars: int) -> list[dict[str, Any]]:
        """The case's mails in that have a view (`mail_views`, schema step 19), oldest
        first, as staff read them: `id`, `mailbox`, `received_at`, `state`, `outcome`,
        `shown` (mail/shown.py) and the first `text_chars` + 1 characters of the body
        (`text`), so the caller sees whether there is more. Never reads past a raw mail."""
        rows = self.execute(
            "SELECT v.message AS id, m.mailbox, v.received_at, v.state, v.outcome, v.shown,"
            " substr(v.text, 1, ?) AS text FROM mail_views v JOIN messages m ON m.id = v.message"
            " WHERE v.case_id = ? ORDER BY v.message",
            (text_chars + 1, case_id),
        )
        return [dict(r) for r in rows]

    def messages_without_view(self, case_id: int) -> list[int]:
        """The case's mails processed before schema step 19 (or quarantined): no view yet.
        Answered from the indexes alone."""
        rows = self.execute(
            "SELECT id FROM messages WHERE case_id = ?"
            " AND id NOT IN (SELECT message FROM mail_views WHERE case_id = ?) ORDER BY id",
            (case_id, case_id),
        )
        return [r[0] for r in rows]

    def message_text_missing(self, message_row: int) -> bool:
        """Whether the mail's body text was never kept (processed before schema step 5)."""
        row = self.execute(
            "SELECT body_text IS NULL FROM messages WHERE id = ?", (message_row,)
        ).fetchone()
        return bool(row and row[0])

    def keep_mail_view(self, message_row: int, shown: str, text: str) -> None:
        """What staff are shown of a mail with a case, with where and how it ended (copied
        from its row, which is read past its raw bytes this once)."""
        self.execute(
            "INSERT INTO mail_views (message, case_id, received_at, state, outcome, shown, text)"
            " SELECT id, case_id, received_at, state, outcome, ?, ? FROM messages"
            " WHERE id = ? AND case_id IS NOT NULL"
            " ON CONFLICT (message) DO UPDATE SET case_id = excluded.case_id,"
            " received_at = excluded.received_at, state = excluded.state,"
            " outcome = excluded.outcome, shown = excluded.shown, text = excluded.text",
            (shown, text, message_row),
        )

    def outbox_mails_of_case(self, case_id: int) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT raw, kind, recipient, created_at, send_at, sent_at, state, last_error"
            " FROM outbox WHERE case_id = ? ORDER BY id",
            (case_id,),
        )
        return [dict(r) for r in rows]

    def message_raw_of_case(self, message_id: int, case_id: int) -> bytes | None:
        row = self.execute(
            "SELECT raw FROM messages WHERE id = ? AND case_id = ?", (message_id, case_id)
        ).fetchone()
        return bytes(row[0]) if row else None

    def latest_done_message(self, case_id: int) -> dict[str, Any] | None:
        """The participant's latest processed mail on the case: the thread to answer in
        (`references` a list, `sender_name` the From display name, as parsed when processed)."""
        row = self.execute(
            "SELECT message_id, sender, sender_name, subject, mailbox, thread_references"
            " FROM messages WHERE case_id = ? AND state = 'done' ORDER BY id DESC LIMIT 1",
            (case_id,),
        ).fetchone()
        if row is None:
            return None
        out = dict(row)
        out["references"] = json.loads(out.pop("thread_references") or "[]")
        return out

    def quarantined_messages(self) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT id, received_at, sender, subject, outcome FROM messages"
            " WHERE state = 'quarantined' ORDER BY id"
        )
        return [dict(r) for r in rows]

    # cases
    def case_counts(self) -> dict[tuple[str, str], int]:
        """Cases by (procedure, status)."""
        rows = self.execute(
            "SELECT procedure, status, count(*) FROM cases GROUP BY procedure, status"
        )
        return {(r[0], r[1]): r[2] for r in rows}

    def cases_received_since(self, start: str) -> int:
        return int(
            self.execute("SELECT count(*) FROM cases WHERE received_at >= ?", (start,)).fetchone()[
                0
            ]
        )

    def cases_closed_since(self, start: str) -> int:
        return int(
            self.execute(
                "SELECT count(*) FROM cases WHERE status IN ('closed', 'ignored')"
                " AND updated_at >= ?",
                (start,),
            ).fetchone()[0]
        )

    def newest_case_id(
        self, procedure: str, source_id: str, statuses: tuple[str, ...]
    ) -> int | None:
        """The newest case of `procedure` for the source in one of `statuses`."""
        row = self.execute(
            "SELECT id FROM cases WHERE procedure = ? AND source_id = ?"
            f" AND status IN ({','.join('?' * len(statuses))}) ORDER BY id DESC LIMIT 1",
            (procedure, source_id, *statuses),
        ).fetchone()
        return int(row[0]) if row else None

    def case_data_of(
        self, procedure: str, statuses: tuple[str, ...], except_case: int
    ) -> list[str]:
        """The stored JSON data of the cases of `procedure` in `statuses`, but one."""
        rows = self.execute(
            "SELECT data FROM cases WHERE procedure = ?"
            f" AND status IN ({','.join('?' * len(statuses))}) AND id != ?",
            (procedure, *statuses, except_case),
        )
        return [r[0] or "" for r in rows]

    def open_applications_named(self, procedure: str, key: str, except_case: int) -> list[int]:
        """Open cases of `procedure` (but one) whose form's 事業者名称 folds to `key`
        (`text.name_key`): the same company applying twice. Reads the open cases only."""
        rows = self.execute(
            "SELECT id, json_extract(data, '$.form.\"事業者名称\"') FROM cases"
            " WHERE status NOT IN ('closed', 'ignored') AND procedure = ? AND id != ?"
            " ORDER BY id",
            (procedure, except_case),
        )
        return [int(r[0]) for r in rows if isinstance(r[1], str) and name_key(r[1]) == key]

    def campaign_case_exists(self, source_id: str, year: int) -> bool:
        return (
            self.execute(
                "SELECT 1 FROM cases WHERE procedure = 'roadmap_revision_reply' AND source_id = ?"
                " AND json_extract(data, '$.campaign_year') = ?",
                (source_id, year),
            ).fetchone()
            is not None
        )

    def unanswered_campaign(self, status: str, year: int) -> list[dict[str, Any]]:
        rows = self.execute(
            "SELECT c.id, c.source_id, c.operator_code, c.sender, c.due, s.name, s.operator_name,"
            " (SELECT count(*) FROM reminders r WHERE r.case_id = c.id) AS reminders"
            " FROM cases c LEFT JOIN sources s ON s.source_id = c.source_id"
            " WHERE c.procedure = 'roadmap_revision_reply' AND c.status = ?"
            " AND json_extract(c.data, '$.campaign_year') = ? ORDER BY c.due, c.id",
            (status, year),
        )
        return [dict(r) for r in rows]

    def grid_code_issued(self, grid_code: str) -> bool:
        """Is this 系統コード in the register: issued by a decision (`grid_codes`), imported
        (the operators' 発番済系統コード column), or named by a decision recorded before the
        register kept them?"""
        if self.execute("SELECT 1 FROM grid_codes WHERE grid_code = ?", (grid_code,)).fetchone():
            return True
        if self.execute(
            "SELECT 1 FROM operators, json_each(operators.issued_grid_codes) WHERE value = ?",
            (grid_code,),
        ).fetchone():
            return True
        row = self.execute(
            "SELECT 1 FROM cases WHERE json_extract(data, '$.issued_grid_code') = ?", (grid_code,)
        ).fetchone()
        return row is not None

    def grid_codes_of(self, operator_code: str) -> list[dict[str, Any]]:
        """The 系統コード issued to an operator, with the 発電所名略称 each identifies."""
        rows = self.execute(
            "SELECT grid_code, plant_name, area, issued_at FROM grid_codes"
            " WHERE operator_code = ? ORDER BY issued_at, grid_code",
            (operator_code,),
        )
        return [dict(r) for r in rows]

    # registers
    def operator_codes(self) -> set[str]:
        return {r[0] for r in self.execute("SELECT code FROM operators")}

    def operator_domain_registered(self, domain: str) -> bool:
        """Whether `domain` (or a domain it is a subdomain of) is an operator's registered
        ドメイン名."""
        domain = domain.strip().lower().rstrip(".")
        row = self.execute(
            "SELECT 1 FROM operators WHERE domain = ?"
            " OR (length(domain) > 0 AND substr(?, -length(domain) - 1) = '.' || domain) LIMIT 1",
            (domain, domain),
        ).fetchone()
        return row is not None

    def automatic_mails(
        self, kinds: Collection[str], case_id: int, thread_root: int
    ) -> tuple[int, int]:
        """(on the case, in its thread) counts of mails of `kinds` planned: the thread is the
        case `thread_root` and every case opened by a mail written in its thread
        (`in_thread` events)."""
        marks = ", ".join("?" for _ in kinds)
        on_case = self.execute(
            f"SELECT count(*) FROM outbox WHERE case_id = ? AND kind IN ({marks})",
            (case_id, *kinds),
        ).fetchone()[0]
        in_thread = self.execute(
            f"SELECT count(*) FROM outbox WHERE kind IN ({marks}) AND (case_id = ? OR case_id IN"
            " (SELECT case_id FROM events WHERE kind = 'in_thread'"
            " AND json_extract(detail, '$.root') = ?))",
            (*kinds, thread_root, thread_root),
        ).fetchone()[0]
        return int(on_case), int(in_thread)

    def operator_code_exists(self, code: str) -> bool:
        return (
            self.execute("SELECT 1 FROM operators WHERE code = ?", (code,)).fetchone() is not None
        )

    def roadmap_sources(self) -> list[dict[str, Any]]:
        rows = self.execute("SELECT * FROM sources WHERE roadmap_target = 1 ORDER BY source_id")
        return [dict(r) for r in rows]

    def set_supply_start(self, source_id: str, fiscal_year: int, now: datetime) -> None:
        """The source's 供給力提供開始時期 after an assessed change."""
        self.execute(
            "UPDATE sources SET supply_start_fy = ?, updated_at = ? WHERE source_id = ?",
            (fiscal_year, now.isoformat(timespec="seconds"), source_id),
        )

    def set_roadmap_revision(self, source_id: str, revision: int) -> None:
        self.execute(
            "UPDATE sources SET roadmap_revision = ? WHERE source_id = ?", (revision, source_id)
        )

    # delivery reports
    def sent_mail(self, message_id: str) -> dict[str, Any] | None:
        """Our mail on a case with this Message-ID, when it has left (sent, or already bounced):
        only such a mail can come back in a delivery report."""
        row = self.execute(
            "SELECT id, case_id, state FROM outbox WHERE message_id = ? AND case_id IS NOT NULL"
            " AND state IN ('sent', 'bounced') ORDER BY id LIMIT 1",
            (message_id,),
        ).fetchone()
        return dict(row) if row else None

    def count_events(self, kind: str, since: datetime, case_id: int | None = None) -> int:
        """Events of `kind` at or after `since`, on one case or on all."""
        sql = "SELECT count(*) FROM events WHERE kind = ? AND at >= ?"
        args: tuple[Any, ...] = (kind, since.isoformat(timespec="seconds"))
        if case_id is not None:
            sql, args = sql + " AND case_id = ?", (*args, case_id)
        return int(self.execute(sql, args).fetchone()[0])
