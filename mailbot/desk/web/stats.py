"""Numbers for /stats: backlog by status and age, intake and answers per day, service levels
kept or missed. Plain values; the page draws them as SVG bars with the numbers beside."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from mailbot.context import Context
from mailbot.states import LABELS, OPEN, Status

DAYS = 14
AGE_BUCKETS = ((0, 1, "0〜1日"), (2, 3, "2〜3日"), (4, 7, "4〜7日"), (8, 14, "8〜14日"))
OLD = "15日以上"
SLA_LABELS = ("期限内に対応", "期限超過で対応", "対応中（期限内）", "期限超過・未対応")


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


def _bucket(age: int) -> str:
    """A case received later than today (a clock set back) counts as new, not as old."""
    return next((name for *_, hi, name in AGE_BUCKETS if age <= hi), OLD)


def build_stats(ctx: Context) -> list[Chart]:
    """Every number comes from an SQL aggregate (`Store.desk_stats`): the page costs the same
    five queries at 100 cases or 100,000, and no case is decoded."""
    now = ctx.now().astimezone(ctx.calendar.tz)
    today = now.date()
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    offset = now.utcoffset() or timedelta(0)
    found = ctx.store.desk_stats(
        today=today.isoformat(),
        first_day=days[0].isoformat(),
        offset_minutes=int(offset.total_seconds() // 60),
        open_statuses=[s.value for s in OPEN],
    )
    ages: Counter[str] = Counter()
    for age, count in found.open_by_age.items():
        ages[_bucket(age)] += count
    levels = dict(zip(("kept", "late", "pending", "overdue"), SLA_LABELS, strict=True))
    sla = {levels[key]: n for key, n in found.service_levels.items()}
    return [
        _chart(
            "状態別の未処理件数",
            [(LABELS[s], found.open_by_status.get(s.value, 0)) for s in Status if s in OPEN],
        ),
        _chart(
            "受付からの経過日数（未処理）",
            [(name, ages[name]) for *_, name in AGE_BUCKETS] + [(OLD, ages[OLD])],
        ),
        _chart(
            f"日別の受付件数（直近{DAYS}日）",
            [(f"{d:%m/%d}", found.intake_by_day.get(d.isoformat(), 0)) for d in days],
        ),
        _chart(
            f"日別の返信件数（直近{DAYS}日）",
            [(f"{d:%m/%d}", found.answers_by_day.get(d.isoformat(), 0)) for d in days],
        ),
        _chart("サービスレベル（期限のある案件）", [(k, sla.get(k, 0)) for k in SLA_LABELS]),
    ]


@dataclass(frozen=True)
class Workload:
    who: str
    open: int
    waiting: int
    overdue: int
    done: int


@dataclass(frozen=True)
class ProcedureLevel:
    procedure: str
    kept: int
    late: int
    pending: int
    overdue: int

    @property
    def kept_share(self) -> str:
        """Of the cases decided, the share decided by their due date (％), or "-"."""
        decided = self.kept + self.late
        return f"{100 * self.kept / decided:.0f}%" if decided else "-"


def build_tables(ctx: Context) -> tuple[list[Workload], list[ProcedureLevel]]:
    """Workload per 担当 (open, 要対応, overdue; replies, decisions and mails marked handled
    in the last DAYS days) and service levels per procedure."""
    now = ctx.now().astimezone(ctx.calendar.tz)
    today = now.date()
    since = now - timedelta(days=DAYS)
    names = {a["login"]: a["name"] for a in ctx.store.staff_list()}
    work = [
        Workload(
            who=f"{names[r['owner']]}（{r['owner']}）"
            if r["owner"] in names
            else r["owner"] or "未割当",
            open=r["open"],
            waiting=r["waiting"],
            overdue=r["overdue"],
            done=r["done"],
        )
        for r in ctx.store.workload(today=today.isoformat(), since=since.isoformat())
    ]
    offset = now.utcoffset() or timedelta(0)
    levels = ctx.store.service_levels_by_procedure(
        today=today.isoformat(),
        offset_minutes=int(offset.total_seconds() // 60),
        open_statuses=sorted(s.value for s in OPEN),
    )
    return work, [
        ProcedureLevel(ctx.routing.name_of(p), **counts) for p, counts in sorted(levels.items())
    ]
