"""Which cases wait on us: a participant wrote after our last mail, and no staff member has
answered or marked the mail handled since. Derived from the stored mails, our outbox and the
events in one SQL expression, so the web queue, `mailbot cases`, the report, the digest and
the reminder job all read the same fact and nothing can fall out of step with the mails.

A mail counts when it is a later mail on the case (the one that opened it is the bot's to
answer), was processed (`done`), and was not a robot's (an out-of-office note) or a second copy.
Our mail counts when it went (or waits to go) to the participant: staff mails carry no case.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

HANDLED_EVENTS = ("handled", "staff_reply", "decision")
"""Events by which staff answer a participant's mail without (or before) a mail of ours."""
NOT_TO_PARTICIPANT = ("roadmap_to_ministry",)
"""Case mails that go to someone other than the participant, so answer nobody's mail."""
PARTICIPANT_WAITS = ("needs_correction", "awaiting_reply")
"""Statuses in which the case waits on the participant (a correction, an answer), shown in a
view of their own unless the participant wrote and waits on us."""


def waiting_since_sql(case: str = "cases") -> str:
    """An SQL expression, over the case row aliased `case`, giving when the oldest of the
    participant's unanswered mails arrived (as stored), or NULL when none waits."""
    handled = ", ".join(f"'{kind}'" for kind in HANDLED_EVENTS)
    elsewhere = ", ".join(f"'{kind}'" for kind in NOT_TO_PARTICIPANT)
    return (
        "(SELECT min(m.received_at) FROM messages m"
        f" WHERE m.case_id = {case}.id AND m.state = 'done'"
        f" AND m.id > (SELECT min(f.id) FROM messages f WHERE f.case_id = {case}.id)"
        " AND coalesce(m.outcome, '') NOT LIKE 'not answered:%'"
        " AND coalesce(m.outcome, '') != 'duplicate'"
        " AND julianday(m.received_at) > coalesce((SELECT max(julianday(o.created_at))"
        f"  FROM outbox o WHERE o.case_id = {case}.id AND o.state != 'failed'"
        f"  AND o.kind NOT IN ({elsewhere})), 0)"
        " AND julianday(m.received_at) > coalesce((SELECT max(julianday(e.at))"
        f"  FROM events e WHERE e.case_id = {case}.id AND e.kind IN ({handled})), 0))"
    )


class WaitingQueries:
    """Mixed into `Store`; every method runs on the store's one connection."""

    execute: Callable[..., sqlite3.Cursor]

    def waiting_on_us(self, case_ids: Iterable[int] | None = None) -> dict[int, str]:
        """case id → when its oldest unanswered participant mail arrived, for the open cases
        that wait on us (of `case_ids`, when given)."""
        sql = (
            f"SELECT id, {waiting_since_sql('c')} AS since FROM cases c"
            " WHERE c.status NOT IN ('closed', 'ignored')"
        )
        params: list[Any] = []
        if case_ids is not None:
            sql += " AND c.id IN (SELECT value FROM json_each(?))"
            params.append(_json_ids(case_ids))
        rows = self.execute(f"SELECT id, since FROM ({sql}) WHERE since IS NOT NULL", params)
        return {int(r[0]): str(r[1]) for r in rows}

    def recipient_waits_on_us(self, address: str) -> bool:
        """Whether this participant (by address, any case) has a mail nobody answered."""
        row = self.execute(
            f"SELECT 1 FROM cases c WHERE c.status NOT IN ('closed', 'ignored')"
            " AND c.id IN (SELECT case_id FROM messages WHERE lower(sender) = lower(?))"
            f" AND {waiting_since_sql('c')} IS NOT NULL LIMIT 1",
            (address,),
        ).fetchone()
        return row is not None


def _json_ids(ids: Iterable[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"
