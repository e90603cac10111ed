"""Issuing a supply-start アセスメント結果通知 (seed 004 §2.1.2, 図2-6): assess, open the notice's
case, record the notice (what objections are matched against) and the source's new start in the
register, render the PDF and plan the mail inside the sending window, all in one transaction.

Staff's arguments are checked against the register first: the change assessed starts from the
registered 供給力提供開始時期, a change is assessed (and its notice mailed) once, and a
re-assessment follows an accepted objection to the latest notice.

The objection deadline is set when the mail actually goes out (mailbot/outbox/notified.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from mailbot.context import Context
from mailbot.longterm.assessment import AssessmentError, SupplyStartAssessment, assess_supply_start
from mailbot.longterm.market import MARKET_RULES
from mailbot.longterm.notice_mail import (
    NOTES,
    NoticeRequest,
    next_notice_number,
    plan_notice,
    source_rows,
)
from mailbot.longterm.notice_pdf import NoticeDocument
from mailbot.store.registers import operator as find_operator
from mailbot.store.registers import source as find_source

log = logging.getLogger(__name__)

PROCEDURE = "supply_start_assessment"
TITLE = "アセスメント結果通知書（供給力提供開始時期の遵守）"
SUBJECT_LINE = "供給力提供開始時期の遵守"
OBJECTION_SUBJECT = "供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立"


@dataclass(frozen=True)
class IssuedNotice:
    case_id: int
    notice_id: int
    number: str
    assessment: SupplyStartAssessment
    example_market: bool


def detail_rows(a: SupplyStartAssessment, applied_on: date | None) -> tuple[tuple[str, ...], ...]:
    """図2-6's ■アセスメント結果詳細: 変更申請日, 運用年月, 変更区分 and the effect on each curve.
    No money: the seed's notice shows none (the penalty is for staff, `mailbot assess`)."""
    rows: list[tuple[str, ...]] = [
        ("変更申請日", f"{a.changed_on:%Y/%m/%d}"),
        ("運用年月", f"{applied_on:%Y/%m/%d}" if applied_on else "－"),
        ("変更区分", a.direction),
    ]
    if a.held_at_earliest:
        rows.append(
            (
                "制度適用期間",
                f"{a.period_start_fy}年度から（{a.period_start_fy - 1}年度以前への"
                "制度適用期間の前倒しはできません）",
            )
        )
    if a.impacts:
        rows.append(("供給曲線への影響有無", "対象実需給年度", "影響有無"))
        for impact in a.impacts:
            rows.append(
                (
                    impact.auction_label,
                    f"{impact.delivery_year}年度",
                    "影響あり" if impact.affected else "影響なし",
                )
            )
    return tuple(rows)


def _notice_text(a: SupplyStartAssessment, rows: tuple[tuple[str, ...], ...]) -> str:
    lines = [f"■アセスメント結果\n　{a.result}", "", "■アセスメント結果詳細"]
    for row in rows:
        lines.append("　" + "：".join(row[:2]) + ("　" + "　".join(row[2:]) if row[2:] else ""))
    lines += [
        "",
        "■対象電源情報",
        f"　電源等識別番号：{a.source_id}",
        f"　エリア：{a.area}",
        f"　応札年度：{a.auction_year}年度",
        f"　契約容量(kW)：{a.capacity_kw:,}",
    ]
    return "\n".join(lines)


def issue_supply_start_notice(
    ctx: Context,
    source_id: str,
    from_fy: int,
    to_fy: int,
    changed_on: date,
    applied_on: date | None = None,
    by: str = "staff",
    reassessment: bool = False,
    replaced_kw: int = 0,
) -> IssuedNotice:
    source = find_source(ctx.store, source_id)
    if source is None:
        raise AssessmentError(f"電源等識別番号 {source_id} is not in the sources register")
    market = MARKET_RULES.load(ctx.config.rules_dir)
    assessment = assess_supply_start(market, source, from_fy, to_fy, changed_on, replaced_kw)
    if market.example:
        log.warning("rules/market.toml carries example values: replace them before real use")
    op = find_operator(ctx.store, source["operator_code"])
    operator_name = source.get("operator_name") or (op["name"] if op else "")
    now = ctx.now()
    rows = detail_rows(assessment, applied_on)
    with ctx.store.transaction():
        _check_against_register(ctx, source_id, from_fy, to_fy, changed_on, reassessment)
        ctx.store.set_supply_start(source_id, to_fy, now)
        number = next_notice_number(ctx)
        title = TITLE.replace("）", "・再審査）") if reassessment else TITLE
        data: dict[str, Any] = assessment.as_data() | {
            "notice_number": number,
            "applied_on": applied_on.isoformat() if applied_on else None,
            "example_market": market.example,
            "reassessment": reassessment,
        }
        case_id, notice_id = plan_notice(
            ctx,
            NoticeRequest(
                case_id=None,
                procedure=PROCEDURE,
                mail_kind="reassessment_notice" if reassessment else "assessment_notice",
                notice_kind="supply_start",
                source=source,
                operator_name=operator_name,
                result=assessment.result,
                document=NoticeDocument(
                    title=title,
                    number=number,
                    issued_on=ctx.calendar.window_open(now).date(),
                    operator_code=source["operator_code"],
                    operator_name=operator_name,
                    result_heading="アセスメント結果",
                    result=assessment.result,
                    detail_heading="アセスメント結果詳細",
                    detail=rows,
                    source_rows=source_rows(source),
                    notes=NOTES,
                ),
                subject_line=SUBJECT_LINE,
                notice_text=_notice_text(assessment, rows),
                objection_subject=OBJECTION_SUBJECT,
                data=data,
                actor=f"staff:{by}",
                events=[
                    (
                        "supply_start_registered",
                        {"source_id": source_id, "from_fy": from_fy, "to_fy": to_fy},
                    )
                ],
            ),
        )
    return IssuedNotice(case_id, notice_id, number, assessment, market.example)


def _check_against_register(
    ctx: Context, source_id: str, from_fy: int, to_fy: int, changed_on: date, reassessment: bool
) -> None:
    """Refuses (AssessmentError, exit 5) what does not fit the register: an assessment whose
    start before the change is not the registered 供給力提供開始時期 (the provider registered
    the change in the 容量市場システム, seed 004 §2.1.1, and the assessment follows it); the
    same change (start before and after, 変更申請日) assessed again; a re-assessment that follows
    no accepted objection to the latest notice, or is of another change than that notice's.
    Runs inside the notice's transaction, so two runs at once cannot both pass it."""
    notices = ctx.store.notices_of("supply_start", source_id)
    if reassessment:
        if not notices:
            raise AssessmentError(
                f"{source_id} has no supply-start notice: a re-assessment follows one"
            )
        latest = notices[-1]
        number = latest["data"].get("notice_number", "")
        if not ctx.store.objection_accepted(latest["id"]):
            raise AssessmentError(
                f"no objection to 通知No {number} ({source_id}) was accepted: a re-assessment"
                " follows an accepted one (decide CASE objection-accepted)"
            )
        before, after = latest["data"].get("from_fy"), latest["data"].get("to_fy")
        if (from_fy, to_fy) != (before, after):
            raise AssessmentError(
                f"通知No {number} assessed the change FY{before}→FY{after}: re-assess that one"
                f" (--from-fy {before} --to-fy {after})"
            )
        return
    for notice in notices:
        d = notice["data"]
        if (d.get("from_fy"), d.get("to_fy"), d.get("changed_on")) == (
            from_fy,
            to_fy,
            changed_on.isoformat(),
        ):
            raise AssessmentError(
                f"{source_id}: the change FY{from_fy}→FY{to_fy} of {changed_on:%Y/%m/%d} was"
                f" assessed already (通知No {d.get('notice_number', '')}); a second notice follows"
                " only an accepted objection (--reassessment)"
            )
    source = find_source(ctx.store, source_id)
    registered = (source or {}).get("supply_start_fy")
    if registered is not None and from_fy != int(registered):
        raise AssessmentError(
            f"--from-fy {from_fy} is not the registered 供給力提供開始時期 of {source_id}:"
            f" FY{registered} (the start before the change)"
        )
