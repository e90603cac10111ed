"""脱炭素化ロードマップの改訂有無の回答 (seed 004 §3.1.2–3.1.5): the answer to our 改訂要否の確認,
the revised roadmap's file name and sheet, the assessment. The ministry's correction request
and the corrected roadmap go between 資源エネルギー庁 and the provider (§3.1.3–3.1.4): staff may
record that one came (`ministry-correction`, no mail); a corrected roadmap mailed here is kept
and answered with where it belongs.

Pure check; never writes or sends. The campaign that asks the question is `mailbot.longterm.outbound`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from mailbot.context import Reader
from mailbot.errors import DecisionError
from mailbot.forms import fields
from mailbot.forms.bodyfields import BODY_FIELDS, extract, mentions
from mailbot.forms.workbook import Limits, inspect, load_grids
from mailbot.longterm.roadmap import ROADMAP_RULES, file_name_problems, sheet_problems
from mailbot.outcome import Incoming, Outcome, Problem, Reply
from mailbot.procedures import forms
from mailbot.procedures.common import (
    TARGET_FIELDS,
    missing_fields,
    own_text,
    sender_belongs,
    spreadsheets,
)
from mailbot.states import Status
from mailbot.text import nfkc

REQUIRED = TARGET_FIELDS
# What follows an answer (seed 004 §3.1.3): 資源エネルギー庁 reviews it either way and sends any
# correction request itself, by mail; a revised roadmap is published on the 本機関 HP (§3 注).
NEXT_STEPS = {
    "revised": (
        "改訂後の脱炭素化ロードマップは資源エネルギー庁が審査します。修正が必要と判断された場合は、"
        "資源エネルギー庁より修正依頼が電子メールにて送付されます。"
        "修正依頼内容に疑義がある場合は、資源エネルギー庁にお問い合わせください。"
        "なお、改訂後の脱炭素化ロードマップは本機関のホームページに掲載されます。"
    ),
    "unrevised": (
        "改訂がない旨のご回答につきましては、技術開発の進歩等を考慮し、"
        "公表済みの最新の脱炭素化ロードマップの改訂要否について資源エネルギー庁が審査します。"
        "修正が必要と判断された場合は、資源エネルギー庁より修正依頼が電子メールにて送付されます。"
        "修正依頼内容に疑義がある場合は、資源エネルギー庁にお問い合わせください。"
    ),
}
OPEN_CAMPAIGN_STATES = ("awaiting_reply", "needs_correction", "complete", "held")


def campaign_case_for(ctx: Reader, source_id: str) -> dict[str, Any] | None:
    found = ctx.store.newest_case_id("roadmap_revision_reply", source_id, OPEN_CAMPAIGN_STATES)
    return ctx.store.case(found) if found is not None else None


class RoadmapRevisionReply:
    id = "roadmap_revision_reply"
    actions = ("ministry-correction", "close")

    def check(self, incoming: Incoming, ctx: Reader, case: dict[str, Any] | None) -> Outcome:
        mail = incoming.mail
        rules = ROADMAP_RULES.load(ctx.config.rules_dir)
        spec = BODY_FIELDS.load(ctx.config.rules_dir)["roadmap_reply"]
        labels = {f.key: f.label for f in spec}
        text = own_text(mail)
        values = extract(text, spec)
        problems = missing_fields(
            values,
            labels,
            REQUIRED,
            "「・{label}」の記載がございません。■対象となる電源の各項目をご記入ください。",
        )
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
        source = ctx.store.source(source_id) if source_id else None
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
        revised = mentions(text, rules.revised_statement)
        unrevised = mentions(text, rules.unrevised_statement)
        data: dict[str, Any] = {"answer_fields": values, "remarks": []}
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
            on_record = int((source or {}).get("roadmap_revision") or 0)
            revision = previous or on_record + 1
            found, remarks, named = self._file_problems(
                ctx, mail, rules, source, values, code, revision, bool(on_record)
            )
            problems += found
            data |= {"answer": "revised", "revision": named or revision}
            data["remarks"] = [r.as_dict() for r in remarks]
        contact = (source or {}).get("contact_email") or ""
        if not (
            contact.lower() == mail.from_addr.lower()
            or sender_belongs(ctx, mail.from_addr, code or None, target)
        ):
            return forms.held(
                target,
                "差出人が事業者の登録連絡先・ドメインと一致しません",
                problems=problems,
                data=data,
            )
        if self._sent_here_instead_of_the_ministry(target, mail):
            assert target is not None
            return self._kept_for_the_ministry(target, mail)
        outcome = forms.receipt_or_correction(
            ctx,
            incoming,
            problems,
            data,
            next_steps=NEXT_STEPS.get(data.get("answer") or "", ""),
            wrong_mailbox=incoming.classification.wrong_mailbox,
            attachment_list=[a.filename for a in mail.attachments],
            operator_code=code or None,
        )
        outcome.source_id = source_id or None
        if target is not None and case is None:
            outcome.attach_to = target["id"]
        return outcome

    @staticmethod
    def _sent_here_instead_of_the_ministry(target: dict[str, Any] | None, mail: Any) -> bool:
        """A roadmap mailed again after the desk accepted the revised one, or after the ministry
        asked an 「改訂なし」 provider to revise: the ministry's correction (seed 004 §3.1.3–3.1.4),
        which goes back to 資源エネルギー庁, not here."""
        if not (target and target["status"] == Status.COMPLETE and spreadsheets(mail)):
            return False
        answer = target["data"].get("answer")
        return answer == "revised" or bool(
            answer == "unrevised" and target["data"].get("ministry_correction")
        )

    @staticmethod
    def _kept_for_the_ministry(target: dict[str, Any], mail: Any) -> Outcome:
        """「修正後の脱炭素化ロードマップを資源エネルギー庁に再提出してください。」 (seed 004 §3.1.4):
        kept on the case for staff, and the sender told where it belongs."""
        names = [a.filename for a in mail.attachments]
        return Outcome(
            status=Status.COMPLETE,
            data={
                "sent_here_for_the_ministry": [
                    *target["data"].get("sent_here_for_the_ministry", []),
                    *names,
                ]
            },
            replies=[
                Reply(
                    "roadmap_to_ministry",
                    "roadmap_to_ministry",
                    {
                        "attachment_names": names,
                        "revision": target["data"].get("revision"),
                        "answer": target["data"].get("answer"),
                    },
                )
            ],
            events=[("roadmap_sent_here_for_the_ministry", {"attachments": names})],
            attach_to=target["id"],
        )

    @staticmethod
    def _file_problems(
        ctx: Reader,
        mail: Any,
        rules: Any,
        source: dict[str, Any] | None,
        values: dict[str, str],
        code: str,
        revision: int,
        revision_known: bool,
    ) -> tuple[list[Problem], list[Problem], int | None]:
        """The attachment, its name (表3-2) and its sheet (図3-3): (problems, staff remarks,
        the 改訂回数 the accepted name carries). An unknown source hides none of it: the name is
        then checked against what the body says."""
        sheets = spreadsheets(mail)
        if not sheets:
            return (
                [
                    Problem(
                        "添付ファイル",
                        "改訂後の脱炭素化ロードマップ（.xlsx 形式）が添付されておりません。",
                    )
                ],
                [],
                None,
            )
        attachment = sheets[0]
        limits = Limits(max_bytes=ctx.config.limits.max_attachment_bytes)
        opened = attachment.opened
        if opened is not None and (opened.limits != limits or opened.problems):
            opened = None  # read again here, so that a refusal names its step as always
        unsafe = [] if opened is not None else inspect(attachment.filename, attachment.data, limits)
        if unsafe:
            return [Problem("添付ファイル", p.message) for p in unsafe], [], None
        if source is not None:
            year, owner, name = (
                int(source["auction_year"] or 0),
                source["operator_code"],
                source["name"] or "",
            )
        else:
            year = fields.parse_fiscal_year(values.get("auction_year")) or 0
            owner, name = code, (values.get("source_name") or "").strip()
        named = file_name_problems(
            rules,
            attachment.filename,
            year,
            owner,
            name,
            revision,
            revision_known=revision_known,
        )
        accepted = None if named.problems else named.revision
        if opened is not None:
            grids, failure = list(opened.grids), None
        else:
            grids, failure = load_grids(attachment.data, attachment.filename)
        if failure:
            return [*named.problems, Problem("添付ファイル", failure.message)], named.remarks, None
        return named.problems + sheet_problems(rules, grids), named.remarks, accepted

    def reminder(self, case: dict[str, Any], today: date, ctx: Reader) -> tuple[str, Reply] | None:
        """While the answer is awaited: once shortly before the campaign deadline
        (`reminder_business_days_before_deadline`, rules/roadmap.toml) and once after it.
        Returns the occasion (reminded once each) and the mail."""
        deadline_text = case["data"].get("deadline")
        src = ctx.store.source(case.get("source_id") or "")
        if not deadline_text or src is None:
            return None
        rules = ROADMAP_RULES.load(ctx.config.rules_dir)
        deadline = date.fromisoformat(deadline_text)
        left = ctx.calendar.business_days_between(today, deadline)
        if today > deadline:
            occasion = f"roadmap:overdue:{deadline_text}"
        elif left <= rules.reminder_business_days_before_deadline:
            occasion = f"roadmap:before:{deadline_text}"
        else:
            return None
        context = {"source": src, "deadline": deadline, "overdue": today > deadline}
        return occasion, Reply("roadmap_reminder", "roadmap_reminder", context, window=True)

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Reader
    ) -> Outcome:
        if action == "close":
            return Outcome(status=Status.CLOSED, events=[("closed", {"reason": reason or ""})])
        if action != "ministry-correction":
            raise DecisionError(
                f"{action}: not an action here (use: {', '.join(self.actions)}; the assessment is `mailbot assess roadmap`)"
            )
        if case["data"].get("answer") is None or case["status"] == Status.CLOSED:
            raise DecisionError(
                f"case is {case['status']}: the ministry's request follows an answer and comes"
                " before the assessment"
            )
        return Outcome(
            status=case["status"],
            data={"ministry_correction": True, "ministry_request": reason or ""},
            events=[("ministry_correction", {"request": reason or ""})],
        )
