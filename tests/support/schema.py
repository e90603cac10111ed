"""A database as an older mailbot left it: the migration steps before a given one, run the way
the store runs them, so a test can put rows in and see that step upgrade them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from mailbot.store import MIGRATIONS
from mailbot.store.sqlite import run_script


def database_before(path: Path, step: str | Callable[[sqlite3.Connection], None]) -> None:
    """Create the database at `path` with every step before `step` (an entry of MIGRATIONS)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for number, script in enumerate(MIGRATIONS[: MIGRATIONS.index(step)], start=1):
            conn.execute("BEGIN")
            if callable(script):
                script(conn)
            else:
                run_script(conn, script)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
    finally:
        conn.close()
