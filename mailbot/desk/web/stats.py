"""Numbers for /stats: backlog by status and age, intake and answers per day, service levels
kept or missed. Plain values; the page draws them as SVG bars with the numbers beside."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mailbot.context import Context
from mailbot.states import LABELS, OPEN, Status

DAYS = 14
AGE_BUCKETS = ((0, 1, "0〜1日"), (2, 3, "2〜3日"), (4, 7, "4〜7日"), (8, 14, "8〜14日"))


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    share: float


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]

    @property
    def total(self) -> int:
        return sum(b.value for b in self.bars)


def _chart(title: str, items: list[tuple[str, int]]) -> Chart:
    top = max((v for _, v in items), default=0) or 1
    return Chart(title, [Bar(label, value, value / top) for label, value in items])


def _local_day(ctx: Context, text: str) -> date:
    return datetime.fromisoformat(text).astimezone(ctx.calendar.tz).date()


def build_stats(ctx: Context) -> list[Chart]:
    today = ctx.now().astimezone(ctx.calendar.tz).date()
    cases = ctx.store.cases()
    open_cases = [c for c in cases if Status(c["status"]) in OPEN]
    by_status = Counter(c["status"] for c in open_cases)
    ages = Counter()
    for c in open_cases:
        age = (today - _local_day(ctx, c["received_at"])).days
        label = next((name for lo, hi, name in AGE_BUCKETS if lo <= age <= hi), "15日以上")
        ages[label] += 1
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    intake = Counter(_local_day(ctx, c["received_at"]) for c in cases)
    answers = Counter(_local_day(ctx, at) for at in ctx.store.answer_times())
    decided_at = {
        case_id: _local_day(ctx, at) for case_id, at in ctx.store.first_decisions().items()
    }
    sla = Counter()
    for c in cases:
        if not c.get("due"):
            continue
        due = date.fromisoformat(str(c["due"])[:10])
        done = decided_at.get(c["id"])
        if done is not None:
            sla["期限内に対応" if done <= due else "期限超過で対応"] += 1
        elif Status(c["status"]) in OPEN:
            sla["期限超過・未対応" if due < today else "対応中（期限内）"] += 1
    return [
        _chart(
            "状態別の未処理件数", [(LABELS[s], by_status[s.value]) for s in Status if s in OPEN]
        ),
        _chart(
            "受付からの経過日数（未処理）",
            [(name, ages[name]) for *_, name in AGE_BUCKETS] + [("15日以上", ages["15日以上"])],
        ),
        _chart(f"日別の受付件数（直近{DAYS}日）", [(f"{d:%m/%d}", intake[d]) for d in days]),
        _chart(f"日別の返信件数（直近{DAYS}日）", [(f"{d:%m/%d}", answers[d]) for d in days]),
        _chart(
            "サービスレベル（期限のある案件）",
            [
                (k, sla[k])
                for k in ("期限内に対応", "期限超過で対応", "対応中（期限内）", "期限超過・未対応")
            ],
        ),
    ]
