"""The queue report opened with openpyxl cell by cell, and the decisions round trip."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.utils import get_column_letter

from mailbot.context import Context
from mailbot.desk.decisions_apply import apply_workbook
from mailbot.desk.report import build_report, render_html, write_xlsx
from mailbot.states import Status
from tests.support.desk import make_desk, outbox, set_now

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


def cells(ws, row: int) -> dict[str, object]:
    """One row of the queue sheet by column title (columns may be added between releases)."""
    return {ws.cell(1, c).value: ws.cell(row, c) for c in range(1, ws.max_column + 1)}


def dropdowns(ws) -> dict[str, object]:
    return {cell: dv for dv in ws.data_validations.dataValidation for cell in str(dv.sqref).split()}


def add_case(
    ctx: Context,
    status: Status,
    received: str,
    *,
    due: str | None,
    subject: str = "お問い合わせ",
    procedure: str = "operator_code_application",
) -> None:
    ctx.store.create_case(
        ctx.now(),
        procedure=procedure,
        status=status,
        sender="taro@example.co.jp",
        subject=subject,
        received_at=f"{received}:00+09:00",
        due=due,
        problems=[],
    )


def queue_rows(ctx: Context, tmp_path: Path, count: int) -> list[dict[str, object]]:
    """The first `count` queue rows of a freshly written report, by column title."""
    path = tmp_path / "report.xlsx"
    write_xlsx(build_report(ctx), path)
    ws = load_workbook(path)["未処理案件"]
    return [cells(ws, r) for r in range(2, count + 2)]


def test_workbook_cell_by_cell(desk: Context, tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    write_xlsx(build_report(desk), path)
    book = load_workbook(path)
    ws = book["未処理案件"]
    headers = [c.value for c in ws[1]]
    assert headers[:3] == ["受付番号", "手続き", "事業者"]
    assert ws.freeze_panes == "B2"
    assert ws.auto_filter.ref == f"A1:{get_column_letter(len(headers))}4"
    first, second = cells(ws, 2), cells(ws, 3)
    assert first["受付番号"].value == "MB-000001"
    assert first["手続き"].value == "容量市場向け事業者コード申請"
    assert first["状態"].value == "確認待ち"
    assert first["受付日時"].value == datetime(2026, 11, 25, 10, 0)  # a date-time cell, not text
    assert first["受付日時"].number_format == "yyyy/mm/dd hh:mm"
    assert first["期限"].value == datetime(2026, 11, 20) and first["期限"].is_date
    assert first["経過日数"].value == 0
    assert first["残り営業日"].value == -2  # 24th and 25th; the 23rd is a holiday
    assert first["受付番号"].fill.start_color.rgb.endswith("FFC7CE")
    assert second["受付番号"].fill.start_color.rgb.endswith("FFEB9C")
    assert second["不備・確認事項"].value == "事業者名略称: 全角10文字以内で記入してください。"
    assert first["version"].value == 1
    assert ws.column_dimensions[first["version"].column_letter].hidden
    assert not ws.column_dimensions[first["担当"].column_letter].hidden
    decision = first["判断"].column_letter
    lists = dropdowns(ws)
    assert lists[f"{decision}2"].formula1 == '"コード発番・通知,お断り（理由を通知）"'  # 確認待ち
    assert lists[f"{decision}3"].formula1 == '"お断り（理由を通知）"'  # 修正依頼中: no code yet
    assert lists[f"{decision}4"].formula1 == '"対応終了"'
    # an absent errorStyle is "stop" (ECMA-376 Part 1, 18.3.1.32): Excel refuses other values
    assert all(dv.showErrorMessage and dv.errorStyle in (None, "stop") for dv in lists.values())
    summary = book["集計"]
    assert summary["B2"].value == 3
    assert "隔離メール" in book.sheetnames


def test_rows_without_a_due_date_are_marked_by_their_age(tmp_path: Path) -> None:
    ctx = make_desk(tmp_path, "2026-11-25T10:00")
    with ctx.store.transaction():
        for received in ("2026-11-24T09:00", "2026-11-23T09:00", "2026-11-19T09:00"):
            add_case(ctx, Status.HELD, received, due=None, procedure="unrecognized")
    rows = queue_rows(ctx, tmp_path, 3)
    # the oldest first, as the web queue orders them (issue 26: "Undated cases sort by the
    # age of the oldest unanswered mail")
    assert [r["経過日数"].value for r in rows] == [6, 2, 1]
    assert [r["受付番号"].fill.fill_type for r in rows] == ["solid", "solid", None]
    assert rows[1]["受付番号"].fill.start_color.rgb.endswith("FFEB9C")
    assert rows[0]["受付番号"].fill.start_color.rgb.endswith("FFC7CE")
    ctx.close()


def test_rows_sharing_a_highlight_keep_their_own_values(tmp_path: Path) -> None:
    """Rows are streamed through reused cells: each row must still carry its own text, date
    and fill, and an unhighlighted row between them none of theirs."""
    ctx = make_desk(tmp_path, "2026-11-25T10:00")
    cases = (
        ("2026-11-18", "2026-11-20T09:00", "一件目"),
        ("2026-12-20", "2026-11-21T09:00", "二件目"),
        ("2026-11-19", "2026-11-22T09:00", "三件目"),
        ("2026-11-20", "2026-11-23T09:00", "=四件目"),
    )
    with ctx.store.transaction():
        for due, received, subject in cases:
            add_case(ctx, Status.COMPLETE, received, due=due, subject=subject)
    rows = queue_rows(ctx, tmp_path, 4)
    assert [r["件名"].value for r in rows] == ["一件目", "三件目", "=四件目", "二件目"]
    assert [r["件名"].data_type for r in rows] == ["s", "s", "s", "s"]
    assert [r["受付日時"].value.day for r in rows] == [20, 22, 23, 21]
    assert [r["期限"].value.day for r in rows] == [18, 19, 20, 20]
    assert all(r["受付日時"].number_format == "yyyy/mm/dd hh:mm" for r in rows)
    assert all(r["期限"].number_format == "yyyy/mm/dd" for r in rows)
    assert [r["件名"].fill.fill_type for r in rows] == ["solid", "solid", "solid", None]
    assert [r["判断"].fill.fill_type for r in rows] == ["solid", "solid", "solid", None]
    ctx.close()


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
        line = cells(ws, row)
        line["判断"].value, line["判断の値（コード等）"].value = action, arg
        line["コメント（理由）"].value = comment
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
            2: ("お断り（理由を通知）", "", "同一事業者から既に申請を受け付けています。"),
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
    assert not by_row[4].ok and "「teleport」は" in by_row[4].why
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


def test_refusals_name_the_comment_column_and_the_state_in_staff_words(
    desk: Context, tmp_path: Path
) -> None:
    path = tmp_path / "report.xlsx"
    write_xlsx(build_report(desk), path)
    fill(path, {2: ("お断り（理由を通知）", "", ""), 3: ("コード発番・通知", "", "")})
    by_row = {r.row: r for r in apply_workbook(desk, path, by="suzuki")}
    assert "「コメント（理由）」列に理由を記入してください" in by_row[2].why
    assert "--reason" not in by_row[2].why
    assert by_row[3].why == "状態が「修正依頼中」の案件では「コード発番・通知」は選べません"
    assert desk.store.case(2)["status"] == Status.NEEDS_CORRECTION


def test_the_html_report_comes_from_the_deployments_templates(tmp_path: Path, capsys) -> None:
    from mailbot.cli import main
    from mailbot.desk.deploy import init_deployment

    init_deployment(tmp_path)
    page = tmp_path / "templates" / "report" / "queue.html.j2"
    page.write_text(
        page.read_text(encoding="utf-8").replace("未処理案件レポート", "受付状況"), "utf-8"
    )
    config = str(tmp_path / "config.toml")
    assert main(["--config", config, "report", "--html", str(tmp_path / "queue.html")]) == 0
    assert "<title>受付状況</title>" in (tmp_path / "queue.html").read_text(encoding="utf-8")
