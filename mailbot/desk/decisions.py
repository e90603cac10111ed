"""Staff decisions (`mailbot decide`, and rows of the report workbook): the procedure says what
follows, the planner writes it, all in one transaction with who decided recorded."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from mailbot.context import Context
from mailbot.errors import DecisionError
from mailbot.outbox.planner import case_thread, outcome_effect
from mailbot.procedures import registry
from mailbot.states import ACTIONS, action_id, action_label, allowed_actions, status_label
from mailbot.text import format_case_number


@dataclass(frozen=True)
class DecisionResult:
    case_id: int
    action: str
    status: str
    mails: int
    issued: str = ""


def staff_name(explicit: str | None = None) -> str:
    return explicit or os.environ.get("MAILBOT_STAFF") or getpass.getuser()


class StaleCase(DecisionError):
    """The case changed after staff read it: the refusal carries the versions, so each desk
    (CLI, report, web page) can say it in its own words."""

    def __init__(self, case_id: int, expected: int, actual: int, since: str) -> None:
        super().__init__(
            f"{format_case_number(case_id)} changed since {since}"
            f" (version {expected} → {actual}): not applied"
        )
        self.case_id, self.expected, self.actual = case_id, expected, actual


def current_case(ctx: Context, case_id: int, expected_version: int | None, *, since: str) -> dict:
    """The case as stored now, refused when it is missing or changed after staff read it at
    `expected_version` (`since`: where they read it, the report or a page)."""
    case = ctx.store.case(case_id)
    if case is None:
        raise DecisionError(f"no case {format_case_number(case_id)}")
    if expected_version is not None and case["version"] != expected_version:
        raise StaleCase(case_id, expected_version, case["version"], since)
    return case


def decide(
    ctx: Context,
    case_id: int,
    action: str,
    arg: str | None = None,
    reason: str | None = None,
    *,
    by: str | None = None,
    expected_version: int | None = None,
    reason_hint: str = "--reason で理由を指定してください",
) -> DecisionResult:
    """`reason_hint` says where staff give the reason (`--reason`, or the report's comment
    column), so a refusal names the place they can fix it."""
    now = ctx.now()
    actor = f"staff:{staff_name(by)}"
    with ctx.store.transaction():
        case = current_case(ctx, case_id, expected_version, since="the report was made")
        handler = registry().get(case["procedure"])
        if handler is None:
            raise DecisionError(f"no decisions for procedure {case['procedure']}")
        action = action_id(action)
        refuse_out_of_state(ctx, case, tuple(handler.actions), action, reason, reason_hint)
        outcome = handler.decide(case, action, arg, reason, ctx.for_handlers())
        effect = outcome_effect(
            ctx,
            outcome,
            case_id=case_id,
            procedure=case["procedure"],
            thread=case_thread(ctx, case_id),
            actor=actor,
            now=now,
        )
        effect.event(case_id, actor, "decision", action=action, arg=arg, reason=reason)
        planned = ctx.store.apply(effect)
    return DecisionResult(case_id, action, outcome.status, len(planned), _issued(outcome.data))


def _issued(data: dict) -> str:
    """What a decision gave the participant, as staff name it (for `decide`'s answer)."""
    if data.get("issued_code"):
        return f"事業者コード {data['issued_code']}"
    if data.get("issued_plant_name"):
        grid = f"、系統コード {data['issued_grid_code']}" if data.get("issued_grid_code") else ""
        return f"発電所名略称 {data['issued_plant_name']}{grid}"
    return ""


def refuse_out_of_state(
    ctx: Context,
    case: dict,
    actions: tuple[str, ...],
    action: str,
    reason: str | None,
    reason_hint: str,
) -> None:
    """The refusals staff meet, in their words, before the procedure looks at the case."""
    name = ctx.routing.name_of(case["procedure"])
    if not actions:
        return  # nothing is decided on such a case; its handler says what to do instead
    if action not in actions:
        offered = "、".join(action_label(a) for a in actions) or "なし"
        raise DecisionError(f"「{action}」は{name}の案件では選べません（選べる判断: {offered}）")
    if action not in allowed_actions(actions, case["status"]):
        raise DecisionError(
            f"状態が「{status_label(case['status'])}」の案件では"
            f"「{action_label(action)}」は選べません"
        )
    if ACTIONS.get(action, ("", frozenset(), False))[2] and not (reason or "").strip():
        raise DecisionError(
            f"「{action_label(action)}」には理由が必要です（{reason_hint}。"
            "理由は事業者へのメールに記載されます）"
        )
