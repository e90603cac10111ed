"""The market calendar and clearing prices (`rules/market.toml`), validated on load so that an
assessment is never computed on a half-filled table."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from mailbot.errors import ConfigError
from mailbot.forms.fields import AREAS
from mailbot.rulefile import RulesFile


@dataclass(frozen=True)
class DeliveryYear:
    year: int
    main_auction_fy: int
    main_auction_held_on: date
    additional_confirmation_deadline: date
    additional_auction_held_on: date | None
    prices: dict[str, int]

    @property
    def main_window_opens(self) -> date:
        """1 April of the main auction's fiscal year."""
        return date(self.main_auction_fy, 4, 1)

    @property
    def additional_reference_day(self) -> date:
        return self.additional_auction_held_on or self.additional_confirmation_deadline


@dataclass(frozen=True)
class Market:
    example: bool
    long_term_rounds: dict[int, date]
    years: dict[int, DeliveryYear]

    def year(self, delivery_year: int, key: str) -> DeliveryYear:
        found = self.years.get(delivery_year)
        if found is None:
            raise ConfigError(key, f"no [delivery_years.{delivery_year}] in the market calendar")
        return found


def _day(value: Any, key: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(key, f"{value!r} is not a date (YYYY-MM-DD)") from exc


def load_market(path: Path) -> Market:
    where = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(where, f"cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(where, str(exc)) from exc
    rounds = {
        int(k): _day(v, f"{where}: long_term_rounds.{k}")
        for k, v in data.get("long_term_rounds", {}).items()
    }
    years: dict[int, DeliveryYear] = {}
    for name, raw in data.get("delivery_years", {}).items():
        key = f"{where}: delivery_years.{name}"
        try:
            year = int(name)
            entry = DeliveryYear(
                year=year,
                main_auction_fy=int(raw["main_auction_fy"]),
                main_auction_held_on=_day(
                    raw["main_auction_held_on"], f"{key}.main_auction_held_on"
                ),
                additional_confirmation_deadline=_day(
                    raw["additional_confirmation_deadline"],
                    f"{key}.additional_confirmation_deadline",
                ),
                additional_auction_held_on=(
                    _day(raw["additional_auction_held_on"], f"{key}.additional_auction_held_on")
                    if raw.get("additional_auction_held_on")
                    else None
                ),
                prices={str(a): int(p) for a, p in raw["prices"].items()},
            )
        except KeyError as exc:
            raise ConfigError(key, f"missing {exc.args[0]}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(key, str(exc)) from exc
        if entry.main_auction_fy != year - 4:
            raise ConfigError(key, f"main_auction_fy must be {year - 4} (the year four before)")
        if entry.additional_confirmation_deadline <= entry.main_window_opens:
            raise ConfigError(
                key, "additional_confirmation_deadline is before the main auction year"
            )
        missing = [a for a in AREAS if a not in entry.prices]
        if missing:
            raise ConfigError(f"{key}.prices", f"no price for {', '.join(missing)}")
        unknown = [a for a in entry.prices if a not in AREAS]
        if unknown:
            raise ConfigError(f"{key}.prices", f"unknown area {', '.join(unknown)}")
        if any(p <= 0 for p in entry.prices.values()):
            raise ConfigError(f"{key}.prices", "prices must be positive (円/kW)")
        years[year] = entry
    return Market(example=bool(data.get("example", False)), long_term_rounds=rounds, years=years)


MARKET_RULES = RulesFile("market.toml", load_market)
