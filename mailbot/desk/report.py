"""The staff queue report (SPEC §7): one row per open case, a decision column staff fill in,
a summary sheet and the quarantined mails. Built once from the store, written as xlsx and HTML.

The hidden `version` column is what makes `mailbot decisions apply` refuse a row whose case
changed after the report was made.
"""

from __future__ import annotations

import functools
import statistics
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from mailbot.config import TEMPLATES_DIR
from mailbot.context import Context
from mailbot.outcome import remarks_of
from mailbot.procedures import registry
from mailbot.states import LABELS, Status, action_label, allowed_actions
from mailbot.store.registers import operator as find_operator
from mailbot.text import format_case_number

QUEUE_SHEET = "未処理案件"
SUMMARY_SHEET = "集計"
QUARANTINE_SHEET = "隔離メール"
COLUMNS = (
    ("id", "受付番号"),
    ("procedure_name", "手続き"),
    ("party", "事業者"),
    ("sender", "差出人"),
    ("subject", "件名"),
    ("received", "受付日時"),
    ("age_days", "経過日数"),
    ("status_name", "状態"),
    ("missing", "不備・確認事項"),
    ("due", "期限"),
    ("days_left", "残り営業日"),
    ("decision", "判断"),
    ("argument", "判断の値（コード等）"),
    ("comment", "コメント（理由）"),
    ("version", "version"),
    ("owner", "担当"),
)
DECISION_COLUMN = "判断"
ARGUMENT_COLUMN = "判断の値（コード等）"
COMMENT_COLUMN = "コメント（理由）"
VERSION_COLUMN = "version"
OVERDUE = PatternFill("solid", start_color="FFC7CE", end_color="FFC7CE")
DUE_SOON = PatternFill("solid", start_color="FFEB9C", end_color="FFEB9C")
AGE_OVERDUE_DAYS = 5
AGE_SOON_DAYS = 2
"""A case without a due date (held, unrecognised, quarantined, awaiting a reply) is marked by
its age instead: yellow from AGE_SOON_DAYS days after it came in, red from AGE_OVERDUE_DAYS,
so no open case sits unseen because nothing set it a deadline."""
DATE_FORMAT = "yyyy/mm/dd"
DATETIME_FORMAT = "yyyy/mm/dd hh:mm"


@dataclass
class Row:
    case_id: int
    id: str
    procedure: str
    procedure_name: str
    party: str
    sender: str
    subject: str
    received: datetime | None
    status_name: str
    missing: str
    due: date | None
    days_left: int | None
    actions: tuple[str, ...]
    version: int
    owner: str = ""
    decision: str = ""
    argument: str = ""
    comment: str = ""
    age_days: int = 0

    @property
    def overdue(self) -> bool:
        if self.days_left is None:
            return self.age_days >= AGE_OVERDUE_DAYS
        return self.days_left < 0

    @property
    def due_soon(self) -> bool:
        if self.days_left is None:
            return AGE_SOON_DAYS <= self.age_days < AGE_OVERDUE_DAYS
        return 0 <= self.days_left <= 1

    @property
    def action_labels(self) -> tuple[str, ...]:
        """The dropdown: only what this case's state takes, in staff words."""
        return tuple(action_label(a) for a in self.actions)


@dataclass
class Report:
    made_at: datetime
    rows: list[Row]
    by_procedure_status: list[tuple[str, str, int]]
    received_this_week: int
    closed_this_week: int
    median_hours_to_first_reply: float | None
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    key: str = ""


def _local(text: str | None, tz: Any) -> datetime | None:
    """Tokyo wall-clock time without tzinfo: what an Excel date-time cell can hold."""
    if not text:
        return None
    local = datetime.fromisoformat(text).astimezone(tz)
    return local.replace(tzinfo=None, second=0, microsecond=0)


def build_report(ctx: Context) -> Report:
    """Per-row lookups that repeat across rows (calendar, operator, procedure name, allowed
    actions) are made once per distinct value: 30,000 open rows share a few hundred."""
    tz = ctx.calendar.tz
    now = ctx.now().astimezone(tz)
    today = now.date()
    handlers = registry()
    rows = []
    calendar = ctx.calendar
    days_left = functools.cache(lambda due: calendar.business_days_between(today, due))
    due_date = functools.cache(lambda text: date.fromisoformat(text[:10]))
    procedure_name = functools.cache(ctx.routing.name_of)

    @functools.cache
    def party_of(code: str) -> str:
        op = find_operator(ctx.store, code)
        return f"{code} {op['name']}" if op else code

    @functools.cache
    def actions_of(procedure: str, status: str) -> tuple[str, ...]:
        handler = handlers.get(procedure)
        return allowed_actions(tuple(handler.actions), status) if handler else ()

    for case in ctx.store.cases(open_only=True):
        due = due_date(str(case["due"])) if case.get("due") else None
        party = case.get("operator_code") or ""
        received = _local(case["received_at"], tz)
        rows.append(
            Row(
                case_id=case["id"],
                id=format_case_number(case["id"]),
                procedure=case["procedure"],
                procedure_name=procedure_name(case["procedure"]),
                party=party_of(party) if party else "",
                sender=case.get("sender") or "",
                subject=case.get("subject") or "",
                received=received,
                age_days=(today - received.date()).days if received else 0,
                status_name=LABELS[Status(case["status"])],
                missing="\n".join(
                    [f"{p['field']}: {p['message']}" for p in case["problems"]]
                    + [
                        f"【備考・担当者のみ】{r['field']}: {r['message']}"
                        for r in remarks_of(case)
                    ]
                ),
                due=due,
                days_left=days_left(due) if due else None,
                actions=actions_of(case["procedure"], case["status"]),
                version=case["version"],
                owner=case.get("owner") or "",
            )
        )
    rows.sort(key=lambda r: (r.due is None, r.due or date.max, r.case_id))
    counts = Counter(ctx.store.case_counts())
    week_start = today - timedelta(days=today.weekday())
    start = datetime.combine(week_start, datetime.min.time(), ctx.calendar.tz).isoformat()
    received = ctx.store.cases_received_since(start)
    closed = ctx.store.cases_closed_since(start)
    waits = [
        (datetime.fromisoformat(replied) - datetime.fromisoformat(received_at)).total_seconds()
        / 3600
        for received_at, replied in ctx.store.first_answer_waits()
    ]
    quarantined = ctx.store.quarantined_messages()
    key = f"mailbot-report:{uuid.uuid4().hex}"
    ctx.store.record_report(key, ctx.now(), [(r.case_id, r.version) for r in rows])
    return Report(
        key=key,
        made_at=now,
        rows=rows,
        by_procedure_status=[
            (ctx.routing.name_of(p), LABELS[Status(s)], n) for (p, s), n in sorted(counts.items())
        ],
        received_this_week=int(received),
        closed_this_week=int(closed),
        median_hours_to_first_reply=round(statistics.median(waits), 1) if waits else None,
        quarantined=quarantined,
    )


def display_width(text: str) -> int:
    """Full-width characters take two columns in Excel as on a terminal."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _shown(row: Row, key: str) -> str:
    """The text a cell shows (for column widths and the HTML page)."""
    value = getattr(row, key)
    if isinstance(value, datetime):
        return value.strftime("%Y/%m/%d %H:%M")
    if isinstance(value, date):
        return value.strftime("%Y/%m/%d")
    return "" if value is None else str(value)


def write_xlsx(report: Report, path: Path) -> None:
    """The report through openpyxl's write-only mode: rows stream to the file as they are
    appended (a normal worksheet rescans every cell per styled row, which made 30,000 open
    cases take minutes), so widths, the hidden column and the dropdowns are set up first, and
    the folder is made before any row streams out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    book = Workbook(write_only=True)
    ws = book.create_sheet(QUEUE_SHEET)
    titles = [t for _, t in COLUMNS]
    for number, (key, title) in enumerate(COLUMNS, start=1):
        ws.column_dimensions[get_column_letter(number)].width = _width(title, report.rows, key)
    version_col = titles.index(VERSION_COLUMN) + 1
    ws.column_dimensions[get_column_letter(version_col)].hidden = True
    ws.freeze_panes = "B2"
    ws.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{len(report.rows) + 1}"
    decision_col = get_column_letter(titles.index(DECISION_COLUMN) + 1)
    cells_by_actions: dict[tuple[str, ...], list[str]] = {}
    for index, row in enumerate(report.rows, start=2):
        cells_by_actions.setdefault(row.action_labels, []).append(f"{decision_col}{index}")
    for labels, cells in cells_by_actions.items():
        # one range string per dropdown: DataValidation.add() rescans every range per cell,
        # which made a 6,000-row report take 18 s. A row whose state takes no decision gets an
        # empty-only list, so nothing typed into it is accepted either.
        dv = DataValidation(
            type="list" if labels else "textLength",
            formula1=f'"{",".join(labels)}"' if labels else "0",
            operator=None if labels else "equal",
            allow_blank=True,
            showErrorMessage=True,
            errorStyle="stop",
            sqref=" ".join(cells),
        )
        dv.errorTitle = "判断"
        dv.error = (
            "この案件の状態で選べる判断を一覧から選んでください。"
            if labels
            else "この案件の状態では判断を記入できません。"
        )
        ws.data_validations.append(dv)
    bold = Font(bold=True)
    ws.append([_text_cell(ws, title, font=bold) for title in titles])
    formats = {
        titles.index("受付日時"): DATETIME_FORMAT,
        titles.index("期限"): DATE_FORMAT,
    }
    cells = _RowCells(ws, formats)
    for row in report.rows:
        ws.append(cells.row(row))
    summary = book.create_sheet(SUMMARY_SHEET)
    summary.column_dimensions["A"].width = 50
    summary.column_dimensions["B"].width = 20
    summary_rows: list[list[Any]] = [
        ["作成日時", report.made_at.strftime("%Y/%m/%d %H:%M")],
        ["今週の受付件数", report.received_this_week],
        ["今週の完了件数", report.closed_this_week],
        ["初回返信までの時間（中央値・時間）", report.median_hours_to_first_reply],
        [],
        ["手続き", "状態", "件数"],
        *(list(line) for line in report.by_procedure_status),
    ]
    for values in summary_rows:
        summary.append([_text_cell(summary, v) for v in values])
    quarantine = book.create_sheet(QUARANTINE_SHEET)
    quarantine.append(
        [
            _text_cell(quarantine, t)
            for t in ("メッセージ番号", "受信日時", "差出人", "件名", "理由")
        ]
    )
    for q in report.quarantined:
        quarantine.append(
            [
                _text_cell(quarantine, cell_text(q[k]))
                for k in ("id", "received_at", "sender", "subject", "outcome")
            ]
        )
    book.properties.identifier = report.key
    book.save(path)


def _width(title: str, rows: list[Row], key: str) -> float:
    """A column as wide as its widest line, within 8..60. A text cannot be wider than twice
    its length, so most values are passed over without measuring them."""
    cap = 58
    widest = display_width(title)
    for row in rows:
        value = getattr(row, key)
        if isinstance(value, str) and 2 * len(value) <= widest:
            continue
        text = _shown(row, key)
        widest = max(widest, *(display_width(line) for line in text.split("\n")))
        if widest >= cap:
            break
    return min(60, max(8, widest + 2))


class _RowCells:
    """The queue rows as openpyxl's write-only sheet takes them fastest. A plain value goes
    through one reused cell; a WriteOnlyCell costs a new object and a style lookup per cell.
    So a value is handed over plain unless it needs more: a fill (highlighted rows), a date
    format, or a string openpyxl would not keep as text (a leading = becomes a formula, #N/A an
    error). Those go through one styled template cell per column and highlight, made once and
    refilled per row (the write-only sheet writes a row out before append returns)."""

    def __init__(self, ws: Any, formats: dict[int, str]) -> None:
        self.ws = ws
        self.formats = formats
        self.keys = [key for key, _ in COLUMNS]
        self.templates: dict[tuple[int, str], WriteOnlyCell] = {}

    def _template(self, column: int, highlight: str) -> WriteOnlyCell:
        cell = self.templates.get((column, highlight))
        if cell is None:
            fill = {"overdue": OVERDUE, "soon": DUE_SOON}.get(highlight)
            cell = _text_cell(self.ws, None, fill=fill, number_format=self.formats.get(column))
            self.templates[(column, highlight)] = cell
        return cell

    def row(self, row: Row) -> list[Any]:
        highlight = "overdue" if row.overdue else "soon" if row.due_soon else ""
        values: list[Any] = []
        for column, key in enumerate(self.keys):
            value = cell_text(getattr(row, key))
            empty = value == "" or value is None
            if not highlight and (empty or (column not in self.formats and _plain(value))):
                values.append(None if empty else value)
                continue
            cell = self._template(column, highlight)
            cell.value = value
            if isinstance(value, str):
                cell.data_type = "s"
            values.append(cell)
        return values


def _plain(value: Any) -> bool:
    """Whether openpyxl keeps `value` as it is without a typed cell."""
    if isinstance(value, str):
        return not value.startswith("=") and value not in ERROR_CODES
    return isinstance(value, int)


def _text_cell(
    ws: Any,
    value: Any,
    *,
    font: Font | None = None,
    fill: PatternFill | None = None,
    number_format: str | None = None,
) -> WriteOnlyCell:
    """A streamed cell. Everything in the report is text or a number we computed; a
    participant's subject or address starting with = + - @ TAB or CR (OWASP CSV injection) must
    stay text in staff's Excel, never become a formula. openpyxl makes any string starting with
    = a formula cell, so every string cell is typed as a string."""
    cell = WriteOnlyCell(ws, value)
    if isinstance(value, str):
        cell.data_type = "s"
    if font is not None:
        cell.font = font
    if fill is not None:
        cell.fill = fill
    if number_format is not None:
        cell.number_format = number_format
    return cell


def cell_text(value: Any) -> Any:
    """A value as a worksheet may hold it: control characters a sender put in a subject or
    an address are dropped (openpyxl refuses them, and one such mail would stop the report)."""
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def render_html(report: Report, ctx: Context | None = None) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    templates = ctx.config.templates_dir if ctx is not None else TEMPLATES_DIR
    env = Environment(
        loader=FileSystemLoader(templates), autoescape=select_autoescape(["html", "j2"])
    )
    columns = [
        (k, t) for k, t in COLUMNS if k not in ("decision", "argument", "comment", "version")
    ]
    return env.get_template("report/queue.html.j2").render(
        report=report, columns=columns, shown=_shown
    )


def write_html(report: Report, path: Path, ctx: Context | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, ctx), encoding="utf-8")
