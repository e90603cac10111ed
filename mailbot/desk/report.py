"""The staff queue report (SPEC §7): one row per open case, a decision column staff fill in,
a summary sheet and the quarantined mails. Built once from the store, written as xlsx and HTML.

The hidden `version` column is what makes `mailbot decisions apply` refuse a row whose case
changed after the report was made.
"""

from __future__ import annotations

import functools
import re
import statistics
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any

from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.utility import xl_col_to_name
from xlsxwriter.worksheet import Worksheet

from mailbot.config import TEMPLATES_DIR
from mailbot.context import Context
from mailbot.private import private_file, write_private
from mailbot.procedures import registry
from mailbot.states import LABELS, Status, action_label, allowed_actions
from mailbot.store.registers import party
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
    ("new_mail", "要対応"),
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
OVERDUE = "#FFC7CE"
DUE_SOON = "#FFEB9C"
REPORT_KEY_PROPERTY = "mailbot-report"
"""The custom document property holding the report's key (`decisions apply` reads it back;
Excel keeps custom properties when staff save the filled-in workbook)."""
AGE_OVERDUE_DAYS = 5
AGE_SOON_DAYS = 2
"""A case without a due date (held, unrecognised, quarantined, awaiting a reply) is marked by
its age instead: yellow from AGE_SOON_DAYS days after it came in, red from AGE_OVERDUE_DAYS,
so no open case sits unseen because nothing set it a deadline."""
DATE_FORMAT = "yyyy/mm/dd"
DATETIME_FORMAT = "yyyy/mm/dd hh:mm"


@dataclass(slots=True)
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
    new_mail: str = ""
    url: str = ""

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
    """The report, and which cases (at which version) it lists recorded for `decisions apply`."""
    report = read_report(ctx)
    record_rows(ctx, report)
    return report


def record_rows(ctx: Context, report: Report) -> None:
    ctx.store.record_report(report.key, ctx.now(), [(r.case_id, r.version) for r in report.rows])


def read_report(ctx: Context) -> Report:
    """The report, read only: the daily job reads it before taking the write lock. Per-row
    lookups that repeat across rows (calendar, operator, procedure name, allowed actions) are
    made once per distinct value: 30,000 open rows share a few hundred."""
    tz = ctx.calendar.tz
    now = ctx.now().astimezone(tz)
    today = now.date()
    handlers = registry()
    rows = []
    calendar = ctx.calendar
    days_left = functools.cache(lambda due: calendar.business_days_between(today, due))
    due_date = functools.cache(lambda text: date.fromisoformat(text[:10]))
    procedure_name = functools.cache(ctx.routing.name_of)

    names: dict[str, str | None] = {}

    @functools.cache
    def actions_of(procedure: str, status: str) -> tuple[str, ...]:
        handler = handlers.get(procedure)
        return allowed_actions(tuple(handler.actions), status) if handler else ()

    waiting = ctx.store.waiting_on_us()
    for case in ctx.store.open_cases_for_report():
        due = due_date(str(case["due"])) if case.get("due") else None
        received = _local(case["received_at"], tz)
        since = _local(waiting.get(case["id"]), tz)
        anchor = since or received
        rows.append(
            Row(
                case_id=case["id"],
                id=format_case_number(case["id"]),
                procedure=case["procedure"],
                procedure_name=procedure_name(case["procedure"]),
                party=party(ctx.store, case, names),
                sender=case.get("sender") or "",
                subject=case.get("subject") or "",
                received=received,
                age_days=(today - anchor.date()).days if anchor else 0,
                new_mail=f"新着（{since:%m/%d %H:%M}受信）" if since else "",
                url=ctx.config.case_url(case["id"]) or "",
                status_name=LABELS[Status(case["status"])],
                missing="\n".join(
                    [f"{p['field']}: {p['message']}" for p in case["problems"]]
                    + [f"【備考・担当者のみ】{r['field']}: {r['message']}" for r in case["remarks"]]
                ),
                due=due,
                days_left=days_left(due) if due else None,
                actions=actions_of(case["procedure"], case["status"]),
                version=case["version"],
                owner=case.get("owner") or "",
            )
        )
    # the web queue's order: overdue first, then the cases waiting on us, then by the due
    # date, or for an undated case the day it turns red (AGE_OVERDUE_DAYS after its oldest
    # unanswered mail, else after it came in)
    rows.sort(
        key=lambda r: (
            not r.overdue,
            not r.new_mail,
            r.due or today - timedelta(days=r.age_days - AGE_OVERDUE_DAYS + 1),
            r.case_id,
        )
    )
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


class _WideOnly(dict):
    """A `str.translate` table that keeps the full-width characters of a text and drops the
    rest, each character looked up in unicodedata once: the width of 30,000 subjects is then
    counted by C loops, not a Python call per character."""

    def __missing__(self, code: int) -> int | None:
        kept = code if unicodedata.east_asian_width(chr(code)) in "WF" else None
        self[code] = kept
        return kept


_WIDE_ONLY = _WideOnly()


def display_width(text: str) -> int:
    """Full-width characters take two columns in Excel as on a terminal."""
    if text.isascii():
        return len(text)
    return len(text) + len(text.translate(_WIDE_ONLY))


def _shown(row: Row, key: str) -> str:
    """The text a cell shows (for column widths and the HTML page)."""
    return _shown_value(getattr(row, key))


def _shown_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y/%m/%d %H:%M")
    if isinstance(value, date):
        return value.strftime("%Y/%m/%d")
    return "" if value is None else str(value)


def write_xlsx(report: Report, path: Path) -> None:
    """The report through XlsxWriter in constant-memory mode: each row goes to the file as
    soon as the next one starts, written by plain string formatting. openpyxl's write-only
    mode builds and serialises an element tree per cell, which held 30,000 open rows at 5 s
    (issue 17 asks < 3 s). Every value is written with its type named (`_write`): text as a
    string cell, so nothing a participant wrote becomes a formula or an error value.

    The file is written beside `path` and moved over it when complete: staff never open half
    a report, and a failed one leaves the previous file. XlsxWriter keeps each sheet's rows in
    a temporary file in the same folder until the workbook is closed (closing removes them), so
    a failed workbook is closed too, then deleted."""
    partial = private_file(path.with_name(f".{path.name}.partial"))
    book = Workbook(
        str(partial),
        {
            "constant_memory": True,
            "tmpdir": str(path.parent),
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    try:
        _queue_sheet(book, report)
        _summary_sheet(book, report)
        _quarantine_sheet(book, report)
        book.set_custom_property(REPORT_KEY_PROPERTY, report.key)
    except BaseException:
        book.close()
        partial.unlink(missing_ok=True)
        raise
    book.close()
    partial.replace(path)


def _queue_sheet(book: Workbook, report: Report) -> None:
    """The sheet's setup first (widths, the hidden version column, the frozen header, one
    dropdown per set of decisions), then the rows, each streamed out once the next begins."""
    ws = book.add_worksheet(QUEUE_SHEET)
    titles = [t for _, t in COLUMNS]
    version_col = titles.index(VERSION_COLUMN)
    for number, (key, title) in enumerate(COLUMNS):
        hidden = {"hidden": True} if number == version_col else None
        ws.set_column(number, number, _width(title, report.rows, key), None, hidden)
    ws.freeze_panes(1, 1)
    ws.autofilter(0, 0, len(report.rows), len(COLUMNS) - 1)
    decision_col = titles.index(DECISION_COLUMN)
    decision_letter = xl_col_to_name(decision_col)
    cells_by_actions: dict[tuple[str, ...], list[str]] = {}
    for index, row in enumerate(report.rows, start=2):
        cells_by_actions.setdefault(row.action_labels, []).append(f"{decision_letter}{index}")
    for labels, cells in cells_by_actions.items():
        # A row whose state takes no decision gets an empty-only rule, so nothing typed into
        # it is accepted either.
        rule: dict[str, Any] = (
            {"validate": "list", "source": list(labels)}
            if labels
            else {"validate": "length", "criteria": "==", "value": 0}
        )
        ws.data_validation(
            0,
            decision_col,
            0,
            decision_col,
            rule
            | {
                "ignore_blank": True,
                "show_input": False,
                "error_type": "stop",
                "error_title": "判断",
                "error_message": "この案件の状態で選べる判断を一覧から選んでください。"
                if labels
                else "この案件の状態では判断を記入できません。",
                "multi_range": " ".join(cells),
            },
        )
    bold = book.add_format({"bold": True})
    for column, title in enumerate(titles):
        ws.write_string(0, column, title, bold)
    formats = {
        titles.index("受付日時"): {"num_format": DATETIME_FORMAT},
        titles.index("期限"): {"num_format": DATE_FORMAT},
    }
    styles = {
        (column, highlight): book.add_format(
            formats.get(column, {}) | ({"pattern": 1, "bg_color": colour} if colour else {})
        )
        for column in range(len(COLUMNS))
        for highlight, colour in (("overdue", OVERDUE), ("soon", DUE_SOON), ("", None))
        if colour or column in formats
    }
    keys = [key for key, _ in COLUMNS]
    for index, row in enumerate(report.rows, start=1):
        highlight = "overdue" if row.overdue else "soon" if row.due_soon else ""
        for column, key in enumerate(keys):
            value = getattr(row, key)
            if key == "id" and row.url:
                ws.write_url(index, column, row.url, styles.get((column, highlight)), value)
            elif highlight or (value is not None and value != ""):
                _write(ws, index, column, value, styles.get((column, highlight)))


def _summary_sheet(book: Workbook, report: Report) -> None:
    ws = book.add_worksheet(SUMMARY_SHEET)
    ws.set_column(0, 0, 50)
    ws.set_column(1, 1, 20)
    rows: list[list[Any]] = [
        ["作成日時", report.made_at.strftime("%Y/%m/%d %H:%M")],
        ["今週の受付件数", report.received_this_week],
        ["今週の完了件数", report.closed_this_week],
        ["初回返信までの時間（中央値・時間）", report.median_hours_to_first_reply],
        [],
        ["手続き", "状態", "件数"],
        *(list(line) for line in report.by_procedure_status),
    ]
    for index, values in enumerate(rows):
        for column, value in enumerate(values):
            _write(ws, index, column, value)


def _quarantine_sheet(book: Workbook, report: Report) -> None:
    ws = book.add_worksheet(QUARANTINE_SHEET)
    titles = ("メッセージ番号", "受信日時", "差出人", "件名", "理由")
    for column, title in enumerate(titles):
        ws.write_string(0, column, title)
    for index, q in enumerate(report.quarantined, start=1):
        for column, key in enumerate(("id", "received_at", "sender", "subject", "outcome")):
            _write(ws, index, column, q[key])


def _write(ws: Worksheet, row: int, column: int, value: Any, style: Format | None = None) -> None:
    """One cell, typed by its Python value, never guessed from its text: a participant's
    subject or address starting with = + - @ TAB or CR (OWASP CSV injection) or reading #N/A
    stays text in staff's Excel. An empty value leaves the cell blank, styled when its row is
    highlighted."""
    if isinstance(value, str) and value:
        ws.write_string(row, column, cell_text(value), style)
    elif isinstance(value, (date, datetime)):
        ws.write_datetime(row, column, value, style)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        ws.write_number(row, column, value, style)
    elif value is None or value == "":
        if style is not None:
            ws.write_blank(row, column, None, style)
    else:
        ws.write_string(row, column, cell_text(str(value)), style)


def _width(title: str, rows: list[Row], key: str) -> float:
    """A column as wide as its widest line, within 8..60. Each distinct value is measured once
    (30,000 rows share a few states, dates and numbers), and a text cannot be wider than twice
    its length, so most values are passed over without measuring them."""
    cap = 58
    widest = display_width(title)
    dates_measured: set[type] = set()
    for value in set(map(attrgetter(key), rows)):
        if isinstance(value, str) and 2 * len(value) <= widest:
            continue
        if isinstance(value, date):
            # every date (every date-time) shows in the same number of columns
            if type(value) in dates_measured:
                continue
            dates_measured.add(type(value))
        text = _shown_value(value)
        widest = max(widest, *(display_width(line) for line in text.split("\n")))
        if widest >= cap:
            break
    return min(60, max(8, widest + 2))


def cell_text(value: Any) -> Any:
    """A value as a worksheet may hold it: control characters a sender put in a subject or
    an address are dropped (openpyxl refuses them, and one such mail would stop the report)."""
    return _illegal_characters().sub("", value) if isinstance(value, str) else value


@functools.cache
def _illegal_characters() -> re.Pattern[str]:
    """openpyxl's own list, imported when a report is written, not at every command's start."""
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE


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
    write_private(path, render_html(report, ctx).encode("utf-8"))
