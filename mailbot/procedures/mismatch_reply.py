"""不一致に係る問合せ回答 (seed 004 §3.1.10): the answer to our mismatch inquiry, matched only by
thread (In-Reply-To/References or the case number in the subject). Pure check."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from mailbot.context import Reader
from mailbot.errors import DecisionError
from mailbot.outcome import Incoming, Outcome, Problem, Reply
from mailbot.procedures import forms
from mailbot.procedures.common import own_text, sender_belongs
from mailbot.states import Status


class MismatchReply:
    id = "mismatch_reply"
    actions = ("close",)

    def check(self, incoming: Incoming, ctx: Reader, case: dict[str, Any] | None) -> Outcome:
        mail = incoming.mail
        if case is None:
            return forms.held(None, "問合せに対応する案件が見つかりません")
        src = ctx.store.source(case.get("source_id") or "") or {}
        is_contact = (src.get("contact_email") or "").lower() == mail.from_addr.lower()
        if not is_contact and not sender_belongs(
            ctx, mail.from_addr, case.get("operator_code"), case
        ):
            return forms.held(case, "差出人が事業者の登録連絡先・ドメインと一致しません")
        answer = own_text(mail).strip()
        # 「速やかに回答を電子メールにて送付してください」 (seed 004 §3.1.10): by mail, in the body
        # or in a file attached to it
        problems = (
            []
            if answer or mail.attachments
            else [
                Problem(
                    "回答",
                    "不一致の原因についてのご回答が本文に見当たりません。本文にご記入のうえご返信ください。",
                )
            ]
        )
        outcome = forms.receipt_or_correction(
            ctx,
            incoming,
            problems,
            {"answer": answer[:4000]},
            next_steps="ご回答の内容を確認し、必要に応じて改めてご連絡いたします。",
            wrong_mailbox=False,
            attachment_list=[a.filename for a in mail.attachments],
            operator_code=case.get("operator_code"),
        )
        return outcome

    def reminder(self, case: dict[str, Any], today: date, ctx: Reader) -> tuple[str, Reply] | None:
        """Once the answer is overdue: the inquiry again, with the day we asked."""
        src = ctx.store.source(case.get("source_id") or "")
        if not case.get("due") or src is None:
            return None
        due = date.fromisoformat(str(case["due"])[:10])
        if today < due:
            return None
        asked = ctx.store.last_mail_of_kind(case["id"], "mismatch_inquiry")
        context = {
            "source": src,
            "inquiry": case["data"].get("inquiry", ""),
            "asked_on": datetime.fromisoformat(asked[1]).date() if asked else today,
        }
        reply = Reply("mismatch_reminder", "mismatch_reminder", context, window=True)
        return f"mismatch:{case['due']}", reply

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Reader
    ) -> Outcome:
        if action != "close":
            raise DecisionError(f"{action}: not an action here (use: close)")
        return Outcome(status=Status.CLOSED, events=[("closed", {"reason": reason or ""})])
