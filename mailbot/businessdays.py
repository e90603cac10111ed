"""The operator's calendar: which days count as business days, and when mail may go out.

Deadlines in the seeds are counted in 営業日 from the day something happened (day 0), so a
5-business-day window from a Friday notice ends on the following Friday unless a holiday
intervenes. The rules live in `rules/calendar.toml` so staff can add a closure without a release.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays

from mailbot.errors import ConfigError
from mailbot.rulefile import RulesFile


def _month_day(text: str) -> tuple[int, int]:
    month, day = text.split("-")
    return int(month), int(day)


def _clock_time(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


@dataclass(frozen=True)
class SendingWindow:
    start: time = time(9, 0)
    end: time = time(17, 0)


@dataclass
class BusinessCalendar:
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Tokyo"))
    year_end_from: tuple[int, int] = (12, 29)
    year_end_to: tuple[int, int] = (1, 3)
    extra_closures: frozenset[date] = frozenset()
    extra_business_days: frozenset[date] = frozenset()
    window: SendingWindow = field(default_factory=SendingWindow)
    _years: dict[int, holidays.HolidayBase] = field(default_factory=dict, repr=False)

    def _public_holidays(self, year: int) -> holidays.HolidayBase:
        if year not in self._years:
            self._years[year] = holidays.country_holidays("JP", years=year)
        return self._years[year]

    def holiday_name(self, day: date) -> str | None:
        return self._public_holidays(day.year).get(day)

    def in_year_end_closure(self, day: date) -> bool:
        md = (day.month, day.day)
        return md >= self.year_end_from or md <= self.year_end_to

    def is_business_day(self, day: date) -> bool:
        if day in self.extra_business_days:
            return True
        if day.weekday() >= 5 or day in self.extra_closures:
            return False
        if self.in_year_end_closure(day):
            return False
        return day not in self._public_holidays(day.year)

    def add_business_days(self, start: date, days: int) -> date:
        """The `days`-th business day after `start` (which is day 0 whatever it is).

        With days == 0 the answer is `start` itself when it is a business day, else the next one.
        """
        day = start
        if days <= 0:
            while not self.is_business_day(day):
                day += timedelta(days=1)
            return day
        remaining = days
        while remaining:
            day += timedelta(days=1)
            if self.is_business_day(day):
                remaining -= 1
        return day

    def subtract_business_days(self, end: date, days: int) -> date:
        """The business day that lies `days` business days before `end`."""
        day = end
        remaining = days
        while remaining > 0:
            day -= timedelta(days=1)
            if self.is_business_day(day):
                remaining -= 1
        return day

    def business_days_between(self, start: date, end: date) -> int:
        """Business days in (start, end]; negative when `end` is before `start`.

        This is the "days left" staff see: 0 on the due day, 1 the business day before.
        """
        if end == start:
            return 0
        sign = 1 if end > start else -1
        low, high = (start, end) if sign > 0 else (end, start)
        count = 0
        day = low
        while day < high:
            day += timedelta(days=1)
            if self.is_business_day(day):
                count += 1
        return sign * count

    def window_open(self, now: datetime) -> datetime:
        """The earliest moment at or after `now` when a windowed mail may go out."""
        local = now.astimezone(self.tz)
        day = local.date()
        if self.is_business_day(day) and local.time() < self.window.end:
            if local.time() >= self.window.start:
                return now
            return datetime.combine(day, self.window.start, self.tz)
        day = self.add_business_days(day, 1)
        return datetime.combine(day, self.window.start, self.tz)

    def is_window_open(self, now: datetime) -> bool:
        return self.window_open(now) == now


def load_calendar(path: Path) -> BusinessCalendar:
    """Read `rules/calendar.toml`; a missing file gives the SPEC §6 defaults."""
    if not path.exists():
        return BusinessCalendar()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        closure = data.get("year_end_closure", {})
        window = data.get("sending_window", {})
        calendar = BusinessCalendar(
            tz=ZoneInfo(data.get("timezone", "Asia/Tokyo")),
            year_end_from=_month_day(closure.get("from", "12-29")),
            year_end_to=_month_day(closure.get("to", "01-03")),
            extra_closures=frozenset(date.fromisoformat(d) for d in data.get("extra_closures", [])),
            extra_business_days=frozenset(
                date.fromisoformat(d) for d in data.get("extra_business_days", [])
            ),
            window=SendingWindow(
                start=_clock_time(window.get("start", "09:00")),
                end=_clock_time(window.get("end", "17:00")),
            ),
        )
    except (ValueError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), str(exc)) from exc
    if calendar.window.start >= calendar.window.end:
        raise ConfigError(str(path), "sending_window start must be before end")
    return calendar


CALENDAR_RULES = RulesFile("calendar.toml", load_calendar, has_defaults=True)
