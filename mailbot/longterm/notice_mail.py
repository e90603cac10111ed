"""Planning an アセスメント結果通知 mail (seed 004 図2-6, 図3-4), shared by every assessment: the
PDF, the notice record objections are matched against, and the mail inside the sending window,
written by the caller's transaction.

The objection deadline itself is fixed when the mail actually goes out (mailbot/outbox/notified.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailbot.context import Context
from mailbot.identity import load_operator
from mailbot.longterm.notice_pdf import NoticeDocument, render_notice
from mailbot.mail.compose import OutgoingAttachment
from mailbot.outbox.notified import OBJECTION_WINDOW_BUSINESS_DAYS
from mailbot.outbox.planner import Thread, apply_outcome
from mailbot.outcome import Outcome, Reply
from mailbot.states import Status

LONG_MAILBOX = "youryou_rikuase_long"
NOTES = (
    "※結果に異議がある場合は、本紙面の通知メール受信から5営業日以内にメールにて異議申立を実施してください。",
    "※契約内容の詳細は容量市場システムに添付されている電源等情報登録様式の最新版をご参照ください。",
)


@dataclass
class NoticeRequest:
    """One notice to plan. `case_id` None opens a new case for it (closed at once: objections
    are cases of their own); otherwise the notice closes that case."""

    case_id: int | None
    procedure: str
    mail_kind: str
    notice_kind: str
    source: dict[str, Any]
    operator_name: str
    result: str
    document: NoticeDocument
    subject_line: str
    notice_text: str
    objection_subject: str
    data: dict[str, Any]
    actor: str
    upload_reminder: bool = False
    upload_file_name: str = ""
    ministry_corrected: bool = False
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def source_rows(source: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return (
        ("電源等識別番号", source["source_id"]),
        ("エリア", source.get("area") or ""),
        ("応札年度", f"{source.get('auction_year') or ''}年度"),
        ("契約容量(kW)", f"{int(source.get('capacity_kw') or 0):,}"),
    )


def next_notice_number(ctx: Context) -> str:
    count = ctx.store.notice_count()
    return f"{count + 1:04d}"


def deadline_hint(ctx: Context, now: datetime) -> str:
    """The deadline if the mail goes out at its planned time (the stored deadline is set from
    the day it actually goes out)."""
    sent_on = ctx.calendar.window_open(now).date()
    deadline = ctx.business_days_after(sent_on, OBJECTION_WINDOW_BUSINESS_DAYS)
    return f"{deadline.year}年{deadline.month}月{deadline.day}日まで"


def plan_notice(ctx: Context, request: NoticeRequest) -> tuple[int, int]:
    """Returns (case id, notice id). The caller holds the transaction."""
    now = ctx.now()
    source = request.source
    address = ctx.address_for(LONG_MAILBOX)
    operator_block = load_operator(ctx.config.rules_dir, address)
    doc = request.document
    pdf = render_notice(doc, operator_block)
    reply = Reply(
        request.mail_kind,
        "assessment_notice",
        {
            "operator_code": source["operator_code"],
            "title": doc.title,
            "notice_number": doc.number,
            "operator_name": request.operator_name,
            "contact_person": source.get("contact_person") or "",
            "subject_line": request.subject_line,
            "notice_text": request.notice_text,
            "result": request.result,
            "objection_deadline_hint": deadline_hint(ctx, now),
            "objection_subject": request.objection_subject,
            "upload_reminder": request.upload_reminder,
            "upload_file_name": request.upload_file_name,
            "ministry_corrected": request.ministry_corrected,
        },
        attachments=(
            OutgoingAttachment(
                f"アセスメント結果通知書_{source['operator_code']}_{doc.number}.pdf",
                pdf,
                "application/pdf",
            ),
        ),
        window=True,
        in_reply=False,
    )
    case_id = apply_outcome(
        ctx,
        Outcome(
            status=Status.CLOSED,
            operator_code=source["operator_code"],
            source_id=source["source_id"],
            data=request.data,
            replies=[reply],
            events=[
                (request.mail_kind, {"number": doc.number, "result": request.result}),
                *request.events,
            ],
        ),
        case_id=request.case_id,
        procedure=request.procedure,
        thread=Thread(
            recipient=source["contact_email"],
            recipient_name=source.get("contact_person") or "",
            mailbox_address=address,
        ),
        actor=request.actor,
        now=now,
        new_case_fields={
            "sender": source["contact_email"],
            "sender_name": source.get("contact_person") or "",
            "mailbox": address,
            "subject": f"{doc.title} 通知No {doc.number}",
            "received_at": now.isoformat(timespec="seconds"),
        },
    )
    notice_id = ctx.store.insert_notice(
        kind=request.notice_kind,
        case_id=case_id,
        source_id=source["source_id"],
        operator_code=source["operator_code"],
        result=request.result,
        data=request.data,
        now=now,
    )
    row = ctx.store.latest_outbox(case_id, request.mail_kind)
    ctx.store.attach_notice_message(notice_id, row["message_id"])
    return case_id, notice_id
