"""アグリゲータ用系統コード申請 (SPEC §3.2, seed 000): only for 電源リスト categories, the
発電所マスタ申込書 with its fixed values, the registered 事業者名称 as 発電所名, the アグリ+5+2
発電所名略称, and an issued 事業者コード.

Pure check: reads the mail and the registers, returns an Outcome; never writes or sends.
"""

from __future__ import annotations

import re
from typing import Any

from mailbot.context import Reader
from mailbot.errors import DecisionError
from mailbot.forms import fields
from mailbot.outcome import Incoming, Outcome, Problem, Reply
from mailbot.procedures import forms
from mailbot.procedures.common import attachment_names, own_text, sender_belongs
from mailbot.procedures.licenses import LICENSE_RULES
from mailbot.procedures.operator_code_application import body_problems
from mailbot.states import Status
from mailbot.text import nfkc

STATEMENT = "容量市場向けアグリゲータ用系統コード"
PLANT_NAME = re.compile(r"^アグリ(?P<code>[0-9A-Z]{4})(?P<area>[1-9])(?P<serial>\d{2})$")


def _same(a: object, b: object) -> bool:
    def fold(x: object) -> str:
        return re.sub(r"\s+", "", nfkc(str(x or "")))

    return fold(a) == fold(b)


def plant_problems(
    ctx: Reader, values: dict[str, Any], case: dict[str, Any] | None
) -> tuple[list[Problem], str | None, dict[str, Any]]:
    """Every rule of the 発電所マスタ申込書; returns (problems, 4-character code, facts)."""
    p: list[Problem] = []
    facts: dict[str, Any] = {}
    given = {k: v for k, v in values.items() if v not in (None, "", [])}
    area = fields.area_name(given.get("電源所属エリア名"))
    digit = fields.area_digit(area) if area else None
    if "電源所属エリア名" in given and digit is None:
        p.append(
            Problem(
                "電源所属エリア名",
                f"電源所属エリア名は北海道・東北・東京・中部・北陸・関西・中国・四国・九州のいずれかをご選択ください（記載：{given['電源所属エリア名']}）。",
            )
        )
    facts["area"] = area
    name = nfkc(str(values.get("発電所名略称") or "")).strip()
    match = PLANT_NAME.match(name)
    code = None
    if name and not match:
        p.append(
            Problem(
                "発電所名略称",
                "発電所名略称は【アグリ(事業者コード5桁)(連番2桁)】とご記載ください（例：アグリ1234501）"
                f"（記載：{name}）。",
            )
        )
    elif match:
        code = match["code"]
        facts["plant_name"] = name
        if digit is not None and int(match["area"]) != digit:
            p.append(
                Problem(
                    "発電所名略称",
                    f"発電所名略称の5桁目（エリアコード {match['area']}）が電源所属エリア名「{area}」（{digit}）と一致しておりません。",
                )
            )
    owner_code = nfkc(str(values.get("事業者コード(発電所所有者)") or "")).strip().upper()
    if match and owner_code and owner_code != f"{match['code']}{match['area']}":
        p.append(
            Problem(
                "事業者コード(発電所所有者)",
                f"事業者コード(発電所所有者)は発電所名略称と同じ5桁（{match['code']}{match['area']}）をご記載ください（記載：{owner_code or '未記載'}）。",
            )
        )
    if code is None and len(owner_code) == 5:
        code = owner_code[:4]
    registered = ctx.store.operator(code) if code else None
    if code and registered is None:
        p.append(
            Problem(
                "事業者コード(発電所所有者)",
                f"事業者コード {code} は発番されておりません。系統コードの申請には、事前に事業者コードの取得が必要です。",
            )
        )
    if registered:
        if match and name in registered["grid_codes"]:
            p.append(
                Problem(
                    "発電所名略称",
                    f"発電所名略称「{name}」は既に使用されております。同一エリアにおいて複数の系統コードを申請する際は、連番2桁が重複しないようご注意ください。",
                )
            )
        elif match and _pending_plant_name(ctx, name, case):
            p.append(
                Problem(
                    "発電所名略称",
                    f"発電所名略称「{name}」は審査中の別のお申込みで使用されております。連番2桁が重複しないようご注意ください。",
                )
            )
        if "発電所名" in given and not _same(given["発電所名"], registered["name"]):
            p.append(
                Problem(
                    "発電所名",
                    f"発電所名は、事業者コード申請時に登録した事業者名称（{registered['name']}）をご記載ください（記載：{given['発電所名']}）。",
                )
            )
        if "事業者名称(発電所所有者)" in given and not _same(
            given["事業者名称(発電所所有者)"], registered["name"]
        ):
            p.append(
                Problem(
                    "事業者名称(発電所所有者)",
                    f"事業者名称(発電所所有者)は、事業者コード申請時に登録した事業者名称（{registered['name']}）をご記載ください。",
                )
            )
        if (
            registered.get("address")
            and "住所(発電所所在地)" in given
            and not _same(given["住所(発電所所在地)"], registered["address"])
        ):
            p.append(
                Problem(
                    "住所(発電所所在地)",
                    f"住所は、事業者コード申請時に登録した住所（{registered['address']}）をご記載ください。",
                )
            )
    p += forms.contact_problems(values)
    return p, code, facts


def issued_grid_code(ctx: Reader, arg: str | None) -> str:
    """The 系統コード staff issue, folded (NFKC, upper case). Raises DecisionError when none
    is given, when it is not a 系統コード's shape or when it is in the register already.
    Seed 000 says the code is notified (「申請から最大3週間程度で系統コードを通知いたします。」)
    and shows one (「1YA22 ※新規取得が必要」) but gives no rule to make one
    (「実際に発番されるコードは、申請毎に異なります」): staff give it, as ARG of `decide`, the
    report's value column or the web desk's value field."""
    if not arg or not arg.strip():
        raise DecisionError(
            "発番した系統コードを指定してください（例：1YA22。decide の ARG、"
            "レポートの「判断の値（コード等）」列、または Web の値欄）"
        )
    grid_code = fields.normalise_code(arg)
    if not fields.is_grid_code(grid_code):
        raise DecisionError(
            f"「{grid_code}」は系統コードの形式（数字または英大文字5文字、例：1YA22）ではありません"
        )
    if forms.grid_code_in_use(ctx, grid_code):
        raise DecisionError(f"系統コード {grid_code} は既に使われています")
    return grid_code


def _pending_plant_name(ctx: Reader, name: str, case: dict[str, Any] | None) -> bool:
    data = ctx.store.case_data_of(
        "grid_code_application", ("complete", "held"), case["id"] if case else 0
    )
    return any(f'"plant_name": "{name}"' in d for d in data)


class GridCodeApplication:
    id = "grid_code_application"
    actions = ("issue-code", "reject")

    def check(self, incoming: Incoming, ctx: Reader, case: dict[str, Any] | None) -> Outcome:
        mail = incoming.mail
        problems, category = body_problems(own_text(mail), STATEMENT)
        table = LICENSE_RULES.load(ctx.config.rules_dir)
        if category and category not in table.grid_code_needed:
            return Outcome(
                status=Status.CLOSED,
                data={"category": category},
                replies=[
                    Reply(
                        "code_not_needed",
                        "code_not_needed",
                        {"category": category, "serving_code": None},
                    )
                ],
                events=[("grid_code_not_needed", {"category": category})],
            )
        values, form_problems, _form_file = forms.read_form(ctx, mail, "plant_master")
        problems += form_problems
        code = None
        facts: dict[str, Any] = {}
        if values:
            more, code, facts = plant_problems(ctx, values, case)
            problems += more
        remarks = [r.as_dict() for r in forms.contact_remarks(values)] if values else []
        kept = {"problems": problems, "data": {"category": category, "remarks": remarks} | facts}
        if code and ctx.store.operator(code) and not sender_belongs(ctx, mail.from_addr, code):
            return forms.held(
                case, f"差出人が事業者コード {code} の登録連絡先・ドメインと一致しません", **kept
            )
        if case is not None and not sender_belongs(ctx, mail.from_addr, code, case):
            return forms.stranger_held(case, mail.from_addr, **kept)
        return forms.receipt_or_correction(
            ctx,
            incoming,
            problems,
            {"category": category, "form": forms.jsonable(values), "remarks": remarks} | facts,
            next_steps="内容を確認のうえ、申請から最大3週間程度で系統コードを通知いたします。",
            wrong_mailbox=incoming.classification.wrong_mailbox,
            attachment_list=attachment_names(mail),
            operator_code=code,
        )

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Reader
    ) -> Outcome:
        if rejected := forms.rejected_unless_issuing(case, action, reason, self.actions):
            return rejected
        plant = case["data"].get("plant_name")
        code = case.get("operator_code")
        if not plant or not code:
            raise DecisionError("この申請には有効な発電所名・事業者コードがありません")
        registered = ctx.store.operator(code)
        if registered and plant in registered["grid_codes"]:
            raise DecisionError(f"発電所名 {plant} は事業者コード {code} に登録済みです")
        grid_code = issued_grid_code(ctx, arg)
        return Outcome(
            status=Status.CLOSED,
            data={"issued_grid_code": grid_code, "issued_plant_name": plant},
            replies=[
                Reply(
                    "code_notice",
                    "grid_code_notice",
                    {
                        "code": grid_code,
                        "plant_name": plant,
                        "operator_code": code,
                        "area": case["data"].get("area"),
                        "form": case["data"].get("form", {}),
                    },
                    window=True,
                )
            ],
            events=[("grid_code_issued", {"plant_name": plant, "grid_code": grid_code})],
            register_grid_code=(code, plant, case["data"].get("area") or "", grid_code),
        )
