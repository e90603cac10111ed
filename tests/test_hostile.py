"""Hostile and broken mail through the whole pipeline on a real SQLite file: nothing crashes,
every mail is stored as a case with a reason (none `ignored` for want of a sender), nothing a
sender writes reaches a reply's headers or becomes a formula in the staff report.
(bench/reliability.py runs the same on thousands.)"""

from __future__ import annotations

import hashlib
from email import message_from_bytes
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from mailbot.context import Context
from mailbot.desk.report import build_report, write_xlsx
from mailbot.intake.runner import process_pending
from tests.support.desk import make_desk
from tests.support.hostile import hostile_mails
from tests.support.samples import samples


def ingest(ctx: Context, raws: list[bytes]) -> None:
    items = [(f"h:{n}:{hashlib.sha256(r).hexdigest()[:16]}", r) for n, r in enumerate(raws)]
    ctx.store.save_raw("code@occto.or.jp", items, ctx.now())


def assert_every_mail_is_a_case_with_a_reason(ctx: Context, count: int) -> None:
    rows = ctx.store.execute(
        "SELECT m.state, m.outcome, m.case_id, c.status, c.reason FROM messages m"
        " LEFT JOIN cases c ON c.id = m.case_id"
    ).fetchall()
    assert len(rows) == count
    for row in rows:
        assert row["state"] in ("done", "quarantined")
        assert row["case_id"] is not None and row["status"]
        assert row["outcome"] or row["reason"]
        if "no usable sender" in (row["outcome"] or ""):
            assert row["status"] == "held"  # never `ignored` for want of a sender


def assert_no_reply_carries_injected_headers(ctx: Context) -> None:
    for (raw,) in ctx.store.execute("SELECT raw FROM outbox").fetchall():
        msg = message_from_bytes(raw)
        assert msg["Bcc"] is None and msg["X-Evil"] is None
        assert len(msg.get_all("Subject")) == 1 and len(msg.get_all("To")) == 1
        assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_two_hundred_hostile_mails(tmp_path: Path):
    ctx = make_desk(tmp_path, "2026-11-25T10:00")
    raws = [raw for _what, raw in hostile_mails(200)]
    ingest(ctx, raws)
    results = process_pending(ctx)
    assert len(results) == len(raws)
    assert_every_mail_is_a_case_with_a_reason(ctx, len(raws))
    assert_no_reply_carries_injected_headers(ctx)
    kinds = {r["kind"] for r in ctx.store.execute("SELECT kind FROM outbox").fetchall()}
    assert "correction" in kinds  # the attacks in attachments got a clear answer
    assert_report_has_no_formula(ctx, tmp_path / "report.xlsx")
    ctx.close()


def assert_report_has_no_formula(ctx: Context, path: Path) -> None:
    write_xlsx(build_report(ctx), path)
    for sheet in load_workbook(path).worksheets:
        for row in sheet.iter_rows():
            assert all(cell.data_type != "f" for cell in row)


SEEDS = [s.raw for s in samples()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(SEEDS),
    cut=st.integers(min_value=0, max_value=50_000),
    noise=st.binary(max_size=400),
    at=st.integers(min_value=0, max_value=50_000),
)
def test_any_damage_to_a_real_mail_still_ends_as_a_case(tmp_path_factory, base, cut, noise, at):
    ctx = make_desk(tmp_path_factory.mktemp("h"), "2026-11-25T10:00")
    at = min(at, len(base))
    damaged = (base[:at] + noise + base[at:])[: max(1, len(base) - cut)]
    ingest(ctx, [damaged])
    assert len(process_pending(ctx)) == 1
    assert_every_mail_is_a_case_with_a_reason(ctx, 1)
    assert_no_reply_carries_injected_headers(ctx)
    ctx.close()
