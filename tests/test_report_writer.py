"""The queue report as XlsxWriter writes it (issue 17: 30,000 open rows in < 3 s), read back
with openpyxl as staff's `decisions apply` and the other tests read it: every cell of every
row has the value, the type, the number format and the fill of the report row it came from,
every decision cell its own dropdown."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mailbot.context import Context
from mailbot.desk.decisions_apply import apply_workbook
from mailbot.desk.report import (
    COLUMNS,
    DECISION_COLUMN,
    QUEUE_SHEET,
    REPORT_KEY_PROPERTY,
    VERSION_COLUMN,
    Report,
    _width,
    build_report,
    cell_text,
    write_xlsx,
)
from mailbot.states import Status
from tests.support.desk import make_desk

PROBLEM = {"field": "事業者名略称", "message": "全角10文字以内で記入してください。"}
REMARK = {"field": "連絡者電話番号", "message": "市外局番がありません。"}
SUBJECTS = (
    '=HYPERLINK("http://evil.example","x")',
    "+81-3-1234-5678",
    "-2+3",
    "@SUM(A1)",
    "#N/A",
    "0012",
    "TRUE",
    "  前後に空白  ",
    "件名\x07に制御文字",
    "【容量市場向け事業者コード申請】株式会社髙橋電力①",
)
"""What a participant may put in a subject: formulas, an error value, text that reads as a
number or a truth value, spaces a cell would trim, a control character."""


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = make_desk(tmp_path, "2026-11-25T10:00")
    now = ctx.now()
    dues = ("2026-11-20", "2026-11-26", "2026-12-10", None)
    statuses = (Status.COMPLETE, Status.NEEDS_CORRECTION, Status.AWAITING_REPLY, Status.HELD)
    # a held mail is unrecognised; an assessment takes no decision: its dropdown is empty
    procedures = {3: "unrecognized", 7: "unrecognized", 6: "supply_start_assessment"}
    with ctx.store.transaction():
        ctx.store.add_staff("suzuki", "鈴木", "not a login", now)
        for n, subject in enumerate(SUBJECTS):
            status = statuses[n % len(statuses)]
            ctx.store.create_case(
                now,
                procedure=procedures.get(n, "operator_code_application"),
                status=status,
                sender=f"=1+{n}@evil.example" if n % 3 == 0 else f"taro{n}@example.co.jp",
                subject=subject,
                received_at=f"2026-11-{10 + n:02d}T09:3{n % 10}:00+09:00",
                due=dues[n % len(dues)],
                problems=[PROBLEM] if status == Status.NEEDS_CORRECTION else [],
                data={"remarks": [REMARK]} if n % 2 else {"form": {"事業者名称": "髙橋"}},
                owner="suzuki" if n % 4 == 1 else None,
                operator_code="A123" if n % 5 == 2 else None,
            )
    yield ctx
    ctx.close()


def expected_type(value: object) -> str | None:
    if isinstance(value, str):
        return "s"
    if isinstance(value, date):
        return "d"
    return "n"


def test_every_cell_reads_back_as_the_report_row_it_came_from(desk: Context, tmp_path: Path):
    report = build_report(desk)
    path = tmp_path / "report.xlsx"
    write_xlsx(report, path)
    ws = load_workbook(path)[QUEUE_SHEET]
    assert [c.value for c in ws[1]] == [t for _, t in COLUMNS]
    assert all(c.font.b and c.data_type == "s" for c in ws[1])
    assert ws.max_row == len(report.rows) + 1 == len(SUBJECTS) + 1
    colours = {"overdue": "FFC7CE", "soon": "FFEB9C"}
    seen = set()
    for number, row in enumerate(report.rows, start=2):
        highlight = "overdue" if row.overdue else "soon" if row.due_soon else ""
        seen.add(highlight)
        for column, (key, title) in enumerate(COLUMNS, start=1):
            cell = ws.cell(number, column)
            value = getattr(row, key)
            where = (number, title)
            if value is None or value == "":
                assert cell.value is None, where
            else:
                assert cell.value == (
                    datetime.combine(value, datetime.min.time())
                    if type(value) is date
                    else cell_text(value)
                ), where
                assert cell.data_type == expected_type(value), where
            if key == "received" and value is not None:
                assert cell.number_format == "yyyy/mm/dd hh:mm" and cell.is_date, where
            if key == "due" and value is not None:
                assert cell.number_format == "yyyy/mm/dd" and cell.is_date, where
            if highlight:
                assert cell.fill.fill_type == "solid", where
                assert cell.fill.start_color.rgb.endswith(colours[highlight]), where
            else:
                assert cell.fill.fill_type is None, where
    assert seen == {"overdue", "soon", ""}
    texts = [ws.cell(r, 5).value for r in range(2, ws.max_row + 1)]
    assert set(texts) == {cell_text(s) for s in SUBJECTS}
    assert "件名に制御文字" in texts and "  前後に空白  " in texts and "0012" in texts


def test_each_decision_cell_has_the_dropdown_of_its_state(desk: Context, tmp_path: Path):
    report = build_report(desk)
    path = tmp_path / "report.xlsx"
    write_xlsx(report, path)
    ws = load_workbook(path)[QUEUE_SHEET]
    titles = [t for _, t in COLUMNS]
    decision = ws.cell(1, titles.index(DECISION_COLUMN) + 1).column_letter
    rules = {}
    for dv in ws.data_validations.dataValidation:
        for cell in str(dv.sqref).split():
            assert cell not in rules
            rules[cell] = dv
    assert set(rules) == {f"{decision}{n}" for n in range(2, len(report.rows) + 2)}
    for number, row in enumerate(report.rows, start=2):
        dv = rules[f"{decision}{number}"]
        if row.action_labels:
            assert dv.type == "list" and dv.formula1 == f'"{",".join(row.action_labels)}"'
            assert dv.error == "この案件の状態で選べる判断を一覧から選んでください。"
        else:
            assert (dv.type, dv.operator, dv.formula1) == ("textLength", "equal", "0")
            assert dv.error == "この案件の状態では判断を記入できません。"
        assert dv.errorStyle in (None, "stop") and dv.showErrorMessage and dv.allow_blank
        assert dv.errorTitle == "判断"
    assert any(not r.action_labels for r in report.rows)


def test_layout_widths_hidden_version_and_the_other_sheets(desk: Context, tmp_path: Path):
    report = build_report(desk)
    path = tmp_path / "report.xlsx"
    write_xlsx(report, path)
    book = load_workbook(path)
    ws = book[QUEUE_SHEET]
    assert ws.freeze_panes == "B2"
    assert ws.auto_filter.ref == f"A1:Q{len(report.rows) + 1}"  # 17 columns, 要対応 among them
    for column, (key, title) in enumerate(COLUMNS, start=1):
        dimension = ws.column_dimensions[ws.cell(1, column).column_letter]
        # XlsxWriter writes a width as Excel stores it: the characters plus a few pixels
        assert 0 <= dimension.width - _width(title, report.rows, key) <= 1, title
        assert bool(dimension.hidden) == (title == VERSION_COLUMN)
    summary = book["集計"]
    assert (summary["A1"].value, summary["B1"].value) == ("作成日時", "2026/11/25 10:00")
    assert summary["B2"].value == report.received_this_week and summary["B2"].data_type == "n"
    assert [c.value for c in book["隔離メール"][1]][:2] == ["メッセージ番号", "受信日時"]
    assert book.custom_doc_props[REPORT_KEY_PROPERTY].value == report.key


def test_staff_remarks_and_problems_fill_the_missing_column(desk: Context):
    """The report reads the remarks out of a case's data without decoding the rest of it."""
    rows = {r.subject: r for r in build_report(desk).rows}
    corrected = rows["+81-3-1234-5678"]  # n = 1: needs correction, with a remark
    assert corrected.missing == (
        "事業者名略称: 全角10文字以内で記入してください。\n"
        "【備考・担当者のみ】連絡者電話番号: 市外局番がありません。"
    )
    assert rows["-2+3"].missing == ""  # n = 2: no problem, no remark


def read_only_rows(path: Path) -> list[tuple[object, ...]]:
    book = load_workbook(path, read_only=True, data_only=True)
    try:
        return list(book[QUEUE_SHEET].iter_rows(values_only=True))
    finally:
        book.close()


def test_the_read_only_reader_of_decisions_apply_sees_the_same_sheet(desk: Context, tmp_path: Path):
    report = build_report(desk)
    path = tmp_path / "report.xlsx"
    write_xlsx(report, path)
    full = load_workbook(path)[QUEUE_SHEET]
    assert read_only_rows(path) == [tuple(c.value for c in r) for r in full.iter_rows()]


def test_a_report_written_before_keeps_its_key_in_the_identifier(desk: Context, tmp_path: Path):
    """Reports made before the XlsxWriter change carry their key as the document identifier;
    a filled-in one staff send back must still apply."""
    report: Report = build_report(desk)
    path = tmp_path / "report.xlsx"
    write_xlsx(report, path)
    book = load_workbook(path)
    del book.custom_doc_props[REPORT_KEY_PROPERTY]
    book.properties.identifier = report.key
    ws = book[QUEUE_SHEET]
    titles = [c.value for c in ws[1]]
    line, first = next(
        (n, r)
        for n, r in enumerate(report.rows, start=2)
        if "お断り（理由を通知）" in r.action_labels
    )
    ws.cell(line, titles.index(DECISION_COLUMN) + 1).value = "お断り（理由を通知）"
    ws.cell(line, titles.index("コメント（理由）") + 1).value = "重複した申請です。"
    book.save(path)
    [result] = apply_workbook(desk, path, by="suzuki")
    assert result.ok, result.why
    assert desk.store.case(first.case_id)["status"] == Status.CLOSED


def test_a_failed_report_leaves_the_previous_file_and_no_pieces(desk: Context, tmp_path: Path):
    """The workbook is written beside the report and moved over it only when complete."""
    folder = tmp_path / "reports"
    path = folder / "report.xlsx"
    good = build_report(desk)
    write_xlsx(good, path)
    before = path.read_bytes()
    broken = dataclasses.replace(good, quarantined=[{"id": 1}])  # a row without its fields
    with pytest.raises(KeyError):
        write_xlsx(broken, path)
    assert path.read_bytes() == before
    assert [p.name for p in folder.iterdir()] == ["report.xlsx"]


def test_a_column_is_as_wide_as_its_widest_line_within_8_to_60(desk: Context):
    """Full-width characters count two columns; a multi-line cell is as wide as its widest
    line; the same value on many rows is measured once."""
    rows = build_report(desk).rows
    template = next(r for r in rows if r.id == "MB-000001")
    lines = ("短い行", "二行目がいちばん長い行です。ABC")  # 28 + 3 columns
    made = [
        dataclasses.replace(template, subject="ＡＢＣ" * 7, missing="\n".join(lines)),
        *(dataclasses.replace(template, subject="x" * 10, missing="", owner="") for _ in range(50)),
        dataclasses.replace(template, subject="y", sender="z" * 100),
    ]
    assert _width("件名", made, "subject") == 42 + 2
    assert _width("不備・確認事項", made, "missing") == 31 + 2
    assert _width("差出人", made, "sender") == 60
    assert _width("担当", made, "owner") == 8
    assert _width("受付日時", made, "received") == len("2026/11/25 10:00") + 2
