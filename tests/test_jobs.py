"""Scheduled jobs and reminders, driven only by the clock (no sleeps), on a real SQLite file."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from pathlib import Path

import pytest

from mailbot.clock import TOKYO
from mailbot.context import Context
from mailbot.desk.jobs import run_due_jobs
from mailbot.longterm.outbound import start_mismatch_inquiry, start_roadmap_campaign
from mailbot.outbox.planner import Thread, plan_reply
from mailbot.outcome import Reply
from mailbot.states import Status
from tests.support.desk import body_text, load_sources, make_desk, outbox, set_now

PROBLEM = {"field": "事業者名略称", "message": "全角10文字以内で記入してください。"}


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = make_desk(tmp_path, "2026-11-16T10:00")  # Monday
    yield ctx
    ctx.close()


def correction_case(ctx: Context) -> int:
    now = ctx.now()
    with ctx.store.transaction():
        case_id = ctx.store.create_case(
            now,
            procedure="operator_code_application",
            status=Status.NEEDS_CORRECTION,
            sender="taro@example.co.jp",
            sender_name="山田 太郎",
            subject="【容量市場向け事業者コード申請】",
            received_at=now.isoformat(timespec="seconds"),
            problems=[PROBLEM],
            due=None,
        )
        case = ctx.store.case(case_id)
        reply = Reply("correction", "correction", {"problems": [PROBLEM], "wrong_mailbox": False})
        thread = Thread(
            message_id="<original@example.co.jp>",
            recipient="taro@example.co.jp",
            recipient_name="山田 太郎",
        )
        plan_reply(ctx, case, reply, thread, now)
    return case_id


def test_window_mail_planned_friday_evening_waits_for_next_business_morning(desk: Context):
    case_id = correction_case(desk)
    case = desk.store.case(case_id)
    set_now(desk, "2026-11-20T18:00")  # Friday; Monday 23rd is 勤労感謝の日
    with desk.store.transaction():
        reply = Reply(
            "notice", "correction", {"problems": [PROBLEM], "wrong_mailbox": False}, window=True
        )
        plan_reply(desk, case, reply, Thread(recipient="taro@example.co.jp"), desk.now())
    planned = outbox(desk, "notice")[0]
    assert datetime.fromisoformat(planned["send_at"]) == datetime(2026, 11, 24, 9, 0, tzinfo=TOKYO)
    receipt = outbox(desk, "correction")[0]
    assert datetime.fromisoformat(receipt["send_at"]) == datetime(2026, 11, 16, 10, 0, tzinfo=TOKYO)


def test_window_mail_at_year_end_waits_for_january(desk: Context):
    case_id = correction_case(desk)
    set_now(desk, "2026-12-28T17:30")
    with desk.store.transaction():
        reply = Reply(
            "notice", "correction", {"problems": [PROBLEM], "wrong_mailbox": False}, window=True
        )
        plan_reply(desk, desk.store.case(case_id), reply, Thread(recipient="a@b.jp"), desk.now())
    planned = outbox(desk, "notice")[0]
    assert datetime.fromisoformat(planned["send_at"]) == datetime(2027, 1, 4, 9, 0, tzinfo=TOKYO)


def test_correction_reminder_once_after_five_business_days(desk: Context):
    correction_case(desk)  # requested Monday 16 Nov
    set_now(desk, "2026-11-20T09:30")  # 4 business days later
    run_due_jobs(desk)
    assert outbox(desk, "correction_reminder") == []
    set_now(desk, "2026-11-24T09:30")  # Tue (Mon 23 is a holiday): 5 business days
    assert "participant_reminders" in run_due_jobs(desk)
    reminders = outbox(desk, "correction_reminder")
    assert len(reminders) == 1
    text = body_text(reminders[0]["raw"])
    assert "2026年11月16日" in text and "事業者名略称" in text
    asked = outbox(desk, "correction")[0]["message_id"]
    assert f"In-Reply-To: {asked}" in reminders[0]["raw"].decode("ascii", "replace")
    set_now(desk, "2026-11-25T09:30")
    run_due_jobs(desk)
    set_now(desk, "2026-11-26T09:30")
    run_due_jobs(desk)
    assert len(outbox(desk, "correction_reminder")) == 1


def test_job_firing_twice_runs_once(desk: Context):
    correction_case(desk)
    set_now(desk, "2026-11-17T08:40")
    first = run_due_jobs(desk)
    assert first == ["daily_report", "staff_digest", "participant_reminders"]  # Monday's catch-up
    assert run_due_jobs(desk) == []
    assert len(outbox(desk, "daily_report")) == 1


def test_two_runs_at_once_send_the_daily_report_once(
    desk: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A second run on the same database (a `run --once` from cron beside the daemon) can run
    the jobs while this run reads its report, before it takes the write lock; staff still get
    one report, because whether the job is due is looked at again under that lock. Before,
    each run sent its own."""
    from mailbot.desk import report

    other = make_desk(tmp_path, "2026-11-17T08:40")
    set_now(desk, "2026-11-17T08:40")
    real = report.read_report
    raced: list[list[str]] = []

    def read_while_another_runs(ctx: Context) -> report.Report:
        found = real(ctx)
        if ctx is desk and not raced:
            raced.append(run_due_jobs(other))
        return found

    monkeypatch.setattr(report, "read_report", read_while_another_runs)
    try:
        assert "daily_report" not in run_due_jobs(desk)
    finally:
        other.close()
    assert "daily_report" in raced[0]
    assert len(outbox(desk, "daily_report")) == 1


def test_the_daily_report_is_read_without_holding_the_write_lock(
    desk: Context, monkeypatch: pytest.MonkeyPatch
):
    """The report of 30,000 open cases takes ~3 s to read and write out; the web desk and a
    run beside this one must be able to write meanwhile. Before, the whole job ran inside
    BEGIN IMMEDIATE. The report still lists the cases it was read with."""
    from mailbot.desk import report

    real = report.read_report
    could_write: list[bool] = []

    def read_while_another_writes(ctx: Context) -> report.Report:
        other = sqlite3.connect(desk.config.database, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            could_write.append(True)
        except sqlite3.OperationalError:
            could_write.append(False)
        finally:
            other.close()
        read.append(real(ctx))
        return read[-1]

    read: list[report.Report] = []
    case_id = correction_case(desk)
    monkeypatch.setattr(report, "read_report", read_while_another_writes)
    set_now(desk, "2026-11-17T08:40")
    assert "daily_report" in run_due_jobs(desk)
    assert could_write == [True]
    assert len(outbox(desk, "daily_report")) == 1
    assert list(desk.store.report_cases(read[0].key)) == [case_id]


def test_restart_catches_up_once_not_per_missed_day(desk: Context):
    set_now(desk, "2026-11-16T08:31")
    assert "daily_report" in run_due_jobs(desk)
    set_now(desk, "2026-11-19T11:00")  # down Tue and Wed; back on Thursday
    ran = run_due_jobs(desk)
    assert ran.count("daily_report") == 1
    assert len(outbox(desk, "daily_report")) == 2


def test_no_report_on_weekends_after_fridays(desk: Context):
    set_now(desk, "2026-11-20T09:05")
    run_due_jobs(desk)
    set_now(desk, "2026-11-21T09:05")  # Saturday
    assert run_due_jobs(desk) == []
    set_now(desk, "2026-11-23T09:05")  # 勤労感謝の日
    assert run_due_jobs(desk) == []
    set_now(desk, "2026-11-24T08:31")  # Tuesday after the holiday
    assert run_due_jobs(desk) == ["daily_report"]


def test_clock_jumping_back_sends_nothing_again(desk: Context):
    set_now(desk, "2026-11-17T09:05")
    run_due_jobs(desk)
    count = len(outbox(desk))
    set_now(desk, "2026-11-17T08:00")
    assert run_due_jobs(desk) == []
    assert len(outbox(desk)) == count


def test_staff_digest_lists_overdue_and_due_soon(desk: Context):
    now = desk.now()
    with desk.store.transaction():
        for due in (date(2026, 11, 13), date(2026, 11, 18), date(2026, 12, 10)):
            desk.store.create_case(
                now,
                procedure="grid_code_application",
                status=Status.COMPLETE,
                sender="x@example.jp",
                subject="s",
                received_at=now.isoformat(),
                due=due.isoformat(),
            )
    set_now(desk, "2026-11-17T08:40")
    run_due_jobs(desk)
    digest = outbox(desk, "staff_digest")
    assert len(digest) == 1
    assert digest[0]["recipient"] == "capacity-desk@occto.or.jp"
    text = body_text(digest[0]["raw"])
    assert "■期限超過（1件）" in text and "MB-000001" in text
    assert "■期限間近（1件）" in text and "MB-000002" in text
    assert "MB-000003" not in text


def test_roadmap_campaign_reminders_before_and_after_deadline(desk: Context, tmp_path: Path):
    load_sources(desk, tmp_path)
    start_roadmap_campaign(desk, date(2026, 12, 4), 2026)
    assert len(outbox(desk, "roadmap_inquiry")) == 2
    set_now(desk, "2026-11-27T09:10")  # 5 business days before
    run_due_jobs(desk)
    assert outbox(desk, "roadmap_reminder") == []
    set_now(desk, "2026-12-01T09:10")  # 3 business days before
    run_due_jobs(desk)
    before = outbox(desk, "roadmap_reminder")
    assert len(before) == 2
    assert "ご回答期限のお知らせ" in before[0]["subject"]
    set_now(desk, "2026-12-02T09:10")
    run_due_jobs(desk)
    assert len(outbox(desk, "roadmap_reminder")) == 2
    set_now(desk, "2026-12-07T09:10")  # the Monday after the deadline
    run_due_jobs(desk)
    after = outbox(desk, "roadmap_reminder")
    assert len(after) == 4
    assert "ご回答期限経過" in after[-1]["subject"]


def test_mismatch_inquiry_reminded_once_when_unanswered(desk: Context, tmp_path: Path):
    load_sources(desk, tmp_path)
    start_mismatch_inquiry(desk, "L0000000001", "燃料種の記載が経済産業省提出版と異なります。")
    set_now(desk, "2026-11-18T09:10")
    run_due_jobs(desk)
    assert outbox(desk, "mismatch_reminder") == []
    set_now(desk, "2026-11-19T09:10")  # 3 business days after Monday's inquiry
    run_due_jobs(desk)
    reminders = outbox(desk, "mismatch_reminder")
    assert len(reminders) == 1
    assert "燃料種の記載" in body_text(reminders[0]["raw"])
    set_now(desk, "2026-11-20T09:10")
    run_due_jobs(desk)
    assert len(outbox(desk, "mismatch_reminder")) == 1


def test_daily_report_once_per_business_day_at_its_time_never_twice_for_one_date(desk: Context):
    set_now(desk, "2026-11-17T00:58")  # the desk's first run of the day, before 08:30
    assert "daily_report" not in run_due_jobs(desk)
    assert outbox(desk, "daily_report") == []
    set_now(desk, "2026-11-17T10:00")  # late, but the same business day: sent once
    assert "daily_report" in run_due_jobs(desk)
    set_now(desk, "2026-11-17T16:00")
    assert "daily_report" not in run_due_jobs(desk)
    set_now(desk, "2026-11-18T00:58")  # after midnight: not yesterday's again, not today's yet
    assert "daily_report" not in run_due_jobs(desk)
    set_now(desk, "2026-11-18T08:30")
    assert "daily_report" in run_due_jobs(desk)
    subjects = [row["subject"] for row in outbox(desk, "daily_report")]
    assert subjects == [
        "【mailbot】未処理案件レポート（2026/11/17）",
        "【mailbot】未処理案件レポート（2026/11/18）",
    ]


def test_the_daily_report_mail_tells_staff_how_to_apply_it(desk: Context):
    """The wording comes from templates/mail/daily_report.txt.j2, like every other mail."""
    set_now(desk, "2026-11-17T08:40")
    run_due_jobs(desk)
    body = body_text(outbox(desk, "daily_report")[0]["raw"])
    assert "2026/11/17時点の未処理案件レポートをお送りします。" in body
    assert "`mailbot decisions apply ファイル名` で反映できます" in body
    assert "添付して本メールに返信していただいても反映され" in body
