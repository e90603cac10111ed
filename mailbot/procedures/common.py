"""Pieces the procedure handlers share: the participant's own text, picking the form among the
attachments, and who may act on a case. Pure functions of values and read-only store look-ups."""

from __future__ import annotations

import re
from typing import Any

from mailbot.context import Reader
from mailbot.mail import Attachment, Mail
from mailbot.mail.trust import load_trust_rules
from mailbot.outcome import Problem
from mailbot.text import nfkc, single_line

_QUOTE_START = re.compile(
    r"^\s*(?:-{3,}\s*Original Message\s*-{3,}|-{3,}\s*元のメッセージ\s*-{3,}"
    r"|(?:From|差出人|送信者|送信元)\s*[:：].*|On .+ wrote:|.+(?:wrote|のメッセージ)\s*[:：]\s*"
    r"|\d{4}年\d{1,2}月\d{1,2}日.*[:：]\s*)$",
    re.I,
)
SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".xltx", ".xltm")
TARGET_FIELDS = (
    "operator_code",
    "operator_name_person",
    "category",
    "source_id",
    "source_name",
    "auction_year",
)
"""Seed 004's 「■対象となる電源等」 block, the same six lines in the objection's and the roadmap
answer's mail (表 2-1, 表 3-1)."""


def _may_start_quote(line: str) -> bool:
    """Every form of `_QUOTE_START` holds a colon or a run of dashes: the other lines (most of
    a long quoted history) need not go through the pattern."""
    return ":" in line or "：" in line or "---" in line


def own_text(mail: Mail) -> str:
    """The body the participant wrote: quoted lines (`>`) and the quoted original below a
    reply header are left out, so our own mail quoted back is never read as their answer.
    A forwarded mail's text is kept: that is what they send us."""
    lines: list[str] = []
    for line in mail.text.split("\n"):
        if _may_start_quote(line) and _QUOTE_START.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        lines.append(line)
    return "\n".join(lines)


def says(text: str, phrase: str) -> bool:
    squash = re.compile(r"[\s『』「」“”\"']+")
    return squash.sub("", nfkc(phrase)) in squash.sub("", nfkc(text))


def spreadsheets(mail: Mail) -> list[Attachment]:
    return [a for a in mail.attachments if a.filename.lower().endswith(SPREADSHEET_SUFFIXES)]


def named_forms(mail: Mail, name_hints: tuple[str, ...]) -> list[Attachment]:
    """The spreadsheets whose name carries a hint (事業者マスタ…), in the mail's order."""
    hints = [nfkc(h).replace("ー", "") for h in name_hints]
    return [
        attachment
        for attachment in spreadsheets(mail)
        if any(h in nfkc(attachment.filename).replace("ー", "") for h in hints)
    ]


def pick_form(mail: Mail, name_hints: tuple[str, ...]) -> Attachment | None:
    """The attached form: a spreadsheet whose name carries a hint (事業者マスタ…), else the only
    spreadsheet, else a file whose content looks like a workbook whatever its name."""
    named = named_forms(mail, name_hints)
    if named:
        return named[0]
    sheets = spreadsheets(mail)
    if len(sheets) >= 1:
        return sheets[0]
    for attachment in mail.attachments:
        if attachment.data[:4] in (b"PK\x03\x04", b"\xd0\xcf\x11\xe0"):
            return attachment
    return None


def sender_belongs(
    ctx: Reader, sender: str, operator_code: str | None, case: dict[str, Any] | None = None
) -> bool:
    """May this address act for that operator (or on that case)? The address that opened the
    case, the operator's registered contact, or an address in its registered domain."""
    sender = sender.lower()
    rules = load_trust_rules(ctx.config.rules_dir)
    if case and case.get("sender") and case["sender"].lower() == sender:
        return True
    if operator_code:
        return any(
            op["code"] == operator_code
            for op in ctx.store.operators_for_sender(sender, rules.free_mail)
        )
    if case and case.get("sender"):
        return rules.same_party(case["sender"], sender)
    return False


def attachment_names(mail: Mail) -> list[str]:
    """The names as a reply may quote them: one line each, no control or bidi characters
    (a name is the sender's text and must not forge lines of our mail)."""
    return [single_line(a.filename, 120) for a in mail.attachments]


def missing_fields(
    values: dict[str, str], labels: dict[str, str], required: tuple[str, ...], message: str
) -> list[Problem]:
    """One problem for each required body field left empty; `message` names it as
    `{label}`, in the words of the procedure's own template."""
    return [
        Problem(labels[key], message.format(label=labels[key]))
        for key in required
        if not values.get(key, "").strip()
    ]
