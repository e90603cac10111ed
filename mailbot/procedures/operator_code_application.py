"""事業者コード申請 (SPEC §3.1, seed 000): body statement, one 参加区分, the 事業者マスタ申込書,
the license rule, and staff issuing the code.

Pure check: reads the mail and the registers, returns an Outcome; never writes or sends.
"""

from __future__ import annotations

from typing import Any

from mailbot.context import Reader
from mailbot.errors import DecisionError
from mailbot.forms import fields
from mailbot.mail.trust import load_trust_rules
from mailbot.outcome import Incoming, Outcome, Problem, Reply
from mailbot.procedures import forms
from mailbot.procedures.common import attachment_names, own_text, says, sender_belongs
from mailbot.procedures.licenses import (
    DEMAND_RESPONSE,
    LICENSE_RULES,
    LicenseTable,
    serving_held_code,
    verdict,
)
from mailbot.states import Status
from mailbot.text import format_case_number, name_key, nfkc, single_line

STATEMENT = "容量市場向け事業者コード"
FORM_NAME = "事業者マスタ申込書"


def body_problems(
    text: str, statement: str, table: LicenseTable | None = None
) -> tuple[list[Problem], str | None]:
    """The application statement and the 参加区分 in the participant's own text. With a license
    `table`, several 参加区分 that need the same ライセンス区分 are one application (seed 000
    参考資料: 「ライセンス区分が同一の場合、事業者コードを複数取得する必要はありません」); without
    one, exactly one is asked for (a 系統コード is one per 電源リスト)."""
    problems: list[Problem] = []
    if not says(text, statement):
        problems.append(
            Problem(
                "本文",
                f"本文に「{statement}」の申請である旨が記載されておりません。"
                f"本文にも『{statement}』を申請する旨をご明記ください。"
                f"（記載例：添付の通り、『{statement}』を申請します。）",
            )
        )
    categories = fields.find_participation_categories(text)
    category = None
    choices = "、".join(fields.PARTICIPATION_CATEGORIES)
    if not categories:
        problems.append(
            Problem(
                "参加区分",
                f"本文に参加区分が記載されておりません。次のいずれか1つを本文にご明記ください："
                f"{choices}（記載例：参加区分は、『発動指令電源（電源）』です。）",
            )
        )
    elif len(categories) > 1 and not (
        table is not None and len({str(table.needed.get(c)) for c in categories}) == 1
    ):
        problems.append(
            Problem(
                "参加区分",
                f"本文に参加区分が複数記載されております（{'、'.join(categories)}）。"
                + (
                    "必要なライセンス区分が異なるため、ライセンス区分ごとにお申込みください。"
                    if table is not None
                    else "1回のお申込みにつき1つをご記載ください。"
                ),
            )
        )
    else:
        category = categories[0]
    return problems, category


def operator_form_problems(values: dict[str, Any]) -> list[Problem]:
    """The 事業者マスタ申込書 rules seed 000 states, each problem under the form's own label."""
    p: list[Problem] = []
    for label in ("契約開始日", "適用開始日", "適用終了日"):
        if values.get(label) and fields.parse_date(values.get(label)) is None:
            p.append(
                Problem(
                    label,
                    f"{label}は YYYY/MM/DD の形式でご記載ください（記載：{values.get(label) or '未記載'}）。",
                )
            )
    for check, label in (
        (fields.check_operator_name, "事業者名称"),
        (fields.check_short_name, "事業者名略称"),
        (fields.check_postal_code, "郵便番号"),
    ):
        message = check(values.get(label)) if values.get(label) else None
        if message:
            p.append(Problem(label, message))
    p += forms.contact_problems(values)
    return p


def operator_form_remarks(values: dict[str, Any]) -> list[Problem]:
    """What staff may want to look at but seed 000 does not ask of the applicant: never put in
    a correction request (SPEC §3.1), kept on the case as remarks for staff."""
    r: list[Problem] = []
    start = fields.parse_date(values.get("適用開始日"))
    contract = fields.parse_date(values.get("契約開始日"))
    if start and contract and start < contract:
        r.append(Problem("適用開始日", "適用開始日が契約開始日より前の日付です。"))
    email, domain = values.get("連絡者メール"), values.get("ドメイン名")
    if fields.is_email(email) and domain and not fields.domain_matches(email, domain):
        r.append(
            Problem("連絡者メール", f"連絡者メールのドメインがドメイン名（{domain}）と異なります。")
        )
    return r + forms.contact_remarks(values)


def normalised_short_name(form: dict[str, Any]) -> str | None:
    """The 略称 as the register keeps it (NFKC: 「広域機関＿容」 → 「広域機関_容」), which the
    notice states: the participant is told the form the seed writes (「例：広域機関_容」)."""
    value = form.get("事業者名略称")
    return nfkc(str(value)).strip() if value else value


class OperatorCodeApplication:
    id = "operator_code_application"
    actions = ("issue-code", "reject")

    def check(self, incoming: Incoming, ctx: Reader, case: dict[str, Any] | None) -> Outcome:
        mail = incoming.mail
        cls = incoming.classification
        text = own_text(mail)
        problems, category = body_problems(
            text, STATEMENT, LICENSE_RULES.load(ctx.config.rules_dir)
        )
        values, form_problems, _form_file = forms.read_form(ctx, mail, "operator_master")
        problems += form_problems
        data: dict[str, Any] = {
            "category": category,
            "form": forms.jsonable(values),
            "remarks": [],
        }
        if values:
            problems += operator_form_problems(values)
            data["remarks"] = [r.as_dict() for r in operator_form_remarks(values)]
        if case is not None and not sender_belongs(ctx, mail.from_addr, None, case):
            return forms.stranger_held(case, mail.from_addr, problems=problems, data=data)
        if values:
            linked = self._same_company_open(ctx, values, case)
            if linked:
                data["remarks"].append(linked[0].as_dict())
                data["same_company_cases"] = linked[1]
        if category and values:
            table = LICENSE_RULES.load(ctx.config.rules_dir)
            held = self._held_codes(ctx, mail.from_addr, values)
            decision = verdict(table, category, [(op["code"], op["licenses"]) for op in held])
            if decision.serving_code and not self._sender_is_of(
                ctx, mail.from_addr, decision.serving_code
            ):
                return forms.held(
                    case,
                    f"事業者名称「{single_line(str(values.get('事業者名称')), 60)}」は登録済みの事業者（事業者コード "
                    f"{decision.serving_code}）と同じですが、差出人（{mail.from_addr}）は"
                    "その事業者の登録ドメイン・連絡先ではありません。コードを伝えずに保留しています",
                    problems=problems,
                    data=data | {"serving_code": decision.serving_code},
                )
            if decision.serving_code:
                return Outcome(
                    status=Status.CLOSED,
                    operator_code=decision.serving_code,
                    data=data | {"serving_code": decision.serving_code},
                    replies=[
                        Reply(
                            "code_not_needed",
                            "code_not_needed",
                            {
                                "category": category,
                                "serving_code": decision.serving_code,
                            },
                        )
                    ],
                    events=[("code_not_needed", {"serving_code": decision.serving_code})],
                )
            applied = [str(x) for x in values.get("ライセンス区分", [])]
            if decision.apply_for and decision.apply_for not in applied:
                problems.append(
                    Problem(
                        "ライセンス区分",
                        f"参加区分『{category}』でお申込みの場合、ライセンス区分は"
                        f"『{decision.apply_for}』をご選択ください"
                        f"（申込書の記載：{'、'.join(applied) or '未記載'}）。",
                    )
                )
            data["license_applied_for"] = decision.apply_for
        outcome = forms.receipt_or_correction(
            ctx,
            incoming,
            problems,
            data,
            next_steps="内容を確認のうえ、お申込みから5営業日程度で事業者コードを通知いたします。",
            wrong_mailbox=cls.wrong_mailbox,
            attachment_list=attachment_names(mail),
        )
        if data.get("same_company_cases"):
            numbers = [format_case_number(i) for i in data["same_company_cases"]]
            outcome.events.append(("same_company_application", {"cases": numbers}))
            outcome.linked_cases = ("same_company_application", data["same_company_cases"])
        return outcome

    @staticmethod
    def _held_codes(ctx: Reader, sender: str, values: dict[str, Any]) -> list[dict[str, Any]]:
        """Codes the applicant holds: same 事業者名称, or the same mail domain."""
        free_mail = load_trust_rules(ctx.config.rules_dir).free_mail
        found = {op["code"]: op for op in ctx.store.operators_for_sender(sender, free_mail)}
        name = values.get("事業者名称")
        if isinstance(name, str) and name.strip():
            found |= {op["code"]: op for op in ctx.store.operators_named(name)}
        return list(found.values())

    @staticmethod
    def _sender_is_of(ctx: Reader, sender: str, code: str) -> bool:
        """Is `sender` the registered contact of operator `code`, or in its ドメイン名? A code
        found by 事業者名称 alone is anyone's to name in a form: telling it to a sender of
        another domain would hand one company's code to whoever writes its name."""
        free_mail = load_trust_rules(ctx.config.rules_dir).free_mail
        return any(op["code"] == code for op in ctx.store.operators_for_sender(sender, free_mail))

    @staticmethod
    def _same_company_open(
        ctx: Reader, values: dict[str, Any], case: dict[str, Any] | None
    ) -> tuple[Problem, list[int]] | None:
        """Another open application of the same 事業者名称 (folded as the register folds
        names): a staff remark naming it, and its case ids, or None. Two open applications
        of one company are one code at most (seed 000 参考資料: 「ライセンス区分が同一の場合、
        事業者コードを複数取得する必要はありません」); staff see the link before deciding."""
        name = values.get("事業者名称")
        if not isinstance(name, str) or not name.strip():
            return None
        others = ctx.store.open_applications_named(
            "operator_code_application", name_key(name), case["id"] if case else 0
        )
        if not others:
            return None
        numbers = "、".join(format_case_number(i) for i in others)
        return (
            Problem(
                "事業者名称",
                f"同じ事業者名称（{single_line(name, 60)}）の事業者コード申請 {numbers} が処理中です。"
                "同一事業者への二重発番にご注意ください。",
            ),
            others,
        )

    def _refuse_second_code(
        self, ctx: Reader, case: dict[str, Any], form: dict[str, Any], licenses: list[str]
    ) -> None:
        """Raises DecisionError when the company (its 事業者名称 folded, or the case's sender
        by mail domain, as the intake matches) already holds a code that serves: the rule of
        the intake holds at the decision too (seed 000 参考資料: 「※ライセンス区分が同一の場合、
        事業者コードを複数取得する必要はありません。」), so a resent application, or two cases
        of one company, never get two codes. Every desk (CLI, workbook, web, mail) decides
        through `decide`, hence through here."""
        held = self._held_codes(ctx, str(case.get("sender") or ""), form)
        table = LICENSE_RULES.load(ctx.config.rules_dir)
        serving = serving_held_code(
            table,
            case["data"].get("category"),
            [(op["code"], op["licenses"]) for op in held],
            licenses,
        )
        if serving is None:
            return
        op = next(o for o in held if o["code"] == serving)
        raise DecisionError(
            f"{op['name']} は既に事業者コード {serving}（ライセンス区分：{'、'.join(op['licenses'])}）"
            "を取得済みです。ライセンス区分が同一の場合、事業者コードを複数取得する必要はありません"
            "（お断りする場合は「お断り（理由を通知）」を選んでください）"
        )

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Reader
    ) -> Outcome:
        if rejected := forms.rejected_unless_issuing(case, action, reason, self.actions):
            return rejected
        code = fields.normalise_code(arg or forms.next_free_code(ctx))
        if not fields.is_operator_code(code):
            raise DecisionError(
                f"「{code}」は事業者コードの形式（数字または英大文字4文字）ではありません"
            )
        if forms.code_in_use(ctx, code):
            raise DecisionError(f"事業者コード {code} は既に使われています")
        form = case["data"].get("form", {})
        licenses = [str(x) for x in form.get("ライセンス区分", [])]
        self._refuse_second_code(ctx, case, form, licenses)
        register = {
            "code": code,
            "name": form.get("事業者名称") or case.get("sender_name") or "",
            "short_name": form.get("事業者名略称"),
            "postal_code": form.get("郵便番号"),
            "address": form.get("住所"),
            "domain": (form.get("ドメイン名") or "").lower() or None,
            "contact_email": (form.get("連絡者メール") or case.get("sender") or "").lower(),
            "licenses": licenses,
        }
        return Outcome(
            status=Status.CLOSED,
            operator_code=code,
            data={"issued_code": code, "issued_on": ctx.now().date().isoformat()},
            replies=[
                Reply(
                    "code_notice",
                    "operator_code_notice",
                    {
                        "code": code,
                        "form": form | {"事業者名略称": normalised_short_name(form)},
                        "licenses": licenses,
                        "category": case["data"].get("category"),
                        "negawatt": DEMAND_RESPONSE in licenses,
                    },
                    window=True,
                )
            ],
            events=[("code_issued", {"code": code})],
            register_operator=register,
        )
