"""Scheduled jobs whose due state lives in SQLite, so a restart or a double run sends nothing
twice and skips nothing (it catches up once)."""

from __future__ import annotations

from mailbot.context import Context


def run_due_jobs(ctx: Context) -> list[str]:
    return []
