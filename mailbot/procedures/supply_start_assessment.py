"""A participant's reply to an アセスメント結果通知 mail that is not an objection (the objection has
its own subject and procedure): kept on the notice's case for staff, answered with a plain receipt.

The notice itself is issued by staff (`mailbot assess supply-start`, mailbot/longterm/supply_start.py).
"""

from __future__ import annotations

from typing import Any

from mailbot.context import Reader
from mailbot.errors import DecisionError
from mailbot.outcome import Incoming, Outcome
from mailbot.procedures import forms


class SupplyStartAssessment:
    id = "supply_start_assessment"
    actions: tuple[str, ...] = ()

    def check(self, incoming: Incoming, ctx: Reader, case: dict[str, Any] | None) -> Outcome:
        return forms.held(None, "アセスメント結果通知への返信（異議申立の件名ではありません）")

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Reader
    ) -> Outcome:
        raise DecisionError(
            "a notice is not decided: issue a new one with `mailbot assess supply-start`"
        )
