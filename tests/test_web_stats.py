"""/stats counts by SQL aggregate (SPEC §10 "/stats — backlog by status and age, intake and
answers per day, SLA kept or missed"): at some thousands of cases every number equals a
recount of the cases in Python, local days included (Japan's midnight is 15:00 UTC)."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.clock import TOKYO, Clock, parse_instant
from mailbot.config import load_config
from mailbot.context import Context
from mailbot.desk.web.stats import AGE_BUCKETS, DAYS, OLD, SLA_LABELS, build_stats
from mailbot.states import LABELS, OPEN, Status

NOW = "2026-11-25T09:00"
CASES = 3000


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    opened = Context.open(load_config(None), Clock(parse_instant(NOW)))
    yield opened
    opened.close()


def fill(ctx: Context, seed: int) -> None:
    """Cases received over 40 days, many at a few minutes either side of local midnight,
    some stored in UTC; decisions, and replies planned or sent, at random times."""
    rng = random.Random(seed)
    now = parse_instant(NOW)
    statuses = list(Status)

    def moment() -> datetime:
        day = now - timedelta(days=rng.randint(-1, 40))
        if rng.random() < 0.3:
            at = day.replace(hour=0, minute=0, second=0) + timedelta(minutes=rng.randint(-3, 3))
        else:
            at = day.replace(hour=rng.randint(0, 23), minute=rng.randint(0, 59))
        return at.astimezone(UTC) if rng.random() < 0.2 else at

    with ctx.store.transaction():
        for n in range(CASES):
            received = moment()
            due = received.date() + timedelta(days=rng.randint(-2, 12)) if n % 4 else None
            case_id = ctx.store.create_case(
                received,
                procedure="operator_code_application",
                status=rng.choice(statuses).value,
                received_at=received.isoformat(timespec="seconds"),
                due=due.isoformat() if due else None,
            )
            for _ in range(rng.choice((0, 0, 1, 2))):
                ctx.store.add_event(case_id, moment().astimezone(TOKYO), "staff:x", "decision")
            for k in range(rng.choice((0, 1, 2))):
                planned = moment()
                outbox = ctx.store.plan_mail(
                    case_id=case_id,
                    kind="reply",
                    message_id=f"<{case_id}.{k}@mailbot>",
                    recipient="a@example.jp",
                    subject="s",
                    raw=b"x",
                    now=planned,
                    send_at=planned,
                )
                if rng.random() < 0.5:
                    ctx.store.mark_sent(outbox, planned + timedelta(hours=rng.randint(0, 30)))
        ctx.store.plan_mail(
            case_id=None,
            kind="bounce",
            message_id="<none@mailbot>",
            recipient="b@example.jp",
            subject="s",
            raw=b"x",
            now=now,
            send_at=now,
        )


def recount(ctx: Context) -> list[list[tuple[str, int]]]:
    """The charts' numbers from every case, decoded and counted one by one."""
    tz = ctx.calendar.tz
    today = ctx.now().astimezone(tz).date()

    def local(text: str) -> date:
        return datetime.fromisoformat(text).astimezone(tz).date()

    cases = ctx.store.cases()
    open_cases = [c for c in cases if Status(c["status"]) in OPEN]
    ages = Counter()
    for c in open_cases:
        age = (today - local(c["received_at"])).days
        ages[next((name for *_, hi, name in AGE_BUCKETS if age <= hi), OLD)] += 1
    days = [today - timedelta(days=n) for n in range(DAYS - 1, -1, -1)]
    intake = Counter(local(c["received_at"]) for c in cases)
    answers = Counter(
        local(o["sent_at"] or o["created_at"])
        for c in cases
        for o in ctx.store.outbox_for_case(c["id"])
    )
    first: dict[int, datetime] = {}
    for c in cases:
        for e in ctx.store.events(c["id"]):
            if e["kind"] == "decision":
                at = datetime.fromisoformat(e["at"])
                first[c["id"]] = min(first.get(c["id"], at), at)
    sla = Counter()
    for c in cases:
        if not c.get("due"):
            continue
        due = date.fromisoformat(c["due"][:10])
        if c["id"] in first:
            sla[
                SLA_LABELS[0] if first[c["id"]].astimezone(tz).date() <= due else SLA_LABELS[1]
            ] += 1
        elif Status(c["status"]) in OPEN:
            sla[SLA_LABELS[3] if due < today else SLA_LABELS[2]] += 1
    by_status = Counter(c["status"] for c in open_cases)
    return [
        [(LABELS[s], by_status[s.value]) for s in Status if s in OPEN],
        [(name, ages[name]) for *_, name in AGE_BUCKETS] + [(OLD, ages[OLD])],
        [(f"{d:%m/%d}", intake[d]) for d in days],
        [(f"{d:%m/%d}", answers[d]) for d in days],
        [(k, sla[k]) for k in SLA_LABELS],
    ]


@pytest.mark.parametrize("seed", [1, 2])
def test_stats_equal_a_python_recount_at_thousands_of_cases(ctx, seed, monkeypatch):
    fill(ctx, seed)
    with monkeypatch.context() as m:  # the page reads no case row: aggregates only
        for name in ("cases", "cases_by_id", "events", "outbox_for_case"):
            m.setattr(ctx.store, name, lambda *a, **k: pytest.fail("decoded rows"))
        charts = build_stats(ctx)
    expected = recount(ctx)
    assert [[(b.label, b.value) for b in chart.bars] for chart in charts] == expected
    # the data reach every chart and every kind of service level
    assert all(chart.total for chart in charts)
    assert all(n for _, n in expected[4])
    assert sum(n for _, n in expected[2]) < CASES  # older cases fall outside the 14 days


def test_a_case_received_after_today_counts_as_new(ctx):
    tomorrow = parse_instant(NOW) + timedelta(days=1)
    with ctx.store.transaction():
        ctx.store.create_case(tomorrow, procedure="x", status=Status.RECEIVED.value)
    ages = build_stats(ctx)[1]
    assert [(b.label, b.value) for b in ages.bars if b.value] == [("0〜1日", 1)]
