"""Cases waiting on us (issue 26): a participant's mail after our last one makes the case 要対応
until staff answer or mark it handled, and no reminder presses that participant meanwhile.

Issue 26: "a case whose participant wrote after our last mail is 要対応 until staff answer or
mark it handled: first in the default queue (after overdue), marked 新着, counted in the digest
with its number; automatic reminders to that participant pause while their mail is unanswered."
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest

from mailbot.context import Context
from mailbot.desk.jobs import run_due_jobs
from mailbot.desk.staff import mark_handled, reply
from mailbot.errors import DecisionError
from mailbot.states import Status
from tests.support.desk import body_text, make_desk, outbox, set_now, submit_to
from tests.support.samples import SAMPLES_DIR

CODE = "code@occto.or.jp"


def follow_up(ctx: Context, answering: str, text: str, key: str = "follow-up") -> bytes:
    """The participant of sample 02 writes again in the thread of our mail `answering`."""
    msg = EmailMessage()
    msg["From"] = "今井 花子 <hanako@minato-energy.jp>"
    msg["To"] = CODE
    msg["Subject"] = "Re: ご修正のお願い"
    msg["Date"] = format_datetime(ctx.now())
    msg["Message-ID"] = f"<{key}@minato-energy.jp>"
    msg["In-Reply-To"] = answering
    msg["References"] = answering
    msg.set_content(text)
    return msg.as_bytes()


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = make_desk(tmp_path, "2026-11-25T09:45", '\n[web]\nbase_url = "https://desk.example"\n')
    yield ctx
    ctx.close()


def flawed_case(ctx: Context) -> dict:
    case = submit_to(ctx, (SAMPLES_DIR / "02_operator_code_flawed.eml").read_bytes(), CODE)
    assert case["status"] == Status.NEEDS_CORRECTION
    return case


def test_a_follow_up_makes_the_case_wait_on_us_and_pauses_the_correction_reminder(desk):
    case = flawed_case(desk)
    assert desk.store.waiting_on_us() == {}
    correction = outbox(desk, "correction")[0]["message_id"]
    set_now(desk, "2026-11-26T11:00")
    text = "至急ご回答をお願いします。修正の仕方が分からないため、お電話でご相談させてください。"
    again = submit_to(desk, follow_up(desk, correction, text), CODE)
    assert again["id"] == case["id"] and again["status"] == Status.NEEDS_CORRECTION
    waits = desk.store.waiting_on_us()
    assert list(waits) == [case["id"]] and waits[case["id"]].startswith("2026-11-26T11:00")
    # five business days after the correction request the reminder is due, but the
    # participant who asked for a phone call gets no 「ご修正のお願い（再送）」
    set_now(desk, "2026-12-03T09:30")
    run_due_jobs(desk)
    assert outbox(desk, "correction_reminder") == []
    digest = body_text(outbox(desk, "staff_digest")[-1]["raw"])
    assert "■要対応：参加者からのメールに未対応（1件）" in digest
    assert "MB-000001" in digest and "https://desk.example/cases/1" in digest
    assert "要対応1件" in outbox(desk, "staff_digest")[-1]["subject"]
    # staff mark it handled (they phoned): the reminder goes on the next run
    mark_handled(desk, case["id"], by="sato")
    assert desk.store.waiting_on_us() == {}
    with pytest.raises(DecisionError, match="未対応の参加者のメールはありません"):
        mark_handled(desk, case["id"], by="sato")
    set_now(desk, "2026-12-04T09:30")
    run_due_jobs(desk)
    assert len(outbox(desk, "correction_reminder")) == 1
    assert "handled" in [e["kind"] for e in desk.store.events(case["id"])]


def test_a_staff_reply_answers_the_mail_and_a_later_one_waits_again(desk):
    case = flawed_case(desk)
    correction = outbox(desk, "correction")[0]["message_id"]
    set_now(desk, "2026-11-25T13:00")
    submit_to(desk, follow_up(desk, correction, "担当の方からご連絡ください。"), CODE)
    assert case["id"] in desk.store.waiting_on_us()
    set_now(desk, "2026-11-25T14:00")
    reply(desk, case["id"], "本日中にお電話いたします。", by="sato")
    assert desk.store.waiting_on_us() == {}
    set_now(desk, "2026-11-25T16:00")
    submit_to(desk, follow_up(desk, correction, "承知しました。", key="thanks"), CODE)
    assert desk.store.waiting_on_us()[case["id"]].startswith("2026-11-25T16:00")


def test_the_opening_mail_and_an_out_of_office_note_wait_on_nobody(desk):
    flawed_case(desk)
    submit_to(desk, (SAMPLES_DIR / "05_question.eml").read_bytes(), CODE)
    assert desk.store.waiting_on_us() == {}


def test_a_reminder_waits_while_the_same_participant_waits_on_another_case(desk):
    """'no reminder may press someone whose own mail nobody has answered' (issue 26): the
    participant's unanswered mail on one case holds the reminder of another."""
    first = flawed_case(desk)
    correction = outbox(desk, "correction")[0]["message_id"]
    set_now(desk, "2026-11-25T10:30")
    raw = (SAMPLES_DIR / "02_operator_code_flawed.eml").read_bytes()
    second = submit_to(desk, raw.replace(b"sample02.2026", b"sample02b.2026"), CODE)
    assert second["id"] != first["id"]
    set_now(desk, "2026-11-26T11:00")
    submit_to(desk, follow_up(desk, correction, "お電話をお願いします。"), CODE)
    assert list(desk.store.waiting_on_us()) == [first["id"]]
    set_now(desk, "2026-12-03T09:30")
    run_due_jobs(desk)
    assert outbox(desk, "correction_reminder") == []


def test_the_cli_lists_the_case_as_new_in_aligned_columns_and_marks_it_handled(
    tmp_path, monkeypatch, capsys
):
    """`mailbot cases` (text) marks 新着, shows 担当 and 受付日時 in columns aligned by display
    width; `mailbot handled` ends the wait."""
    from mailbot.cli import main
    from mailbot.console import display_width

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    ctx = make_desk(tmp_path, "2026-11-25T09:45")
    case = flawed_case(ctx)
    correction = outbox(ctx, "correction")[0]["message_id"]
    set_now(ctx, "2026-11-26T11:00")
    submit_to(ctx, follow_up(ctx, correction, "お電話でご相談させてください。"), CODE)
    submit_to(ctx, (SAMPLES_DIR / "05_question.eml").read_bytes(), CODE)
    ctx.close()
    capsys.readouterr()
    assert main(["--now", "2026-11-26T12:00", "cases"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "受付番号",
        "要対応",
        "手続き",
        "状態",
        "事業者コード",
        "担当",
        "受付日時",
        "期限",
        "不備",
        "差出人",
    ]
    first, second = lines[1], lines[2]
    assert "新着" in first and "未割当" in first and "2026/11/25 09:45" in first
    assert "新着" not in second
    # the 状態 column starts at the same display column on every line
    starts = [
        display_width(line[: line.index(label)])
        for line, label in ((lines[0], "状態"), (first, "修正依頼中"), (second, "手続き不明"))
    ]
    assert len(set(starts)) == 1
    assert lines[-1] == "2件（うち要対応 1件）"
    assert main(["--now", "2026-11-26T12:00", "case", "MB-000001"]) == 0
    assert "要対応: 参加者のメール（2026/11/26 11:00 受信）に未対応" in capsys.readouterr().out
    assert (
        main(["--now", "2026-11-26T12:00", "handled", f"MB-{case['id']:06d}", "--by", "sato"]) == 0
    )
    assert "対応済み" in capsys.readouterr().out
    assert main(["--now", "2026-11-26T12:00", "cases"]) == 0
    assert "新着" not in capsys.readouterr().out.splitlines()[1]


def test_the_report_marks_the_case_and_links_it_to_the_desk(desk, tmp_path):
    from openpyxl import load_workbook

    from mailbot.desk.report import QUEUE_SHEET, build_report, write_xlsx

    case = flawed_case(desk)
    correction = outbox(desk, "correction")[0]["message_id"]
    set_now(desk, "2026-11-26T11:00")
    submit_to(desk, follow_up(desk, correction, "至急ご回答を。"), CODE)
    report = build_report(desk)
    [row] = [r for r in report.rows if r.case_id == case["id"]]
    assert row.new_mail == "新着（11/26 11:00受信）"
    path = tmp_path / "report.xlsx"
    write_xlsx(report, path)
    cell = load_workbook(path)[QUEUE_SHEET]["A2"]
    assert cell.value == "MB-000001"
    assert cell.hyperlink.target == "https://desk.example/cases/1"


def test_the_morning_mails_link_the_desk(desk):
    """Issue 26: "`[web] base_url` → the morning report, digest and staff alerts link each
    case" ("The morning mails link nowhere and tell staff to run commands")."""
    from mailbot.outbox.planner import undeliverable_into
    from mailbot.store.effect import Effect

    case = flawed_case(desk)
    set_now(desk, "2026-11-26T08:40")
    run_due_jobs(desk)
    report = body_text(outbox(desk, "daily_report")[-1]["raw"])
    assert "https://desk.example/cases" in report
    effect = Effect(desk.now())
    row = desk.store.outbox_row(outbox(desk, "correction")[0]["id"])
    undeliverable_into(effect, desk, row, "550 no such user")
    desk.store.apply(effect)
    alert = body_text(outbox(desk, "staff_undeliverable")[-1]["raw"])
    assert f"https://desk.example/cases/{case['id']}" in alert
    assert "■種類　　　不備のご連絡（修正のお願い）" in alert
    assert "mailbot case" not in alert


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "desk.example", "https://d.example/?x=1"])
def test_a_base_url_is_an_http_address(tmp_path, bad):
    from mailbot.config import DEFAULT_CONFIG, parse_config
    from mailbot.errors import ConfigError

    with pytest.raises(ConfigError, match=r"web\.base_url"):
        parse_config(DEFAULT_CONFIG + f'\n[web]\nbase_url = "{bad}"\n', "<test>", tmp_path)
    good = parse_config(
        DEFAULT_CONFIG + '\n[web]\nbase_url = "https://desk.example/"\n', "<test>", tmp_path
    )
    assert good.case_url(82) == "https://desk.example/cases/82"
