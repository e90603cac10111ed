"""The roadmap assessment (脱炭素化ロードマップの遵守, seed 004 §3.1.5, 図3-4): staff record the
result of a provider's answered case; mailbot mails the notice with its PDF inside the sending
window, opens the objection window, and for a revised roadmap that passed reminds the provider
to upload it to the 容量市場システム (the operator cannot do it for them). A passed revision
becomes the source's current R number, so next year's answer must carry R+1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailbot.context import Context
from mailbot.errors import DecisionError
from mailbot.longterm.notice_mail import (
    NOTES,
    NoticeRequest,
    next_notice_number,
    plan_notice,
    source_rows,
)
from mailbot.longterm.notice_pdf import NoticeDocument
from mailbot.longterm.roadmap import ROADMAP_RULES, expected_file_name
from mailbot.states import Status
from mailbot.store.registers import source as find_source
from mailbot.text import format_case_number

TITLE = "アセスメント結果通知書（脱炭素化ロードマップの遵守）"
SUBJECT_LINE = "脱炭素化ロードマップの遵守"
OBJECTION_SUBJECT = "脱炭素化ロードマップの遵守に係るアセスメント結果に対する異議申立"
RESULTS = {"pass": "合格", "合格": "合格", "fail": "不合格", "不合格": "不合格"}


@dataclass(frozen=True)
class IssuedRoadmapNotice:
    case_id: int
    notice_id: int
    number: str
    result: str
    upload_reminder: bool


def issue_roadmap_notice(
    ctx: Context, case_id: int, result: str, by: str = "staff", reassessment: bool = False
) -> IssuedRoadmapNotice:
    outcome = RESULTS.get(result)
    if outcome is None:
        raise DecisionError(f"--result {result!r}: use pass or fail (合格 / 不合格)")
    case = ctx.store.case(case_id)
    number_text = format_case_number(case_id)
    if case is None or case["procedure"] != "roadmap_revision_reply":
        raise DecisionError(
            f"{number_text} is not a roadmap answer (脱炭素化ロードマップの改訂有無の回答)"
        )
    if reassessment:
        if not case["data"].get("notice_number"):
            raise DecisionError(f"{number_text} has no notice yet: a re-assessment follows one")
    elif case["status"] not in (Status.COMPLETE, Status.HELD):
        raise DecisionError(
            f"{number_text} is {case['status']}: the assessment follows a complete answer"
        )
    source = find_source(ctx.store, case["source_id"] or "")
    if source is None:
        raise DecisionError(f"{number_text}: its source {case['source_id']!r} is not registered")
    revised = case["data"].get("answer") == "revised"
    # §3.1.8: whoever revised, by their own answer or at the ministry's request (§3.1.4)
    upload = outcome == "合格" and (revised or bool(case["data"].get("ministry_correction")))
    title = TITLE.replace("）", "・再審査）") if reassessment else TITLE
    with ctx.store.transaction():
        number = next_notice_number(ctx)
        now = ctx.now()
        notice_text = f"■脱炭素化ロードマップ適合結果\n　{outcome}\n\n■対象電源情報\n" + "\n".join(
            f"　{label}：{value}" for label, value in source_rows(source)
        )
        events = []
        if upload:
            revision = latest_revision(source, case)
            ctx.store.set_roadmap_revision(source["source_id"], revision)
            events.append(("roadmap_revision_current", {"revision": revision}))
        notice_case, notice_id = plan_notice(
            ctx,
            NoticeRequest(
                case_id=None if reassessment else case_id,
                procedure="roadmap_revision_reply",
                mail_kind="reassessment_notice" if reassessment else "assessment_notice",
                notice_kind="roadmap",
                source=source,
                operator_name=source.get("operator_name") or "",
                result=outcome,
                document=NoticeDocument(
                    title=title,
                    number=number,
                    issued_on=ctx.calendar.window_open(now).date(),
                    operator_code=source["operator_code"],
                    operator_name=source.get("operator_name") or "",
                    result_heading="脱炭素化ロードマップ適合結果",
                    result=outcome,
                    source_rows=source_rows(source),
                    notes=NOTES,
                ),
                subject_line=SUBJECT_LINE,
                notice_text=notice_text,
                objection_subject=OBJECTION_SUBJECT,
                data={"notice_number": number, "roadmap_result": outcome},
                actor=f"staff:{by}",
                upload_reminder=upload,
                upload_file_name=_latest_file_name(ctx, source, case) if upload else "",
                ministry_corrected=bool(case["data"].get("ministry_correction")),
                events=events,
            ),
        )
    return IssuedRoadmapNotice(notice_case, notice_id, number, outcome, upload)


def latest_revision(source: dict[str, Any], case: dict[str, Any]) -> int:
    """The 改訂回数 of the latest roadmap: the one the revised answer carried, else — an
    「改訂なし」 answer revised at the ministry's request, whose name takes the next 改訂回数
    (seed 004 §3.1.4: 「…ファイル名（ファイル名末尾の改訂回数を含む）を設定してください。」) —
    the source's 改訂回数 on record plus one; R1 for a first revision (表3-2 「R1 （改訂回数1回）」)."""
    return int(case["data"].get("revision") or 0) or int(source.get("roadmap_revision") or 0) + 1


def _latest_file_name(ctx: Context, source: dict[str, Any], case: dict[str, Any]) -> str:
    """The name 表3-4 gives the latest roadmap: L{応札年度}_{事業者コード}_{電源等の名称}_D3_R{n}."""
    rules = ROADMAP_RULES.load(ctx.config.rules_dir)
    return expected_file_name(
        rules,
        int(source.get("auction_year") or 0),
        source["operator_code"],
        source.get("name") or "",
        latest_revision(source, case),
    )
