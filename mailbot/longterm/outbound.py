"""Mails the operator starts: the roadmap campaign (改訂要否の確認, seed 004 §3.1.1) and the
mismatch inquiry (不一致に係る問合せ, §3.1.9). Each target gets a case that waits for the answer,
so the answer is matched by thread and the silence is reminded.

Repeating a campaign for the same fiscal year plans nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mailbot.context import Context
from mailbot.errors import MailbotError
from mailbot.longterm.roadmap import ROADMAP_RULES, expected_file_name
from mailbot.outbox.planner import Thread, apply_outcome
from mailbot.outcome import Outcome, Reply
from mailbot.states import Status
from mailbot.store.registers import is_roadmap_category
from mailbot.store.registers import source as find_source

LONG_MAILBOX = "youryou_rikuase_long"


@dataclass(frozen=True)
class CampaignResult:
    planned: int
    already: int
    skipped: list[str]


def fiscal_year(day: date) -> int:
    return day.year if day.month >= 4 else day.year - 1


def _thread(ctx: Context, src: dict[str, Any]) -> Thread:
    return Thread(
        recipient=src["contact_email"],
        recipient_name=src.get("contact_person") or "",
        mailbox_address=ctx.address_for(LONG_MAILBOX),
    )


def _open_case(
    ctx: Context,
    outcome: Outcome,
    procedure: str,
    src: dict[str, Any],
    subject: str,
    by: str,
    now: datetime,
) -> int:
    """A case we open by writing first: the source's contact is its participant."""
    return apply_outcome(
        ctx,
        outcome,
        case_id=None,
        procedure=procedure,
        thread=_thread(ctx, src),
        actor=f"staff:{by}",
        now=now,
        new_case_fields={
            "sender": src["contact_email"],
            "mailbox": ctx.address_for(LONG_MAILBOX),
            "subject": subject,
            "received_at": now.isoformat(timespec="seconds"),
        },
    )


def roadmap_targets(ctx: Context) -> list[dict[str, Any]]:
    """Sources marked ロードマップ対象 (安定電源 of the kinds in seed 004 表1-1)."""
    return [r for r in ctx.store.roadmap_sources() if is_roadmap_category(r["category"])]


def start_roadmap_campaign(
    ctx: Context, deadline: date, year: int | None = None, by: str = "staff"
) -> CampaignResult:
    now = ctx.now()
    year = year or fiscal_year(now.date())
    rules = ROADMAP_RULES.load(ctx.config.rules_dir)
    planned = already = 0
    skipped: list[str] = []
    with ctx.store.transaction():
        for src in roadmap_targets(ctx):
            if ctx.store.campaign_case_exists(src["source_id"], year):
                already += 1
                continue
            if not src.get("contact_email"):
                skipped.append(f"{src['source_id']}: no 連絡者メール")
                continue
            name = expected_file_name(
                rules,
                int(src["auction_year"] or 0),
                src["operator_code"],
                src["name"] or "",
                int(src["roadmap_revision"] or 0) + 1,
            )
            outcome = Outcome(
                status=Status.AWAITING_REPLY,
                operator_code=src["operator_code"],
                source_id=src["source_id"],
                due=deadline,
                data={"campaign_year": year, "deadline": deadline.isoformat()},
                replies=[
                    Reply(
                        "roadmap_inquiry",
                        "roadmap_inquiry",
                        {
                            "source": src,
                            "deadline": deadline,
                            "expected_file_name": name,
                        },
                        window=True,
                        in_reply=False,
                    )
                ],
            )
            _open_case(
                ctx,
                outcome,
                "roadmap_revision_reply",
                src,
                f"改訂要否の確認 {year}年度 {src['source_id']}",
                by,
                now,
            )
            planned += 1
    return CampaignResult(planned, already, skipped)


def unanswered_campaign(ctx: Context, year: int | None = None) -> list[dict[str, Any]]:
    """Roadmap targets asked this campaign year that have not answered: the staff's list of
    non-responders (with the reminder already sent, if any)."""
    year = year or fiscal_year(ctx.now().date())
    return ctx.store.unanswered_campaign(Status.AWAITING_REPLY, year)


def start_mismatch_inquiry(ctx: Context, source_id: str, text: str, by: str = "staff") -> int:
    src = find_source(ctx.store, source_id)
    if src is None:
        raise MailbotError(
            f"no contracted source {source_id} (load it with `mailbot sources import`)"
        )
    if not text.strip():
        raise MailbotError("the inquiry needs --text: what does not match")
    rules = ROADMAP_RULES.load(ctx.config.rules_dir)
    now = ctx.now()
    due = ctx.business_days_after(now.date(), rules.mismatch_reminder_business_days)
    outcome = Outcome(
        status=Status.AWAITING_REPLY,
        operator_code=src["operator_code"],
        source_id=source_id,
        due=due,
        data={"inquiry": text},
        replies=[
            Reply(
                "mismatch_inquiry",
                "mismatch_inquiry",
                {"source": src, "text": text},
                window=True,
                in_reply=False,
            )
        ],
    )
    with ctx.store.transaction():
        return _open_case(
            ctx, outcome, "mismatch_reply", src, f"不一致に係る問合せ {source_id}", by, now
        )
