"""Decisions by mail: a staff member answers the morning report mail with the filled-in
workbook attached, the rows are applied exactly as `mailbot decisions apply` applies them, and
the per-row result goes back by mail.

Accepted only from `[staff] addresses`, only when our receiving MTA's verdict (the
Authentication-Results header stamped with our own authserv-id) says dmarc=pass for that From
domain (`header.from=` aligned), and only in the thread of a report we sent to
that same address. Anything else goes through the ordinary pipeline as any mail would.
Re-applying the same workbook applies nothing twice: every row carries its case's version.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mailbot.context import Context
from mailbot.desk.decisions_apply import RowResult, apply_workbook
from mailbot.errors import MailbotError
from mailbot.forms.workbook import inspect
from mailbot.mail import Attachment, Mail
from mailbot.mail.trust import auth_verdict
from mailbot.outbox.planner import staff_mail
from mailbot.private import write_private
from mailbot.store import StoredMessage
from mailbot.store.effect import Effect, MessageFinish

REPORT_KIND = "daily_report"
OUTCOME = "staff decisions"


def _vouched(ctx: Context, mail: Mail) -> bool:
    verdict = auth_verdict(mail.authentication_results, ctx.config.our_authserv_id)
    return verdict.vouches_for(mail.from_addr)


def report_reply(ctx: Context, mail: Mail) -> Attachment | None:
    """The filled-in workbook of a staff reply to our report mail, else None."""
    sender = mail.from_addr.lower()
    if sender not in ctx.config.staff_addresses or not _vouched(ctx, mail):
        return None
    if not any(ctx.store.outbox_kind(mid, sender) == REPORT_KIND for mid in mail.thread_ids):
        return None
    books = [a for a in mail.attachments if a.filename.lower().endswith(".xlsx")]
    return books[0] if len(books) == 1 else None


def apply_report_reply(
    ctx: Context, stored: StoredMessage, mail: Mail, workbook: Attachment
) -> str:
    """Apply the rows, mail the result to the sender, mark the stored mail done. Returns the
    outcome line the pipeline logs."""
    now = ctx.now()
    sender = mail.from_addr.lower()
    if ctx.store.seen_message(stored.id, mail.message_id, OUTCOME):
        outcome = f"{OUTCOME}: duplicate"
        ctx.store.apply(Effect(now, message=MessageFinish(stored.id, "done", None, outcome)))
        return outcome
    results: list[RowResult] = []
    error = None
    problems = inspect(workbook.filename, workbook.data)
    if problems:
        error = "、".join(p.message for p in problems)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "report.xlsx"
            write_private(path, workbook.data)
            try:
                results = apply_workbook(ctx, path, by=sender)
            except MailbotError as exc:
                error = str(exc).replace(str(path), workbook.filename)
    applied = sum(1 for r in results if r.ok)
    subject, body = ctx.renderer.mail(
        "staff_decision_results",
        {
            "results": results,
            "applied": applied,
            "refused": len(results) - applied,
            "error": error,
            "filename": workbook.filename,
            "now": now,
        },
    )
    outcome = f"{OUTCOME}: {applied} applied, {len(results) - applied} refused"
    finish = MessageFinish.done(stored.id, None, outcome, mail, None)
    mail_back = staff_mail(ctx, "decision_results", sender, subject, body, now)
    ctx.store.apply(Effect(now, mails=[mail_back], message=finish))
    return outcome
