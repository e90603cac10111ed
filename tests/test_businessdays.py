"""Business days per SPEC §6 and the seeds' 5営業日 windows, on the real holiday calendar."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.businessdays import BusinessCalendar, load_calendar
from mailbot.config import RULES_DIR
from mailbot.errors import ConfigError

RULES = RULES_DIR / "calendar.toml"
TOKYO = ZoneInfo("Asia/Tokyo")


@pytest.fixture(scope="module")
def cal() -> BusinessCalendar:
    return load_calendar(RULES)


def test_weekends_holidays_and_year_end_are_closed(cal: BusinessCalendar) -> None:
    assert cal.is_business_day(date(2026, 11, 25))
    assert not cal.is_business_day(date(2026, 11, 28))  # Saturday
    assert not cal.is_business_day(date(2026, 11, 23))  # 勤労感謝の日
    assert not cal.is_business_day(date(2026, 9, 22))  # 国民の休日 between 敬老の日 and 秋分の日
    assert not cal.is_business_day(date(2027, 1, 11))  # 成人の日
    for day in (date(2026, 12, 29), date(2026, 12, 31), date(2027, 1, 1), date(2027, 1, 3)):
        assert not cal.is_business_day(day)
    assert cal.is_business_day(date(2026, 12, 28))
    assert cal.is_business_day(date(2027, 1, 4))


def test_substitute_holiday_is_closed(cal: BusinessCalendar) -> None:
    assert cal.holiday_name(date(2027, 3, 22)) is not None  # 春分の日 2027-03-21 is a Sunday
    assert not cal.is_business_day(date(2027, 3, 22))


def test_five_business_days_from_a_notice(cal: BusinessCalendar) -> None:
    assert cal.add_business_days(date(2026, 11, 25), 5) == date(2026, 12, 2)
    # Friday before the 23rd (Monday holiday): Tue 24 is day 1
    assert cal.add_business_days(date(2026, 11, 20), 5) == date(2026, 11, 30)
    # across the year-end closure
    assert cal.add_business_days(date(2026, 12, 25), 5) == date(2027, 1, 7)  # 28th, then 4–7 Jan
    assert cal.add_business_days(date(2026, 11, 28), 0) == date(2026, 11, 30)


def test_business_days_between_is_days_left(cal: BusinessCalendar) -> None:
    assert cal.business_days_between(date(2026, 11, 25), date(2026, 12, 2)) == 5
    assert cal.business_days_between(date(2026, 12, 2), date(2026, 11, 25)) == -5
    assert cal.business_days_between(date(2026, 11, 25), date(2026, 11, 25)) == 0
    assert cal.subtract_business_days(date(2026, 12, 2), 5) == date(2026, 11, 25)


@given(st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 12, 31)), st.integers(1, 40))
def test_add_then_count_round_trips(day: date, days: int) -> None:
    cal = BusinessCalendar()
    end = cal.add_business_days(day, days)
    assert cal.is_business_day(end)
    assert cal.business_days_between(day, end) == days
    assert end - day >= timedelta(days=days)


def test_sending_window(cal: BusinessCalendar) -> None:
    inside = datetime(2026, 11, 25, 10, 30, tzinfo=TOKYO)
    assert cal.window_open(inside) == inside
    assert cal.is_window_open(inside)
    early = datetime(2026, 11, 25, 7, 0, tzinfo=TOKYO)
    assert cal.window_open(early) == datetime(2026, 11, 25, 9, 0, tzinfo=TOKYO)
    late = datetime(2026, 11, 25, 17, 0, tzinfo=TOKYO)
    assert cal.window_open(late) == datetime(2026, 11, 26, 9, 0, tzinfo=TOKYO)
    friday_night = datetime(2026, 11, 27, 20, 0, tzinfo=TOKYO)
    assert cal.window_open(friday_night) == datetime(2026, 11, 30, 9, 0, tzinfo=TOKYO)
    new_year = datetime(2026, 12, 28, 18, 0, tzinfo=TOKYO)
    assert cal.window_open(new_year) == datetime(2027, 1, 4, 9, 0, tzinfo=TOKYO)
    utc = datetime(2026, 11, 25, 0, 30, tzinfo=ZoneInfo("UTC"))  # 09:30 in Tokyo
    assert cal.window_open(utc) == utc


def test_extra_closures_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    path.write_text(
        'extra_closures = ["2026-11-26"]\n[sending_window]\nstart = "10:00"\nend = "16:00"\n',
        encoding="utf-8",
    )
    cal = load_calendar(path)
    assert not cal.is_business_day(date(2026, 11, 26))
    assert cal.add_business_days(date(2026, 11, 25), 1) == date(2026, 11, 27)
    assert cal.window_open(datetime(2026, 11, 25, 9, 30, tzinfo=TOKYO)).hour == 10
    path.write_text('extra_closures = ["26/11/2026"]\n', encoding="utf-8")
    with pytest.raises(ConfigError):
        load_calendar(path)
    path.write_text('[sending_window]\nstart = "18:00"\nend = "09:00"\n', encoding="utf-8")
    with pytest.raises(ConfigError):
        load_calendar(path)
    assert load_calendar(tmp_path / "missing.toml").is_business_day(date(2026, 11, 25))
