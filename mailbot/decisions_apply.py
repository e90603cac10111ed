"""`mailbot decisions apply PATH`: the decision column of a filled-in report, row by row.

Each row goes through `decide` with the version the report was made from, so a case that changed
since (a new mail, another decision, this same workbook applied before) is refused as stale and
nothing is applied twice. One bad row never stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openpyxl import load_workbook

from mailbot.context import Context
from mailbot.decisions import decide
from mailbot.errors import DecisionError, MailbotError
from mailbot.report import (
    ARGUMENT_COLUMN,
    COMMENT_COLUMN,
    DECISION_COLUMN,
    QUEUE_SHEET,
    VERSION_COLUMN,
)
from mailbot.text import format_case_number


@dataclass(frozen=True)
class RowResult:
    row: int
    case_number: str
    action: str
    ok: bool
    why: str = ""
    mails: int = 0


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def apply_workbook(ctx: Context, path: Path, by: str | None = None) -> list[RowResult]:
    try:
        book = load_workbook(path, data_only=True, read_only=True)
    except Exception as exc:
        raise MailbotError(f"{path}: not a report workbook ({type(exc).__name__})") from exc
    if QUEUE_SHEET not in book.sheetnames:
        raise MailbotError(f"{path}: no sheet {QUEUE_SHEET!r}; is this a mailbot report?")
    rows = list(book[QUEUE_SHEET].iter_rows(values_only=True))
    book.close()
    if not rows:
        return []
    header = [_text(h) for h in rows[0]]
    needed = ("受付番号", DECISION_COLUMN, VERSION_COLUMN)
    missing = [h for h in needed if h not in header]
    if missing:
        raise MailbotError(f"{path}: columns missing: {', '.join(missing)}")
    col = {name: header.index(name) for name in header if name}
    results = []
    for number, values in enumerate(rows[1:], start=2):
        action = _text(values[col[DECISION_COLUMN]])
        if not action:
            continue
        label = _text(values[col["受付番号"]])
        digits = label.upper().removeprefix("MB-")
        if not digits.isdigit():
            results.append(RowResult(number, label, action, False, "受付番号が読めません"))
            continue
        case_id = int(digits)
        version = _text(values[col[VERSION_COLUMN]])
        if not version.replace(".", "").isdigit():
            results.append(
                RowResult(number, format_case_number(case_id), action, False, "version 列が空です")
            )
            continue
        arg = _text(values[col[ARGUMENT_COLUMN]]) if ARGUMENT_COLUMN in col else ""
        comment = _text(values[col[COMMENT_COLUMN]]) if COMMENT_COLUMN in col else ""
        try:
            outcome = decide(
                ctx,
                case_id,
                action,
                arg or None,
                comment or None,
                by=by,
                expected_version=int(float(version)),
                reason_hint=f"「{COMMENT_COLUMN}」列に理由を記入してください",
            )
        except (DecisionError, MailbotError) as exc:
            results.append(RowResult(number, format_case_number(case_id), action, False, str(exc)))
            continue
        results.append(
            RowResult(number, format_case_number(case_id), action, True, mails=outcome.mails)
        )
    return results
