"""異議申立 against an assessment notice (seed 004 §2.1.3, §3.1.6), shared by both kinds.

An objection must name (■ fields of 表2-1/表3-3) a notice we sent for that 事業者コード and
電源等識別番号 whose result was 不合格, and arrive within 5 business days of that notice.
Pure check; never writes or sends.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from mailbot.context import Reader
from mailbot.errors import DecisionError
from mailbot.forms import fields
from mailbot.forms.bodyfields import BODY_FIELDS, BodyField, extract
from mailbot.longterm.roadmap import shortens
from mailbot.outcome import Incoming, Outcome, Problem, Reply
from mailbot.procedures import forms
from mailbot.procedures.common import TARGET_FIELDS, missing_fields, own_text, sender_belongs
from mailbot.states import Status
from mailbot.text import nfkc

REQUIRED = ("received_on", *TARGET_FIELDS, "content")


def objection_fields(ctx: Reader) -> tuple[BodyField, ...]:
    return BODY_FIELDS.load(ctx.config.rules_dir)["objection"]


FIRST_LONG_TERM_AUCTION_FY = 2023
VARIABLE = "変動電源"


def target_problems(
    values: dict[str, str],
    source: dict[str, Any] | None,
    today: date,
    categories: tuple[str, ...],
) -> list[Problem]:
    """■対象となる電源等 as 表2-1/表3-3 ask for it: the source's own 区分 (the registered one,
    else one of `categories`, the 対象電源 of the objection's chapter), a plausible 応札年度, the
    registered 電源等の名称, and both the 事業者名称 and the 担当者名."""
    p: list[Problem] = []
    category = values.get("category", "").strip()
    if category:
        p += _category_problems(category, source, categories)
    year_text = values.get("auction_year", "").strip()
    year = fields.parse_fiscal_year(year_text) if year_text else None
    latest = today.year if today.month >= 4 else today.year - 1
    registered_year = int(source["auction_year"]) if source and source.get("auction_year") else None
    if year_text and (year is None or not FIRST_LONG_TERM_AUCTION_FY <= year <= latest):
        p.append(
            Problem(
                "応札年度",
                f"応札年度は長期脱炭素電源オークションに応札した年度（{FIRST_LONG_TERM_AUCTION_FY}年度以降）"
                f"をご記載ください（記載：{year_text}）。",
            )
        )
    elif year and registered_year and year != registered_year:
        p.append(
            Problem(
                "応札年度",
                f"応札年度（{year}年度）が当該電源の応札年度（{registered_year}年度）と一致しておりません。",
            )
        )
    name = values.get("source_name", "").strip()
    if _name_differs(name, source) and not shortens(_fold(name), _fold(source["name"])):
        p.append(
            Problem(
                "電源等の名称",
                f"電源等の名称は、登録されている名称（{source['name']}）をご記載ください（記載：{name}）。",
            )
        )
    who = values.get("operator_name_person", "").strip()
    if who and not _name_and_person(who, (source or {}).get("operator_name")):
        p.append(
            Problem(
                "事業者情報に登録している事業者名称および担当者名",
                "事業者情報に登録している事業者名称と担当者名の両方をご記載ください"
                f"（記載：{who}）。",
            )
        )
    return p


def _category_problems(
    written: str, source: dict[str, Any] | None, categories: tuple[str, ...]
) -> list[Problem]:
    """The 区分 as written against the registered source's, or against the chapter's 対象電源
    when the register has none. Seed 004 writes 「変動電源」 bare: it stands for either kind."""
    label = "容量を提供する電源等の区分"
    named = fields.participation_category(written)
    bare_variable = _fold(written) == VARIABLE
    registered = fields.participation_category((source or {}).get("category"))
    if registered is not None:
        if named == registered or (bare_variable and registered.startswith(VARIABLE)):
            return []
        return [
            Problem(
                label,
                f"容量を提供する電源等の区分は、当該電源の区分（{registered}）をご記載ください"
                f"（記載：{written}）。",
            )
        ]
    if named in categories or (bare_variable and any(c.startswith(VARIABLE) for c in categories)):
        return []
    return [
        Problem(
            label,
            f"容量を提供する電源等の区分は、{'、'.join(categories)}のいずれかをご記載ください"
            f"（記載：{written}）。",
        )
    ]


def _name_differs(name: str, source: dict[str, Any] | None) -> bool:
    return bool(name and source and source.get("name") and _fold(name) != _fold(source["name"]))


def name_remark(values: dict[str, str], source: dict[str, Any] | None) -> Problem | None:
    """A 電源等の名称 written short (髙橋火力1号機 for 髙橋火力発電所1号機) names the source all the
    same: staff see it, the participant is not asked to write it out."""
    name = values.get("source_name", "").strip()
    if source is None or not _name_differs(name, source):
        return None
    if not shortens(_fold(name), _fold(source["name"])):
        return None
    return Problem(
        "電源等の名称", f"電源等の名称「{name}」は登録名「{source['name']}」の略記です。"
    )


def _fold(text: str) -> str:
    return re.sub(r"\s+", "", nfkc(text))


def _name_and_person(text: str, registered: str | None) -> bool:
    """Both halves present: the registered 事業者名称 (when known) and something more, the
    person; without a register, two parts (「株式会社髙橋電力　髙橋一郎」)."""
    folded = _fold(text)
    if registered and _fold(registered) in folded:
        rest = folded.replace(_fold(registered), "", 1)
        return len(re.sub(r"[、,／/・:：()（）]", "", rest)) >= 2
    parts = [x for x in re.split(r"[\s、,／/・]+", nfkc(text).strip()) if x]
    return len(parts) >= 2


class Objection:
    """Parameterised by the notice kind it objects to (supply_start | roadmap)."""

    actions = ("objection-accepted", "objection-rejected")

    def __init__(
        self,
        procedure_id: str,
        notice_kind: str,
        subject_label: str,
        categories: tuple[str, ...],
    ) -> None:
        self.id = procedure_id
        self.notice_kind = notice_kind
        self.subject_label = subject_label
        self.categories = categories

    def check(self, incoming: Incoming, ctx: Reader, case: dict[str, Any] | None) -> Outcome:
        mail = incoming.mail
        labels = {f.key: f.label for f in objection_fields(ctx)}
        values = extract(own_text(mail), objection_fields(ctx))
        problems = missing_fields(
            values,
            labels,
            REQUIRED,
            "「■{label}」の記載がございません。表の記載例に沿ってご記入ください。",
        )
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
        notice = ctx.store.latest_notice(self.notice_kind, source_id) if source_id else None
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
        source = ctx.store.source(source_id) if source_id else None
        problems += target_problems(values, source, incoming.received_at.date(), self.categories)
        remarks = [r for r in (name_remark(values, source),) if r is not None]
        if notice is not None and received_on is not None:
            sent_on = date.fromisoformat(notice["notified_on"]) if notice["notified_on"] else None
            if sent_on and received_on < sent_on:
                problems.append(
                    Problem(
                        "アセスメント結果受領日",
                        f"アセスメント結果受領日（{received_on:%Y/%m/%d}）が、本機関が通知メールを"
                        f"お送りした日（{sent_on:%Y/%m/%d}）より前の日付となっております。"
                        "通知メールを受領された日をご記載ください。",
                    )
                )
            elif sent_on and received_on > sent_on:
                remarks.append(
                    Problem(
                        "アセスメント結果受領日",
                        f"受領日 {received_on:%Y/%m/%d} は通知メール送信日 {sent_on:%Y/%m/%d} より後"
                        "（異議申立期限は送信日から数えています）。",
                    )
                )
        data["remarks"] = [r.as_dict() for r in remarks]
        if notice is not None:  # a held objection staff judge is of this notice too
            data["notice_id"] = notice["id"]
        if not sender_belongs(ctx, mail.from_addr, code or None, case) and not self._source_contact(
            ctx, source_id, mail.from_addr
        ):
            held = forms.held(
                case,
                "差出人が事業者の登録連絡先・ドメインと一致しません",
                problems=problems,
                data=data,
            )
            held.source_id = source_id or None  # whose registered address gets the result
            return held
        if notice is not None:
            refusal = self._refusal(notice, incoming.received_at.date())
            if refusal:  # a late objection corrected would be as late: its problems do not matter
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
    def _source_contact(ctx: Reader, source_id: str, sender: str) -> bool:
        found = ctx.store.source(source_id) if source_id else None
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
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Reader
    ) -> Outcome:
        if action not in self.actions:
            raise DecisionError(f"{action}: not an action here (use: {', '.join(self.actions)})")
        if case["status"] not in (Status.COMPLETE, Status.HELD):
            raise DecisionError(f"case is {case['status']}: only a complete objection is judged")
        accepted = action == "objection-accepted"
        if not accepted and not reason:
            raise DecisionError("objection-rejected needs --reason: the participant is told why")
        to, cc, person = result_recipients(case, ctx)
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
                    }
                    | ({"recipient_name": person} if to else {}),
                    to=to,
                    cc=cc,
                    window=True,
                )
            ],
            events=[(action, {"reason": reason or ""})],
        )


def result_recipients(case: dict[str, Any], ctx: Reader) -> tuple[str | None, tuple[str, ...], str]:
    """Where the result of an objection goes: (To, Cc, the name the mail opens with).

    「異議申立に係る審査に合格した旨の電子メールが、事業者情報登録時に容量提供事業者が容量市場
    システムに登録したメールアドレスに送付されます。」 (seed 004 §2.1.4, §3.1.7): the address
    registered for the source (its notice went there), else the operator's; the objector in Cc
    when they wrote from another address of the provider (its registered contact or domain). An
    objector staff judged although held as not the provider's gets no copy: it would show them
    the provider's registered address and its result. (None, (), "") when nothing is registered
    or the objector is the registered address: the reply then goes to the objector, in their
    thread."""
    source = ctx.store.source(case.get("source_id") or "") or {}
    code = source.get("operator_code") or case.get("operator_code") or ""
    registered = (source.get("contact_email") or "").strip()
    person = source.get("contact_person") or ""
    if not registered:
        operator = ctx.store.operator(code) or {}
        registered, person = (operator.get("contact_email") or "").strip(), ""
    objector = (case.get("sender") or "").strip()
    if not registered or registered.lower() == objector.lower():
        return None, (), ""
    provider = bool(objector and code and sender_belongs(ctx, objector, code))
    return registered, ((objector,) if provider else ()), person
