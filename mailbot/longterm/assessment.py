"""The supply-start assessment (供給力提供開始時期の遵守, SPEC §4, seed 004 §2.1.2, 約款第15条1①).

For each delivery year the source no longer covers after moving its start later, a change made
between 1 April of that year's main-auction fiscal year and the additional-auction confirmation
deadline affected the main auction's curve (5 % of price × 契約容量); a change after the deadline
affected the additional auction's (10 %, even when no additional auction is held). A curve that
never counted the source (its long-term round's results came later) is not affected.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from mailbot.errors import MailbotError
from mailbot.longterm.market import Market

# 「2026年度以前への制度適用期間の前倒しはできません。」 (seed 004 §2.1 注1): FY2027 at the earliest.
EARLIEST_START_FY = 2027
MAIN_RATE_PERCENT = 5
ADDITIONAL_RATE_PERCENT = 10


class AssessmentError(MailbotError):
    pass


@dataclass(frozen=True)
class CurveImpact:
    delivery_year: int
    auction: str  # "main" | "additional"
    affected: bool
    why: str
    price: int = 0
    rate_percent: int = 0
    penalty_yen: int = 0

    @property
    def auction_label(self) -> str:
        return "メインオークション" if self.auction == "main" else "追加オークション"


@dataclass(frozen=True)
class SupplyStartAssessment:
    source_id: str
    area: str
    auction_year: int
    capacity_kw: int
    from_fy: int
    to_fy: int
    changed_on: date
    direction: str  # 後ろ倒し | 前倒し
    impacts: tuple[CurveImpact, ...]
    replaced_kw: int = 0

    @property
    def period_start_fy(self) -> int:
        """The first year of the 制度適用期間 after the change: never before FY2027."""
        return max(self.to_fy, EARLIEST_START_FY)

    @property
    def held_at_earliest(self) -> bool:
        """An earlier start was asked than the 制度適用期間 may move to (注1)."""
        return self.to_fy < EARLIEST_START_FY

    @property
    def result(self) -> str:
        return "不合格" if any(i.affected for i in self.impacts) else "合格"

    @property
    def total_penalty_yen(self) -> int:
        return sum(i.penalty_yen for i in self.impacts)

    def as_data(self) -> dict[str, Any]:
        data = asdict(self)
        data["changed_on"] = self.changed_on.isoformat()
        data["result"] = self.result
        data["total_penalty_yen"] = self.total_penalty_yen
        data["period_start_fy"] = self.period_start_fy
        return data


def _penalty(price: int, capacity_kw: int, rate_percent: int) -> int:
    """円, rounded down (integer arithmetic: no float error on large capacities)."""
    return price * capacity_kw * rate_percent // 100


def assess_supply_start(
    market: Market,
    source: dict[str, Any],
    from_fy: int,
    to_fy: int,
    changed_on: date,
    replaced_kw: int = 0,
) -> SupplyStartAssessment:
    """`replaced_kw`: capacity moved to another source by 電源差替, left out of the 契約容量 the
    penalty counts (図2-2 ※2: 「電源差替を行った場合は、差替を行った容量を除く」)."""
    if to_fy == from_fy:
        raise AssessmentError(f"the start stays in FY{from_fy}: nothing to assess")
    area = str(source.get("area") or "")
    contracted = int(source.get("capacity_kw") or 0)
    if not 0 <= replaced_kw <= contracted:
        raise AssessmentError(
            f"差替 capacity {replaced_kw:,} kW is not between 0 and the 契約容量 {contracted:,} kW"
        )
    capacity = contracted - replaced_kw
    round_year = int(source.get("auction_year") or 0)
    if contracted <= 0:
        raise AssessmentError(f"{source['source_id']}: 契約容量(kW) is missing in the register")
    common = {
        "source_id": source["source_id"],
        "area": area,
        "auction_year": round_year,
        "capacity_kw": contracted,
        "from_fy": from_fy,
        "to_fy": to_fy,
        "changed_on": changed_on,
        "replaced_kw": replaced_kw,
    }
    if to_fy < from_fy:
        return SupplyStartAssessment(**common, direction="前倒し", impacts=())
    results_on = market.long_term_rounds.get(round_year)
    if results_on is None:
        raise AssessmentError(
            f"no long_term_rounds.{round_year} in the market calendar (応札年度 of {source['source_id']})"
        )
    impacts: list[CurveImpact] = []
    for year in range(from_fy, to_fy):
        entry = market.year(year, "rules/market.toml")
        if area not in entry.prices:
            raise AssessmentError(f"{source['source_id']}: エリア {area!r} has no price for {year}")
        price = entry.prices[area]
        in_main = entry.main_window_opens <= changed_on <= entry.additional_confirmation_deadline
        in_additional = changed_on > entry.additional_confirmation_deadline
        main_counted = results_on < entry.main_auction_held_on
        additional_counted = results_on < entry.additional_reference_day
        impacts.append(
            _impact(year, "main", in_main, main_counted, price, capacity, MAIN_RATE_PERCENT)
        )
        impacts.append(
            _impact(
                year,
                "additional",
                in_additional,
                additional_counted,
                price,
                capacity,
                ADDITIONAL_RATE_PERCENT,
            )
        )
    return SupplyStartAssessment(**common, direction="後ろ倒し", impacts=tuple(impacts))


def _impact(
    year: int, auction: str, in_window: bool, counted: bool, price: int, capacity: int, rate: int
) -> CurveImpact:
    if not in_window:
        return CurveImpact(year, auction, False, "変更時点が対象期間外")
    if not counted:
        return CurveImpact(year, auction, False, "供給曲線に当該電源の供給力が見込まれていない")
    return CurveImpact(
        year, auction, True, "影響あり", price, rate, _penalty(price, capacity, rate)
    )
