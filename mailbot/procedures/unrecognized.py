"""Mail that matches no procedure: a row in the staff queue and, at most once per sender per
day, a guidance reply listing the subjects we accept — or, for a request to code@ to change a
code's registered contact details, where that change is made (`contact_change`, seed 000), or,
when the mail raises a topic seed 004 answers (`mailbot.longterm.topics`: evidence sent before
the desk asked for it, a change of the supply start asked for by mail), a reply that says what
the seed says of it."""

from __future__ import annotations

from typing import Any

from mailbot.context import Reader
from mailbot.errors import DecisionError
from mailbot.longterm.topics import TOPIC_RULES, topics_raised
from mailbot.outcome import Incoming, Outcome, Reply
from mailbot.procedures.common import own_text
from mailbot.procedures.contact_change import CONTACT_CHANGE_RULES, asks_contact_change
from mailbot.states import Status

REASON = "件名から手続きを特定できません"
CONTACT_CHANGE_REASON = "登録情報（担当者・連絡先等）の変更依頼: 広域機関システムでの手続きを案内"
# an unrecognised mail's one reply a day (SPEC §1), whichever of these it is
GUIDANCE_KINDS = ("guidance", "topic_guidance", "contact_change")


class Unrecognized:
    id = "unrecognized"
    actions = ("close",)

    def check(self, incoming: Incoming, ctx: Reader, case: dict[str, Any] | None) -> Outcome:
        now = ctx.now()
        start_of_day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        mail = incoming.mail
        mailbox = incoming.mailbox_address.rsplit("@", 1)[0].lower()
        contact_change = asks_contact_change(
            CONTACT_CHANGE_RULES.load(ctx.config.rules_dir), mail, mailbox
        )
        topics = (
            []
            if contact_change
            else topics_raised(
                TOPIC_RULES.load(ctx.config.rules_dir), mail.subject or "", own_text(mail)
            )
        )
        if contact_change:
            kind, reason = "contact_change", CONTACT_CHANGE_REASON
        elif topics:
            kind = "topic_guidance"
            reason = REASON + "（" + "・".join(t.name for t in topics) + "）"
        else:
            kind, reason = "guidance", REASON
        sent = sum(  # one reply a day, not one of each kind (SPEC §1)
            ctx.store.auto_replies_since(mail.from_addr, start_of_day, kind=k)
            for k in GUIDANCE_KINDS
        )
        replies = []
        events: list[tuple[str, dict[str, Any]]] = []
        if sent < ctx.routing.guidance_per_sender_per_day:
            context = {"topics": [{"id": t.id, "name": t.name} for t in topics]}
            replies.append(Reply(kind=kind, template=kind, context=context if topics else {}))
        else:
            events.append((f"{kind}_skipped", {"why": "already sent to this sender today"}))
        if topics:
            events.append(("topics_raised", {"topics": [t.id for t in topics]}))
        return Outcome(status=Status.UNRECOGNIZED, replies=replies, events=events, reason=reason)

    def decide(
        self, case: dict[str, Any], action: str, arg: str | None, reason: str | None, ctx: Reader
    ) -> Outcome:
        if action != "close":
            raise DecisionError(f"{action}: not an action for an unrecognized mail (use: close)")
        return Outcome(status=Status.CLOSED, events=[("closed", {"reason": reason or ""})])
