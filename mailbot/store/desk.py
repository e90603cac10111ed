"""The web desk's own reads and writes: login attempts, known browsers, session upkeep and the
numbers of /stats. Mixed into `Store` beside `Queries`, so callers never spell SQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime


def _t(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


@dataclass(frozen=True)
class LoginLimits:
    """Failures within the window that close password login: for one login from one client
    (or one known browser), from one client over all logins, and for one login over every
    client the login was never used from."""

    per_pair: int
    per_client: int
    per_login: int


@dataclass(frozen=True)
class DeskStats:
    """Counts by SQL aggregate. Days are local dates (ISO) at the offset the caller gave."""

    open_by_status: dict[str, int]
    open_by_age: dict[int, int]
    intake_by_day: dict[str, int]
    answers_by_day: dict[str, int]
    service_levels: dict[str, int]


class DeskQueries:
    """Mixed into `Store`; every method runs on the store's one connection."""

    execute: Callable[..., sqlite3.Cursor]

    # login attempts (throttling)
    def reserve_login_attempt(
        self,
        now: datetime,
        since: datetime,
        *,
        login: str,
        client: str,
        device: str | None,
        limits: LoginLimits,
    ) -> int | None:
        """Count the failures since `since` and, when under every limit, write this attempt
        as a failure at once, in the caller's transaction: concurrent attempts queue on the
        write lock, so no more than the limit ever reach the password check. Returns the
        row (to `clear_login_failures` when the password was right), or None when throttled,
        which writes nothing: a refused attempt neither counts nor extends the lock.

        With `device` (a browser that logged in as `login` before) only that browser's own
        failures count: strangers' failures for the login neither slow nor lock it."""
        at = _t(since)
        if device is not None:
            (mine,) = self.execute(
                "SELECT count(*) FROM login_failures WHERE device = ? AND login = ? AND at >= ?",
                (device, login, at),
            ).fetchone()
            refused = mine >= limits.per_pair
        else:
            pair, by_client, by_login = self.execute(
                "SELECT coalesce(sum(login = ? AND client = ?), 0),"
                " coalesce(sum(client = ?), 0), coalesce(sum(login = ?), 0)"
                " FROM login_failures WHERE device IS NULL AND at >= ?"
                " AND (login = ? OR client = ?)",
                (login, client, client, login, at, login, client),
            ).fetchone()
            refused = (
                pair >= limits.per_pair
                or by_client >= limits.per_client
                or by_login >= limits.per_login
            )
        if refused:
            return None
        cursor = self.execute(
            "INSERT INTO login_failures (at, login, client, device) VALUES (?, ?, ?, ?)",
            (_t(now), login, client, device),
        )
        return cursor.lastrowid

    def clear_login_failures(
        self, row: int, *, login: str, client: str, device: str | None
    ) -> None:
        """The password was right: the reserved row was no failure, and the earlier
        failures of this login from this client (or browser) are forgiven."""
        self.execute("DELETE FROM login_failures WHERE rowid = ?", (row,))
        if device is not None:
            self.execute(
                "DELETE FROM login_failures WHERE login = ? AND device = ?", (login, device)
            )
        else:
            self.execute(
                "DELETE FROM login_failures WHERE login = ? AND client = ? AND device IS NULL",
                (login, client),
            )

    def login_failure_count(self) -> int:
        return self.execute("SELECT count(*) FROM login_failures").fetchone()[0]

    # browsers that logged in before (their cookie's token is kept only as a hash)
    def add_login_device(self, token_hash: str, login: str, now: datetime) -> None:
        self.execute(
            "INSERT OR REPLACE INTO login_devices (token_hash, login, created_at, seen_at)"
            " VALUES (?, ?, ?, ?)",
            (token_hash, login, _t(now), _t(now)),
        )

    def login_device(self, token_hash: str, login: str, since: datetime) -> bool:
        """Whether this browser logged in as `login` at or after `since`."""
        row = self.execute(
            "SELECT 1 FROM login_devices WHERE token_hash = ? AND login = ? AND seen_at >= ?",
            (token_hash, login, _t(since)),
        ).fetchone()
        return row is not None

    def end_staff_sessions(self, login: str) -> None:
        """Every session of `login` ends (password changed); its known browsers stay, since a
        browser record grants only its own login-throttle bucket, never access."""
        self.execute("DELETE FROM web_sessions WHERE login = ?", (login,))

    def end_staff_access(self, login: str) -> None:
        """Every session and every known browser of `login` ends (account disabled): a stolen
        session or browser cookie is worth nothing afterwards."""
        self.execute("DELETE FROM web_sessions WHERE login = ?", (login,))
        self.execute("DELETE FROM login_devices WHERE login = ?", (login,))

    def web_session_count(self, login: str | None = None) -> int:
        if login is None:
            return self.execute("SELECT count(*) FROM web_sessions").fetchone()[0]
        return self.execute(
            "SELECT count(*) FROM web_sessions WHERE login = ?", (login,)
        ).fetchone()[0]

    def prune_web_auth(
        self,
        *,
        idle_before: datetime,
        started_before: datetime,
        failures_before: datetime,
        devices_before: datetime,
    ) -> int:
        """Remove sessions idle since `idle_before` or started before `started_before`,
        failures older than the throttle window and browsers unseen since `devices_before`.
        Returns how many rows went."""
        gone = self.execute(
            "DELETE FROM web_sessions WHERE seen_at < ? OR created_at < ?",
            (_t(idle_before), _t(started_before)),
        ).rowcount
        gone += self.execute(
            "DELETE FROM login_failures WHERE at < ?", (_t(failures_before),)
        ).rowcount
        gone += self.execute(
            "DELETE FROM login_devices WHERE seen_at < ?", (_t(devices_before),)
        ).rowcount
        return gone

    # /stats
    def desk_stats(
        self,
        *,
        today: str,
        first_day: str,
        offset_minutes: int,
        open_statuses: Iterable[str],
    ) -> DeskStats:
        """The numbers of /stats in five aggregate queries (service levels summed from
        `service_levels_by_procedure`), whatever the number of cases.
        `today` and `first_day` are local ISO dates; a stored instant's local day is its UTC
        day moved by `offset_minutes` (exact for a zone without daylight saving, as Japan)."""
        shift = f"{int(offset_minutes):+d} minutes"
        statuses = sorted(open_statuses)
        marks = ",".join("?" * len(statuses))
        by_status = dict(
            self.execute(
                f"SELECT status, count(*) FROM cases WHERE status IN ({marks}) GROUP BY status",
                statuses,
            ).fetchall()
        )
        by_age = {
            int(age): n
            for age, n in self.execute(
                "SELECT CAST(julianday(?) - julianday(date(received_at, ?)) AS INTEGER) AS age,"
                f" count(*) FROM cases WHERE status IN ({marks}) GROUP BY age",
                (today, shift, *statuses),
            )
        }
        intake = dict(
            self.execute(
                "SELECT date(received_at, ?) AS day, count(*) FROM cases"
                " WHERE day BETWEEN ? AND ? GROUP BY day",
                (shift, first_day, today),
            ).fetchall()
        )
        answers = dict(
            self.execute(
                "SELECT date(coalesce(sent_at, created_at), ?) AS day, count(*) FROM outbox"
                " WHERE case_id IS NOT NULL AND day BETWEEN ? AND ? GROUP BY day",
                (shift, first_day, today),
            ).fetchall()
        )
        levels: dict[str, int] = {}
        per_procedure = self.service_levels_by_procedure(  # type: ignore[attr-defined]
            today=today, offset_minutes=offset_minutes, open_statuses=statuses
        )
        for counts in per_procedure.values():
            for level, n in counts.items():
                if n:
                    levels[level] = levels.get(level, 0) + n
        return DeskStats(by_status, by_age, intake, answers, levels)
