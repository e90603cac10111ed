"""`mailbot decisions apply PATH`: the decision column of a filled-in report, row by row.

Each row goes through `decide` with the version the report was made from, so a case that changed
since (a new mail, another decision, this same workbook applied before) is refused as stale and
nothing is applied twice. The whole sheet is checked before anything is applied, and applied in
one transaction: either every filled-in row takes effect or none does. Only cases the report
listed (recorded in the store under the workbook's report key) can be decided from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbot.context import Context
from mailbot.desk.decisions import decide, refuse_out_of_state
from mailbot.desk.report import (
    ARGUMENT_COLUMN,
    COMMENT_COLUMN,
    DECISION_COLUMN,
    QUEUE_SHEET,
    REPORT_KEY_PROPERTY,
    VERSION_COLUMN,
)
from mailbot.errors import DecisionError, MailbotError
from mailbot.forms.fields import whole_number
from mailbot.procedures import registry
from mailbot.states import action_id, action_label
from mailbot.text import format_case_number

REASON_HINT = f"「{COMMENT_COLUMN}」列に理由を記入してください"


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


_CASE_LABEL = re.compile(r"(?:MB-)?([0-9]{1,12})", re.ASCII | re.IGNORECASE)
_WHOLE = re.compile(r"[0-9]{1,9}", re.ASCII)


def _case_number(value: object) -> int | None:
    """受付番号 exactly as the report writes it (MB-000012): ASCII digits only, so a ² or a
    full-width digit typed into the sheet is refused, never read as another case."""
    match = _CASE_LABEL.fullmatch(_text(value))
    return int(match.group(1)) if match else None


def _version(value: object) -> int | None:
    """The hidden version, an exact integer: 1.9 is not 1, and text only in ASCII digits."""
    return whole_number(value, _ascii_whole)


def _ascii_whole(value: object) -> int | None:
    text = _text(value)
    return int(text) if _WHOLE.fullmatch(text) else None


@dataclass(frozen=True)
class _Planned:
    row: int
    case_id: int
    action: str
    arg: str
    comment: str
    version: int


class _Refused(Exception):
    """A decision failed while the sheet was being applied: everything is rolled back."""


def _read(path: Path) -> tuple[list[tuple[object, ...]], str]:
    from openpyxl import load_workbook  # only here: every command's start imported it

    try:
        book = load_workbook(path, data_only=True, read_only=True)
    except Exception as exc:
        raise MailbotError(f"{path}: not a report workbook ({type(exc).__name__})") from exc
    try:
        if QUEUE_SHEET not in book.sheetnames:
            raise MailbotError(f"{path}: no sheet {QUEUE_SHEET!r}; is this a mailbot report?")
        rows = list(book[QUEUE_SHEET].iter_rows(values_only=True))
        key = _report_key(book)
    finally:
        book.close()
    return rows, key


def _report_key(book: Any) -> str:
    """The report's key: a custom document property since the report is written with
    XlsxWriter (which has no field for the identifier), the identifier in reports written
    before."""
    if REPORT_KEY_PROPERTY in book.custom_doc_props.names:
        return _text(book.custom_doc_props[REPORT_KEY_PROPERTY].value)
    return _text(book.properties.identifier)


def apply_workbook(ctx: Context, path: Path, by: str | None = None) -> list[RowResult]:
    """Check every filled-in row first, then apply them all in one transaction, or none: a
    sheet with one bad row changes nothing, and each row gets its own line saying why."""
    rows, key = _read(path)
    if not rows:
        return []
    header = [_text(h) for h in rows[0]]
    needed = ("受付番号", DECISION_COLUMN, VERSION_COLUMN)
    missing = [h for h in needed if h not in header]
    if missing:
        raise MailbotError(f"{path}: columns missing: {', '.join(missing)}")
    listed = ctx.store.report_cases(key) if key else {}
    if not listed:
        raise MailbotError(
            f"{path}: not a report this desk made (no report key it knows);"
            " make a new one with `mailbot report --xlsx`"
        )
    col = {name: header.index(name) for name in header if name}
    planned: list[_Planned] = []
    refused: list[RowResult] = []
    for number, values in enumerate(rows[1:], start=2):
        values = tuple(values) + (None,) * (len(header) - len(values))
        action = _text(values[col[DECISION_COLUMN]])
        if not action:
            continue
        label = _text(values[col["受付番号"]])
        case_id = _case_number(label)
        if case_id is None:
            refused.append(RowResult(number, label, action, False, "受付番号が読めません"))
            continue
        shown = format_case_number(case_id)
        version = _version(values[col[VERSION_COLUMN]])
        if version is None:
            why = f"version 列が整数ではありません（{_text(values[col[VERSION_COLUMN]]) or '空'}）"
            refused.append(RowResult(number, shown, action, False, why))
            continue
        if case_id not in listed:
            why = "この案件はこのレポートに載っていません（新しいレポートで判断してください）"
            refused.append(RowResult(number, shown, action, False, why))
            continue
        if listed[case_id] != version:
            why = f"version が書き換えられています（レポート作成時 {listed[case_id]}）"
            refused.append(RowResult(number, shown, action, False, why))
            continue
        arg = _text(values[col[ARGUMENT_COLUMN]]) if ARGUMENT_COLUMN in col else ""
        comment = _text(values[col[COMMENT_COLUMN]]) if COMMENT_COLUMN in col else ""
        why = _undecidable(ctx, case_id, action, version, comment)
        if why:
            refused.append(RowResult(number, shown, action, False, why))
            continue
        planned.append(_Planned(number, case_id, action, arg, comment, version))
    if refused:
        return _none_applied(planned, refused, "他の行に誤りがあるため適用していません")
    return _apply_all(ctx, planned, by)


def _undecidable(ctx: Context, case_id: int, action: str, version: int, comment: str) -> str | None:
    """What `decide` would refuse before looking at the decision's own merits, found for
    every row before any row is applied (the same refusals, in the same words)."""
    case = ctx.store.case(case_id)
    if case is None:
        return f"no case {format_case_number(case_id)}"
    if case["version"] != version:
        return (
            f"{format_case_number(case_id)} changed since the report was made"
            f" (version {version} → {case['version']}): not applied"
        )
    handler = registry().get(case["procedure"])
    actions = tuple(handler.actions) if handler else ()
    if action_id(action) not in actions:
        offered = "、".join(action_label(a) for a in actions) or "なし"
        return f"「{action}」はこの手続きの判断ではありません（選べるもの: {offered}）"
    try:
        refuse_out_of_state(ctx, case, actions, action_id(action), comment, REASON_HINT)
    except DecisionError as exc:
        return str(exc)
    return None


def _none_applied(planned: list[_Planned], refused: list[RowResult], why: str) -> list[RowResult]:
    held_back = [
        RowResult(p.row, format_case_number(p.case_id), p.action, False, why) for p in planned
    ]
    return sorted([*refused, *held_back], key=lambda r: r.row)


def _apply_all(ctx: Context, planned: list[_Planned], by: str | None) -> list[RowResult]:
    results: list[RowResult] = []
    failed: RowResult | None = None
    try:
        with ctx.store.transaction():
            for p in planned:
                try:
                    outcome = decide(
                        ctx,
                        p.case_id,
                        p.action,
                        p.arg or None,
                        p.comment or None,
                        by=by,
                        expected_version=p.version,
                        reason_hint=REASON_HINT,
                    )
                except Exception as exc:
                    why = str(exc) if isinstance(exc, MailbotError) else f"{type(exc).__name__}"
                    failed = RowResult(p.row, format_case_number(p.case_id), p.action, False, why)
                    raise _Refused from exc
                results.append(
                    RowResult(
                        p.row, format_case_number(p.case_id), p.action, True, mails=outcome.mails
                    )
                )
    except _Refused:
        assert failed is not None
        rest = [p for p in planned if p.row != failed.row]
        return _none_applied(rest, [failed], "他の行が適用できないため、すべて取り消しました")
    return results
