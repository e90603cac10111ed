"""The one clock a run uses (SPEC §9 `--now` / `MAILBOT_NOW`).

Every deadline, business day, send window and scheduled job reads time from a `Clock`, so a
test or a replay can put the whole run at any moment without sleeping.
"""

from __future__ import annotations

import os
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from mailbot.errors import ConfigError

TOKYO = ZoneInfo("Asia/Tokyo")


def parse_instant(text: str) -> datetime:
    """An ISO-8601 instant; a naive one is taken as Asia/Tokyo, the operator's local time."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ConfigError("--now", f"not an ISO-8601 date-time: {text!r}") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=TOKYO)
    return value.astimezone(TOKYO)


class Clock:
    """Real time, or real time shifted so that the run starts at a given instant.

    A shifted clock still advances, so `mailbot run --now …` behaves like a live process that
    started at that moment (retries back off, windows open), while `run --once` sees a time that
    is, for all its decisions, the instant given.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start.astimezone(TOKYO) if start else None
        self._t0 = time.monotonic()

    @classmethod
    def from_option(cls, option: str | None) -> Clock:
        text = option or os.environ.get("MAILBOT_NOW")
        return cls(parse_instant(text) if text else None)

    def now(self) -> datetime:
        if self._start is None:
            return datetime.now(TOKYO)
        return self._start + timedelta(seconds=time.monotonic() - self._t0)

    def today(self) -> date:
        return self.now().date()
