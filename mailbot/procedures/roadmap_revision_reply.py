"""脱炭素化ロードマップの改訂有無の回答 (seed 004 §3.1.2–3.1.5): the answer to our 改訂要否の確認,
the revised roadmap's file name and sheet, the ministry's correction request, the assessment.

Pure check; never writes or sends. The campaign that asks the question is `mailbot.outbound`.
"""

from __future__ import annotations

from typing import Any

from mailbot.bodyfields import extract, load_body_fields, mentions
from mailbot.context import Context
from mailbot.errors import DecisionError
from mailbot.procedures import forms
from mailbot.procedures.base import Incoming, Outcome, Problem, Reply
from mailbot.procedures.common import own_text, sender_belongs, spreadsheets
from mailbot.registers import source as find_source
from mailbot.roadmap import file_name_problems, load_roadmap_rules, sheet_problems
from mailbot.states import Status
from mailbot.text import nfkc
from mailbot.workbook import Limits, inspect, load_grids

REQUIRED = (
    "operator_code",
    "operator_name_person",
    "category",
    "source_id",
    "source_name",
    "auction_year",
)
OPEN_CAMPAIGN_STATES = ("awaiting_reply", "needs_correction", "complete", "held")


def campaign_case_for(ctx: Context, source_id: str) -> dict[str, Any] | None:
    row = ctx.store.execute(
        "SELECT id FROM cases WHERE procedure = 'roadmap_revision_reply' AND source_id = ?"
        f" AND status IN ({','.join('?' * len(OPEN_CAMPAIGN_STATES))}) ORDER BY id DESC LIMIT 1",
        (source_id, *OPEN_CAMPAIGN_STATES),
    ).fetchone()
    return ctx.store.case(row[0]) if row else None


class RoadmapRevisionReply:
    id = "roadmap_revision_reply"
    actions = ("roadmap-correction", "close")

    def check(self, incoming: Incoming, ctx: Context, case: dict[str, Any] | None) -> Outcome:
        mail = incoming.mail
        rules = load_roadmap_rules(ctx.config.rules_dir / "roadmap.toml")
        spec = load_body_fields(ctx.config.rules_dir / "body_fields.toml")["roadmap_reply"]
        labels = {f.key: f.label for f in spec}
        text = own_text(mail)
        values = extract(text, spec)
        problems = [
            Problem(
                labels[k],
                f"「・{labels[k]}」の記載がございません。■対象となる電源の各項目をご記入ください。",
            )
            for k in REQUIRED
            if not values.get(k, "").strip()
        ]
        code = nfkc(values.get("operator_code", "")).strip().upper() or (
            incoming.classification.subject_code or ""
        )
        subject_code = incoming.classification.subject_code
        if subject_code and values.get("operator_code") and subject_code != code:
            problems.append(
                Problem(
                    "事業者コード",
                    f"件名の事業者コード（{subject_code}）と本文の事業者コード（{code}）が一致しておりません。",
                )
            )
        source_id = values.get("source_id", "").strip() or (case or {}).get("source_id") or ""
        source = find_source(ctx.store, source_id) if source_id else None
        if source_id and source is None:
            problems.append(
                Problem(
                    "電源等識別番号",
                    f"電源等識別番号 {source_id} の契約電源が見当たりません。記載内容をご確認ください。",
                )
            )
        elif source and code and source["operator_code"] != code:
            problems.append(
                Problem(
                    "電源等識別番号",
                    f"電源等識別番号 {source_id} は事業者コード {code} の契約電源ではございません。",
                )
            )
        target = case or (campaign_case_for(ctx, source_id) if source else None)
        contact = (source or {}).get("contact_email") or ""
        if not (
            contact.lower() == mail.from_addr.lower()
            or sender_belongs(ctx, mail.from_addr, code or None, target)
        ):
            return forms.held(target, "差出人が事業者の登録連絡先・ドメインと一致しておりません")
        revised = mentions(text, rules.revised_statement)
        unrevised = mentions(text, rules.unrevised_statement)
        data: dict[str, Any] = {"answer_fields": values}
        if revised == unrevised:
            problems.append(
                Problem(
                    "改訂有無",
                    f"「{rules.revised_statement}」または「{rules.unrevised_statement}」のどちらか一方のみを本文にご記載ください。",
                )
            )
        elif unrevised:
            data |= {"answer": "unrevised"}
        else:
            previous = (target or {}).get("data", {}).get("revision")
            revision = previous or (int((source or {}).get("roadmap_revision") or 0) + 1)
            data |= {"answer": "revised", "revision": revision}
            if source:
                problems += self._file_problems(ctx, mail, rules, source, revision)
        outcome = forms.receipt_or_correction(
            ctx,
            incoming,
            problems,
            data,
            next_steps=(
                "改訂後の脱炭素化ロードマップは資源エネルギー庁が審査します。修正が必要と判断された場合は、修正依頼をお送りいたします。"
                if data.get("answer") == "revised"
                else "ご回答内容を確認のうえ、必要に応じてご連絡いたします。"
            ),
            wrong_mailbox=incoming.classification.wrong_mailbox,
            attachment_list=[a.filename for a in mail.attachments],
            operator_code=code or None,
        )
        outcome.source_id = source_id or None
        if target is not None and case is None:
            outcome.attach_to = target["id"]
        return outcome

    @staticmethod
    def _file_problems(
        ctx: Context, mail: Any, rules: Any, source: dict[str, Any], revision: int
    ) -> list[Problem]:
        sheets = spreadsheets(mail)
        if not sheets:
            return [
                Problem(
                    "添付ファイル",
                    "改訂後の脱炭素化ロードマップ（.xlsx 形式）が添付されておりません。",
                )
            ]
        attachment = sheets[0]
        limits = Limits(max_bytes=ctx.config.limits.max_attachment_bytes)
        unsafe = inspect(attachment.filename, attachment.data, limits)
        if unsafe:
            return [Problem("添付ファイル", p.message) for p in unsafe]
        problems = file_name_problems(
            rules,
            attachment.filename,
            int(source["auction_year"] or 0),
            source["operator_code"],
            source["name"] or "",
            revision,
        )
        grids, failure = load_grids(attachment.data, attachment.filename)
        if failure:
            return [*problems, Problem("添付ファイル", failure.message)]
        return problems + sheet_problems(rules, grids)

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Context
    ) -> Outcome:
        if action == "close":
            return Outcome(status=Status.CLOSED, events=[("closed", {"reason": reason or ""})])
        if action != "roadmap-correction":
            raise DecisionError(
                f"{action}: not an action here (use: {', '.join(self.actions)}; the assessment is `mailbot assess roadmap`)"
            )
        if not reason:
            raise DecisionError(
                "roadmap-correction needs --reason: the ministry's request, forwarded as written"
            )
        if case["status"] not in (Status.COMPLETE, Status.AWAITING_REPLY, Status.HELD):
            raise DecisionError(f"case is {case['status']}: a correction request follows an answer")
        return Outcome(
            status=Status.NEEDS_CORRECTION,
            data={"correction_requested": True},
            replies=[
                Reply(
                    "correction",
                    "roadmap_correction",
                    {
                        "request": reason,
                        "revision": case["data"].get("revision"),
                        "answer": case["data"].get("answer"),
                    },
                )
            ],
            events=[("roadmap_correction", {"request": reason})],
        )
