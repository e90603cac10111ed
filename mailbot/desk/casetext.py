"""`mailbot case ID`: one case as staff read it, in text — its facts, every mail in and out
decoded (body as text, attachments listed by name and size), and its history. Mails in are
read from what was kept when they were processed (`desk.mailview`), not parsed again.

Reads only, beyond keeping once what staff are shown of a mail processed before schema
step 19. Values are written as staff write them (dates as 2026/11/25 10:00, lists joined),
never as Python reprs.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mailbot.context import Context
from mailbot.desk.mailview import received_mails
from mailbot.errors import MailbotError
from mailbot.mail.parse import parse
from mailbot.outcome import remarks_of
from mailbot.states import status_label
from mailbot.text import format_case_number

INDENT = "    "


def _when(text: str | None, ctx: Context) -> str:
    if not text:
        return ""
    try:
        value = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    if value.tzinfo is None:
        return value.strftime("%Y/%m/%d")
    return value.astimezone(ctx.calendar.tz).strftime("%Y/%m/%d %H:%M")


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str | int) for v in value):
        return "、".join(str(v) for v in value)
    if isinstance(value, list) and all(isinstance(v, dict) and "field" in v for v in value):
        return " / ".join(f"{v['field']}: {v.get('message', '')}" for v in value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _mail_lines(subject: str, files: list[tuple[str, int, str]], text: str) -> list[str]:
    lines = [f"{INDENT}件名: {subject}"]
    for name, size, content_type in files:
        lines.append(f"{INDENT}添付: {name or '(名前なし)'} ({size:,} bytes, {content_type})")
    body = text.strip("\n")
    lines.append("")
    lines += [f"{INDENT}{line}".rstrip() for line in body.splitlines()] or [f"{INDENT}(本文なし)"]
    lines.append("")
    return lines


def case_text(ctx: Context, case_id: int) -> str:
    case = ctx.store.case(case_id)
    if case is None:
        raise MailbotError(f"no case {format_case_number(case_id)}")
    lines = [f"{format_case_number(case_id)}  {ctx.routing.name_of(case['procedure'])}"]
    facts = (
        ("状態", f"{status_label(case['status'])} ({case['status']})"),
        ("差出人", " ".join(x for x in (case.get("sender_name"), case.get("sender")) if x)),
        ("事業者コード", case.get("operator_code")),
        ("電源等識別番号", case.get("source_id")),
        ("件名", case.get("subject")),
        ("受付日時", _when(case.get("received_at"), ctx)),
        ("期限", _when(str(case["due"])[:10], ctx) if case.get("due") else ""),
        ("理由", case.get("reason")),
    )
    lines += [f"  {label}: {value}" for label, value in facts if value]
    for problem in case["problems"]:
        lines.append(f"  不備: {problem['field']}: {problem['message']}")
    for remark in remarks_of(case):
        lines.append(f"  備考（担当者のみ）: {remark['field']}: {remark['message']}")
    waiting = ctx.store.waiting_on_us([case_id]).get(case_id)
    if waiting:
        lines.append(
            f"  要対応: 参加者のメール（{_when(waiting, ctx)} 受信）に未対応"
            "（返信するか mailbot handled まで、この参加者への督促は止めています）"
        )
    received = received_mails(ctx, case_id)
    sent = ctx.store.outbox_mails_of_case(case_id)
    for number, row in enumerate(received, start=1):
        lines.append("")
        lines.append(
            f"受信メール {number}/{len(received)}  {_when(row['received_at'], ctx)}"
            f"  {row['from_addr'] or '?'} → {row['mailbox']}"
            + (f"  [{row['state']}: {row['outcome']}]" if row["state"] != "done" else "")
        )
        lines += _mail_lines(row["subject"], row["files"], row["text"])
    for number, row in enumerate(sent, start=1):
        mail = parse(bytes(row["raw"]))
        if row["state"] == "sent":
            state = f"送信済 {_when(row['sent_at'], ctx)}"
        elif row["state"] == "pending":
            state = f"送信予定 {_when(row['send_at'], ctx)}"
        else:
            state = f"{row['state']}: {row['last_error'] or ''}".strip()
        lines.append("")
        lines.append(
            f"送信メール {number}/{len(sent)}  {_when(row['created_at'], ctx)}"
            f"  → {row['recipient']}  ({row['kind']}, {state})"
        )
        lines += _mail_lines(
            mail.subject,
            [(a.filename, a.size, a.content_type) for a in mail.attachments],
            mail.text,
        )
    lines.append("")
    lines.append("経緯:")
    for event in ctx.store.events(case_id):
        detail = ", ".join(
            f"{k}={_value(v)}" for k, v in event["detail"].items() if v not in (None, "", [], {})
        )
        lines.append(f"  {_when(event['at'], ctx)}  {event['actor']}  {event['kind']}  {detail}")
    return "\n".join(lines).rstrip("\n") + "\n"
