"""Case states and the transitions allowed between them, written down once.

A case is a small state machine (Salmon's idea, without its globals). Every change goes
through `check_transition`, and the store records each one as an event.
"""

from __future__ import annotations

from enum import StrEnum

from mailbot.errors import MailbotError


class Status(StrEnum):
    RECEIVED = "received"
    NEEDS_CORRECTION = "needs_correction"
    COMPLETE = "complete"
    HELD = "held"
    UNRECOGNIZED = "unrecognized"
    QUARANTINED = "quarantined"
    AWAITING_REPLY = "awaiting_reply"
    DECIDED = "decided"
    CLOSED = "closed"
    IGNORED = "ignored"


S = Status

LABELS: dict[Status, str] = {
    Status.RECEIVED: "受付済",
    Status.NEEDS_CORRECTION: "修正依頼中",
    Status.COMPLETE: "確認待ち",
    Status.HELD: "保留（担当者確認）",
    Status.UNRECOGNIZED: "手続き不明",
    Status.QUARANTINED: "隔離",
    Status.AWAITING_REPLY: "回答待ち",
    Status.DECIDED: "決定済",
    Status.CLOSED: "完了",
    Status.IGNORED: "対応不要",
}
OPEN = frozenset(
    {
        S.RECEIVED,
        S.NEEDS_CORRECTION,
        S.COMPLETE,
        S.HELD,
        S.UNRECOGNIZED,
        S.QUARANTINED,
        S.AWAITING_REPLY,
        S.DECIDED,
    }
)

TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.RECEIVED: frozenset(OPEN | {S.CLOSED, S.IGNORED}),
    S.NEEDS_CORRECTION: frozenset({S.NEEDS_CORRECTION, S.COMPLETE, S.HELD, S.DECIDED, S.CLOSED}),
    S.COMPLETE: frozenset({S.COMPLETE, S.NEEDS_CORRECTION, S.HELD, S.DECIDED, S.CLOSED}),
    S.HELD: frozenset({S.HELD, S.NEEDS_CORRECTION, S.COMPLETE, S.DECIDED, S.CLOSED}),
    S.UNRECOGNIZED: frozenset({S.UNRECOGNIZED, S.CLOSED}),
    S.QUARANTINED: frozenset({S.QUARANTINED, S.CLOSED}),
    S.AWAITING_REPLY: frozenset(
        {S.AWAITING_REPLY, S.COMPLETE, S.NEEDS_CORRECTION, S.HELD, S.DECIDED, S.CLOSED}
    ),
    S.DECIDED: frozenset({S.DECIDED, S.AWAITING_REPLY, S.COMPLETE, S.CLOSED}),
    S.CLOSED: frozenset({S.CLOSED}),
    S.IGNORED: frozenset({S.IGNORED}),
}


class TransitionError(MailbotError):
    pass


def check_transition(old: str, new: str) -> None:
    if Status(new) not in TRANSITIONS[Status(old)]:
        raise TransitionError(f"a case cannot go from {old} to {new}")
