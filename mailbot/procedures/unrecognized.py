"""Mail that matches no procedure: a row in the staff queue and, at most once per sender per
day, a guidance reply listing the subjects we accept."""

from __future__ import annotations

from typing import Any

from mailbot.context import Reader
from mailbot.errors import DecisionError
from mailbot.outcome import Incoming, Outcome, Reply
from mailbot.states import Status


class Unrecognized:
    id = "unrecognized"
    actions = ("close",)

    def check(self, incoming: Incoming, ctx: Reader, case: dict[str, Any] | None) -> Outcome:
        now = ctx.now()
        start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        sender = incoming.mail.from_addr
        sent = ctx.store.auto_replies_since(sender, start_of_day, kind="guidance")
        replies = []
        events: list[tuple[str, dict[str, Any]]] = []
        if sent < ctx.routing.guidance_per_sender_per_day:
            replies.append(Reply(kind="guidance", template="guidance"))
        else:
            events.append(("guidance_skipped", {"why": "already sent to this sender today"}))
        return Outcome(
            status=Status.UNRECOGNIZED,
            replies=replies,
            events=events,
            reason="件名から手続きを特定できません",
        )

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Reader
    ) -> Outcome:
        if action != "close":
            raise DecisionError(f"{action}: not an action for an unrecognized mail (use: close)")
        return Outcome(status=Status.CLOSED, events=[("closed", {"reason": reason or ""})])
