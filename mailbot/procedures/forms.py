"""Outcome builders and form helpers the code-application procedures share.

Reading a form goes through `mailbot.forms.workbook` (safety first, then labels); this module turns
what it finds into Problems with the seed's labels, and builds the usual Outcomes.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from mailbot.context import Reader
from mailbot.errors import DecisionError
from mailbot.forms import fields
from mailbot.forms.workbook import FORM_RULES, FormRule, read_form_fields
from mailbot.forms.workbook import Limits as WorkbookLimits
from mailbot.mail import Attachment, Mail
from mailbot.outcome import Incoming, Outcome, Problem, Reply
from mailbot.procedures.common import named_forms, pick_form
from mailbot.states import Status
from mailbot.text import format_case_number, nfkc, single_line


def jsonable(values: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (values or {}).items():
        if isinstance(value, datetime):
            value = value.date().isoformat()
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, (list, tuple)):
            value = [v.isoformat() if isinstance(v, date) else v for v in value]
        out[key] = value
    return out


def held(
    case: dict[str, Any] | None,
    reason: str,
    *,
    answer: bool = True,
    problems: list[Problem] | None = None,
    data: dict[str, Any] | None = None,
) -> Outcome:
    """Kept for staff; the reply says only that the mail arrived, nothing of the case. With
    `answer=False` nothing is sent (a From that is not the sender's: a reply is backscatter).
    The problems the checks found stay on the held case for staff (SPEC §6): holding a mail
    never hides what else is wrong with it."""
    return Outcome(
        status=Status.HELD,
        reason=reason,
        problems=list(problems or []),
        data=dict(data or {}),
        replies=[Reply("held", "held")] if answer else [],
        events=[("held", {"reason": reason, "target_case": case["id"] if case else None})],
        new_case=case is not None,
    )


def stranger_held(
    case: dict[str, Any],
    sender: str,
    *,
    problems: list[Problem] | None = None,
    data: dict[str, Any] | None = None,
) -> Outcome:
    """A mail on someone else's case: a case of its own for staff, naming both senders, and
    nothing of it merged into the case it names (what the checks found stays on it). A
    stranger writing on a held case is not answered at all: a robot answering our held notice
    from a new address each time would otherwise be answered for ever."""
    return held(
        case,
        f"案件 {format_case_number(case['id'])} の差出人（{case.get('sender')}）とは別の差出人"
        f"（{sender}）からのメールです。案件には反映していません",
        answer=case.get("status") != Status.HELD,
        problems=problems,
        data=data,
    )


def receipt_or_correction(
    ctx: Reader,
    incoming: Incoming,
    problems: list[Problem],
    data: dict[str, Any],
    *,
    next_steps: str,
    wrong_mailbox: bool,
    attachment_list: list[str],
    service_days: int | None = None,
    operator_code: str | None = None,
) -> Outcome:
    """A complete application gets a receipt and a due date by service level; an incomplete
    one gets one correction request that lists every problem. The receipt's 受付日時 is this
    mail's own arrival (`received_at`), never the case's: an answer joins the case of our
    inquiry, and a corrected mail the case of the first one."""
    expected = ctx.address_for(incoming.classification.expected_mailbox or "code")
    common = {
        "received_at": incoming.received_at.astimezone(ctx.calendar.tz),
        "wrong_mailbox": wrong_mailbox,
        "expected_address": expected,
        "attachment_names": attachment_list,
    }
    if problems:
        return Outcome(
            status=Status.NEEDS_CORRECTION,
            problems=problems,
            data=data,
            operator_code=operator_code,
            replies=[
                Reply(
                    "correction",
                    "correction",
                    common | {"problems": [p.as_dict() for p in problems]},
                )
            ],
        )
    rule = ctx.routing.get(incoming.classification.procedure)
    days = (
        service_days
        if service_days is not None
        else (rule.service_level_business_days if rule else 5)
    )
    today = incoming.received_at.astimezone(ctx.calendar.tz).date()
    return Outcome(
        status=Status.COMPLETE,
        data=data,
        operator_code=operator_code,
        complete_on=today,
        due=ctx.business_days_after(today, days),
        replies=[Reply("receipt", "receipt", common | {"next_steps": next_steps})],
    )


def rejection(case: dict[str, Any], reason: str | None) -> Outcome:
    if not reason:
        raise DecisionError("reject needs --reason: the participant is told why")
    return Outcome(
        status=Status.CLOSED,
        replies=[Reply("rejection", "rejection", {"reason": reason})],
        events=[("rejected", {"reason": reason})],
    )


def rejected_unless_issuing(
    case: dict[str, Any], action: str, reason: str | None, actions: tuple[str, ...]
) -> Outcome | None:
    """A code application knows two decisions: `reject` (its Outcome is returned) and issuing,
    once the application is complete (None: go on and issue)."""
    if action == "reject":
        return rejection(case, reason)
    if action != "issue-code":
        raise DecisionError(f"{action}: not an action here (use: {', '.join(actions)})")
    if case["status"] not in (Status.COMPLETE, Status.HELD):
        raise DecisionError(
            f"case is {case['status']}: a code is issued only for a complete application"
        )
    return None


def code_in_use(ctx: Reader, code: str) -> bool:
    return ctx.store.operator_code_exists(fields.normalise_code(code))


def next_free_code(ctx: Reader) -> str:
    """The lowest numeric 4-digit code above every numeric code in use."""
    used = ctx.store.operator_codes()
    numbers = [int(c) for c in used if c.isdigit()]
    candidate = max(numbers, default=0) + 1
    while f"{candidate:04d}" in used:
        candidate += 1
    if candidate > 9999:
        raise DecisionError(
            "空いている数字4桁の事業者コードがありません。発番するコードを指定してください"
        )
    return f"{candidate:04d}"


def grid_code_in_use(ctx: Reader, grid_code: str) -> bool:
    return ctx.store.grid_code_issued(grid_code)


def contact_problems(values: dict[str, Any]) -> list[Problem]:
    """連絡者メール must be a mail address (SPEC §3.1), the same on both forms (emptiness is
    `read_form`'s)."""
    value = values.get("連絡者メール")
    message = None if _empty(value) else fields.check_email(value)
    return [Problem("連絡者メール", message)] if message else []


def contact_remarks(values: dict[str, Any]) -> list[Problem]:
    """The phone and FAX numbers' shape: neither seed 000 nor SPEC §3.1 says one, so a number
    written oddly (「03-1234-5678 内線12」) is for staff to look at, never a correction."""
    p: list[Problem] = []
    for label in ("連絡者電話番号", "連絡者FAX番号"):
        value = values.get(label)
        message = None if _empty(value) else fields.check_phone(value, label)
        if message:
            p.append(
                Problem(label, f"{label}の形式が一般的な電話番号と異なります（記載：{value}）。")
            )
    return p


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, tuple)) and not value)


def read_form(
    ctx: Reader, mail: Mail, form_id: str
) -> tuple[dict[str, Any], list[Problem], str | None]:
    """The form among the attachments, inspected before it is opened, read by label.

    Returns (values, problems, the attachment's file name). Problems here are about the file
    and about required fields left empty or missing from the sheet; what a filled-in value
    must look like is for the procedure to say.
    """
    form = FORM_RULES.load(ctx.config.rules_dir)[form_id]
    named = named_forms(mail, form.names)
    if len(named) > 1:
        return _read_several(ctx, named, form)
    attachment = pick_form(mail, form.names)
    if attachment is None:
        return (
            {},
            [
                Problem(
                    "添付ファイル",
                    f"{form.name}が添付されておりません。本機関ホームページからダウンロードした{form.name}（.xlsx 形式）に記入のうえ、ご添付ください。",
                )
            ],
            None,
        )
    return _read_one(ctx, attachment, form)


SEVERAL_FORMS_READ = 5


def _read_several(
    ctx: Reader, attachments: list[Attachment], form: FormRule
) -> tuple[dict[str, Any], list[Problem], str | None]:
    """Several attachments named like the form: each is read, and one of them counts only
    when all say the same. Picking one silently would make the answer depend on the order
    of the attachments; when they differ, the participant is asked which one counts, naming
    every file (the names are theirs: one line each). More than `SEVERAL_FORMS_READ` are
    not read at all (a mail of a hundred small forms must not cost a hundred reads)."""
    if len(attachments) <= SEVERAL_FORMS_READ:
        results = [_read_one(ctx, a, form) for a in attachments]
        first = results[0]
        if all(r[0] == first[0] and r[1] == first[1] for r in results[1:]):
            return first
    names = "、".join(f"「{single_line(a.filename, 120)}」" for a in attachments)
    return (
        {},
        [
            Problem(
                "添付ファイル",
                f"{form.name}が{len(attachments)}つ添付されており（{names}）、記載内容が異なります。"
                f"どちらの{form.name}でのお申込みかをご返信にてお知らせいただくか、"
                f"有効な{form.name}1つのみを添付のうえ、改めてお送りください。",
            )
        ],
        None,
    )


def _read_one(
    ctx: Reader, attachment: Attachment, form: FormRule
) -> tuple[dict[str, Any], list[Problem], str | None]:
    """One attachment inspected, then read by the form's labels (see `read_form`)."""
    limits = WorkbookLimits(max_bytes=ctx.config.limits.max_attachment_bytes)
    result = read_form_fields(
        attachment.data,
        form,
        filename=attachment.filename,
        limits=limits,
        opened=attachment.opened,
    )
    if result.problems:
        return (
            {},
            [Problem("添付ファイル", p.message) for p in result.problems],
            attachment.filename,
        )
    values = dict(result.values)
    licenses = values.get("ライセンス区分") or []
    problems: list[Problem] = []
    for rule in form.fields:
        needed = rule.required or (
            rule.required_for_license is not None and rule.required_for_license in licenses
        )
        if not needed:
            continue
        if rule.label in result.missing:
            problems.append(
                Problem(
                    rule.label,
                    f"{form.name}に「{rule.label}」の欄が見当たりません。指定の様式をご使用ください。",
                )
            )
        elif _empty(values.get(rule.label)):
            problems.append(Problem(rule.label, f"{rule.label}が記載されておりません。"))
    for rule in form.fields:
        value = values.get(rule.label)
        if rule.expected is not None and not _empty(value) and not _matches(value, rule.expected):
            problems.append(
                Problem(
                    rule.label,
                    f"{rule.label}は【{_show(rule.expected)}】とご記載ください（記載：{_show(value)}）。",
                )
            )
    return values, problems, attachment.filename


def _show(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return f"{value:%Y/%m/%d}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _matches(value: Any, expected: Any) -> bool:
    """A filled-in cell against the one value the form accepts, in the form the cell may take
    (an Excel date or 2020/3/1; 999999999 or "999,999,999kW"; width and spacing variants)."""
    if isinstance(expected, date):
        return fields.parse_date(value) == expected
    if isinstance(expected, int):
        return fields.parse_int_amount(value) == expected
    return re.sub(r"\s+", "", nfkc(str(value))) == re.sub(r"\s+", "", nfkc(str(expected)))
