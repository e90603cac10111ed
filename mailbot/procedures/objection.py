"""異議申立 against an assessment notice (seed 004 §2.1.3, §3.1.6), shared by both kinds.

An objection must name (■ fields of 表2-1/表3-3) a notice we sent for that 事業者コード and
電源等識別番号 whose result was 不合格, and arrive within 5 business days of that notice.
Pure check; never writes or sends.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from mailbot import fields
from mailbot.bodyfields import BodyField, extract, load_body_fields
from mailbot.context import Context
from mailbot.errors import DecisionError
from mailbot.notices import latest_notice
from mailbot.procedures import forms
from mailbot.procedures.base import Incoming, Outcome, Problem, Reply
from mailbot.procedures.common import own_text, sender_belongs
from mailbot.registers import source as find_source
from mailbot.states import Status
from mailbot.text import nfkc

REQUIRED = (
    "received_on",
    "operator_code",
    "operator_name_person",
    "category",
    "source_id",
    "source_name",
    "auction_year",
    "content",
)


def objection_fields(ctx: Context) -> tuple[BodyField, ...]:
    return load_body_fields(ctx.config.rules_dir / "body_fields.toml")["objection"]


class Objection:
    """Parameterised by the notice kind it objects to (supply_start | roadmap)."""

    actions = ("objection-accepted", "objection-rejected")

    def __init__(self, procedure_id: str, notice_kind: str, subject_label: str) -> None:
        self.id = procedure_id
        self.notice_kind = notice_kind
        self.subject_label = subject_label

    def check(self, incoming: Incoming, ctx: Context, case: dict[str, Any] | None) -> Outcome:
        mail = incoming.mail
        labels = {f.key: f.label for f in objection_fields(ctx)}
        values = extract(own_text(mail), objection_fields(ctx))
        problems = [
            Problem(
                labels[key],
                f"「■{labels[key]}」の記載がございません。表の記載例に沿ってご記入ください。",
            )
            for key in REQUIRED
            if not values.get(key, "").strip()
        ]
        code = nfkc(values.get("operator_code", "")).strip().upper()
        subject_code = incoming.classification.subject_code
        if values.get("operator_code") and not fields.is_operator_code(code):
            problems.append(
                Problem(
                    "事業者コード",
                    f"事業者コード「{values['operator_code']}」の形式に誤りがございます（英数字4桁）。",
                )
            )
        if subject_code and code and subject_code != code:
            problems.append(
                Problem(
                    "事業者コード",
                    f"件名の事業者コード（{subject_code}）と本文の事業者コード（{code}）が一致しておりません。",
                )
            )
        code = code or subject_code
        received_on = fields.parse_date(values.get("received_on", ""))
        if values.get("received_on") and received_on is None:
            problems.append(
                Problem("アセスメント結果受領日", "日付は YYYY/MM/DD の形式でご記入ください。")
            )
        source_id = (values.get("source_id") or "").strip()
        data: dict[str, Any] = {"objection": values, "notice_kind": self.notice_kind}
        notice = latest_notice(ctx.store, self.notice_kind, source_id) if source_id else None
        if source_id and (notice is None or notice["operator_code"] != code):
            problems.append(
                Problem(
                    "電源等識別番号",
                    f"事業者コード {code or '（未記載）'}、電源等識別番号 {source_id} について、"
                    f"本機関からお送りした「{self.subject_label}」のアセスメント結果通知が見当たりません。"
                    "記載内容をご確認ください。",
                )
            )
            notice = None
        if not sender_belongs(ctx, mail.from_addr, code or None, case) and not self._source_contact(
            ctx, source_id, mail.from_addr
        ):
            return forms.held(
                case,
                "差出人が事業者の登録連絡先・ドメインと一致しません",
                problems=problems,
                data=data,
            )
        if notice is not None:
            data["notice_id"] = notice["id"]
            refusal = self._refusal(notice, incoming.received_at.date())
            if refusal and not problems:
                return Outcome(
                    status=Status.CLOSED,
                    operator_code=code,
                    source_id=source_id,
                    data=data,
                    reason=refusal["why"],
                    replies=[Reply("refusal", "objection_refused", refusal)],
                    events=[("objection_refused", {"why": refusal["why"]})],
                )
        outcome = forms.receipt_or_correction(
            ctx,
            incoming,
            problems,
            data,
            next_steps="異議申立の内容を審査のうえ、妥当性審査の結果を電子メールにてご連絡いたします。",
            wrong_mailbox=incoming.classification.wrong_mailbox,
            attachment_list=[a.filename for a in mail.attachments],
            operator_code=code or None,
        )
        outcome.source_id = source_id or None
        return outcome

    @staticmethod
    def _source_contact(ctx: Context, source_id: str, sender: str) -> bool:
        found = find_source(ctx.store, source_id) if source_id else None
        return bool(found and (found["contact_email"] or "").lower() == sender.lower())

    @staticmethod
    def _refusal(notice: dict[str, Any], received: date) -> dict[str, Any] | None:
        if notice["result"] != "不合格":
            return {
                "why": "passed",
                "notice": notice,
                "message": "当該アセスメント結果は「合格」であり、異議申立の対象ではございません。",
            }
        deadline = notice["objection_deadline"]
        if deadline is None:
            return None
        if received > date.fromisoformat(deadline):
            return {
                "why": "late",
                "notice": notice,
                "deadline": deadline,
                "message": (
                    "異議申立の期限（アセスメント結果通知メールの受信日 "
                    f"{notice['notified_on'].replace('-', '/')} から5営業日以内、"
                    f"{deadline.replace('-', '/')} まで）を過ぎてからの受付となりました。"
                ),
            }
        return None

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Context
    ) -> Outcome:
        if action not in self.actions:
            raise DecisionError(f"{action}: not an action here (use: {', '.join(self.actions)})")
        if case["status"] not in (Status.COMPLETE, Status.HELD):
            raise DecisionError(f"case is {case['status']}: only a complete objection is judged")
        accepted = action == "objection-accepted"
        if not accepted and not reason:
            raise DecisionError("objection-rejected needs --reason: the participant is told why")
        return Outcome(
            status=Status.DECIDED if accepted else Status.CLOSED,
            data={"objection_result": "accepted" if accepted else "rejected"},
            replies=[
                Reply(
                    "objection_result",
                    "objection_result",
                    {
                        "accepted": accepted,
                        "reason": reason or "",
                        "label": self.subject_label,
                    },
                    window=True,
                )
            ],
            events=[(action, {"reason": reason or ""})],
        )
