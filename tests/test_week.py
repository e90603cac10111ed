"""A week at the desk replayed from the CLI with `--now` (the README shows the same commands):
applications arrive, a report goes out each business morning, reminders fire once, staff decide
from the workbook, a stale workbook row is refused. Embedded default, real SQLite file."""

from __future__ import annotations

from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mailbot.cli import main
from tests.support.samples import SAMPLES_DIR

STAFF = "capacity-desk@occto.or.jp"


def cli(now: str, *args: str) -> int:
    return main(["--now", now, *args])


def outgoing(root: Path) -> list[tuple[str, str]]:
    """(recipient, subject) of every mail written to the outbox Maildir, oldest first."""
    folder = root / "data" / "outbox" / "new"
    out = []
    for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns):
        msg = message_from_bytes(path.read_bytes())
        out.append((msg["To"], str(make_header(decode_header(msg["Subject"])))))
    return out


def count(root: Path, text: str, to: str | None = None) -> int:
    return sum(
        1 for rcpt, subject in outgoing(root) if text in subject and (to is None or to in rcpt)
    )


def fill_decision(path: Path, case_number: str, action: str, comment: str = "") -> None:
    book = load_workbook(path)
    ws = book["未処理案件"]
    header = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        if row[header.index("受付番号")].value == case_number:
            row[header.index("判断")].value = action
            row[header.index("コメント（理由）")].value = comment
    book.save(path)


@pytest.fixture
def desk_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    assert cli("2026-11-25T08:00", "operators", "import", str(SAMPLES_DIR / "operators.csv")) == 0
    return tmp_path


def test_a_week_at_the_desk(desk_dir: Path, capsys: pytest.CaptureFixture):
    # Wednesday 25th: the morning's mail arrives and is answered at once
    mails = [
        str(SAMPLES_DIR / n)
        for n in ("01_operator_code_complete.eml", "02_operator_code_flawed.eml", "05_question.eml")
    ]
    assert cli("2026-11-25T08:40", "deliver", *mails) == 0
    assert cli("2026-11-25T08:45", "run", "--once") == 0
    assert count(desk_dir, "未処理案件レポート", STAFF) == 1
    assert count(desk_dir, "受付のお知らせ") == 1
    assert count(desk_dir, "不備のご連絡") == 1

    # staff take the morning report, decide MB-000001 in it, and apply it
    report = desk_dir / "report-1125.xlsx"
    assert cli("2026-11-25T10:00", "report", "--xlsx", str(report)) == 0
    fill_decision(report, "MB-000001", "issue-code")
    assert cli("2026-11-25T10:30", "decisions", "apply", str(report), "--by", "佐藤") == 0
    assert cli("2026-11-25T10:31", "run", "--once") == 0
    assert count(desk_dir, "事業者コードのお知らせ") == 1

    # the same runs again, and a run every few hours through the week
    runs = [
        "2026-11-25T10:32",
        "2026-11-25T17:00",
        "2026-11-26T08:50",
        "2026-11-26T12:00",
        "2026-11-27T09:10",
        "2026-11-28T09:00",  # Saturday
        "2026-11-29T09:00",  # Sunday
        "2026-11-30T08:31",
        "2026-12-01T09:30",
    ]
    for now in runs:
        assert cli(now, "run", "--once") == 0
    # one report per business morning: Wed, Thu, Fri, Mon, Tue; none at the weekend
    assert count(desk_dir, "未処理案件レポート", STAFF) == 5
    assert count(desk_dir, "事業者コードのお知らせ") == 1
    assert count(desk_dir, "ご修正のお願い（再送）") == 0

    # an older workbook: the flawed case changed since (a reminder is due, a resubmission came)
    old = desk_dir / "report-1201.xlsx"
    assert cli("2026-12-01T10:00", "report", "--xlsx", str(old)) == 0
    # Wednesday 2 Dec: five business days after the correction request, one reminder, once
    assert cli("2026-12-02T09:05", "run", "--once") == 0
    assert cli("2026-12-02T09:40", "run", "--once") == 0
    assert count(desk_dir, "ご修正のお願い（再送）", "hanako@minato-energy.jp") == 1
    assert (
        cli("2026-12-02T10:00", "deliver", str(SAMPLES_DIR / "10_corrected_resubmission.eml")) == 0
    )
    assert cli("2026-12-02T10:01", "run", "--once") == 0

    fill_decision(old, "MB-000002", "reject", "重複申請のため")
    capsys.readouterr()
    assert cli("2026-12-02T11:00", "decisions", "apply", str(old), "--by", "佐藤") == 1
    assert "MB-000002" in capsys.readouterr().out
    assert count(desk_dir, "お申込みについてのご連絡") == 0

    capsys.readouterr()
    assert cli("2026-12-02T11:05", "case", "MB-000001") == 0
    history = capsys.readouterr().out
    assert "staff:佐藤" in history and "code_issued" in history
