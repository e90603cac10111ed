"""The queue report opened with openpyxl cell by cell, and the decisions round trip."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mailbot.context import Context
from mailbot.decisions_apply import apply_workbook
from mailbot.report import build_report, render_html, write_xlsx
from mailbot.states import Status
from tests.desk import make_desk, outbox, set_now

PROBLEM = {"field": "事業者名略称", "message": "全角10文字以内で記入してください。"}


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = make_desk(tmp_path, "2026-11-25T10:00")
    now = ctx.now()
    with ctx.store.transaction():
        for due, status, subject in (
            (date(2026, 11, 20), Status.COMPLETE, "【容量市場向け事業者コード申請】"),
            (date(2026, 11, 26), Status.NEEDS_CORRECTION, "<script>alert(1)</script>"),
            (date(2026, 12, 10), Status.UNRECOGNIZED, "お問い合わせ"),
        ):
            ctx.store.create_case(
                now,
                procedure="unrecognized"
                if status == Status.UNRECOGNIZED
                else "operator_code_application",
                status=status,
                sender="taro@example.co.jp",
                subject=subject,
                received_at=now.isoformat(),
                due=due.isoformat(),
                problems=[PROBLEM] if status == Status.NEEDS_CORRECTION else [],
            )
    yield ctx
    ctx.close()


def test_workbook_cell_by_cell(desk: Context, tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    write_xlsx(build_report(desk), path)
    book = load_workbook(path)
    ws = book["未処理案件"]
    headers = [c.value for c in ws[1]]
    assert headers[:3] == ["受付番号", "手続き", "事業者"]
    assert ws.freeze_panes == "B2"
    assert ws.auto_filter.ref == "A1:N4"
    assert ws["A2"].value == "MB-000001"
    assert ws["B2"].value == "容量市場向け事業者コード申請"
    assert ws["G2"].value == "確認待ち"
    assert ws["J2"].value == -2  # 24th and 25th; the 23rd is a holiday
    assert ws["A2"].fill.start_color.rgb.endswith("FFC7CE")
    assert ws["A3"].fill.start_color.rgb.endswith("FFEB9C")
    assert ws["H3"].value == "事業者名略称: 全角10文字以内で記入してください。"
    assert ws["N2"].value == 1
    assert ws.column_dimensions["N"].hidden
    lists = {
        cell: dv.formula1
        for dv in ws.data_validations.dataValidation
        for cell in str(dv.sqref).split()
    }
    assert lists["K2"] == lists["K3"] == '"issue-code,reject"'
    assert lists["K4"] == '"close"'
    summary = book["集計"]
    assert summary["B2"].value == 3
    assert "隔離メール" in book.sheetnames


def test_html_escapes_and_marks_overdue(desk: Context) -> None:
    html = render_html(build_report(desk))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "#FFC7CE" in html
    assert "MB-000003" in html


def fill(path: Path, decisions: dict[int, tuple[str, str, str]]) -> None:
    book = load_workbook(path)
    ws = book["未処理案件"]
    for row, (action, arg, comment) in decisions.items():
        ws[f"K{row}"], ws[f"L{row}"], ws[f"M{row}"] = action, arg, comment
    book.save(path)


def test_decisions_round_trip(desk: Context, tmp_path: Path) -> None:
    """The sheet is checked whole first and applied all-or-nothing (issue 11, point 13): a
    stale row and an unknown action refuse the sheet, each with its own line, and the good
    row waits; once they are cleared, the good row is applied."""
    path = tmp_path / "report.xlsx"
    write_xlsx(build_report(desk), path)
    fill(
        path,
        {
            2: ("reject", "", "同一事業者から既に申請を受け付けています。"),
            3: ("issue-code", "", ""),  # stale: the case changes below
            4: ("teleport", "", ""),
        },
    )
    set_now(desk, "2026-11-25T11:00")
    with desk.store.transaction():
        desk.store.update_case(2, desk.now(), problems=[])
    results = apply_workbook(desk, path, by="suzuki")
    by_row = {r.row: r for r in results}
    assert not by_row[2].ok and "適用していません" in by_row[2].why
    assert not by_row[3].ok and "changed since the report" in by_row[3].why
    assert not by_row[4].ok and "teleport" in by_row[4].why
    assert desk.store.case(1)["status"] != Status.CLOSED
    assert outbox(desk, "rejection") == []
    fill(path, {3: ("", "", ""), 4: ("", "", "")})
    [applied] = apply_workbook(desk, path, by="suzuki")
    assert applied.row == 2 and applied.ok and applied.mails == 1
    assert desk.store.case(1)["status"] == Status.CLOSED
    decision = next(e for e in desk.store.events(1) if e["kind"] == "decision")
    assert decision["actor"] == "staff:suzuki"
    again = apply_workbook(desk, path, by="suzuki")
    assert not any(r.ok for r in again)
