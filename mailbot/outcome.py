"""The values a procedure check returns: Problem, Reply, Outcome, and the Incoming it reads.

Handlers never write to the store and never send: the pipeline applies an Outcome in one
transaction (case change, events, planned replies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from mailbot.mail.compose import OutgoingAttachment

if TYPE_CHECKING:
    from mailbot.mail import Mail
    from mailbot.routing import Classification


MESSAGE_LIMIT = 400


@dataclass(frozen=True)
class Problem:
    """One thing to fix. `field` is the label as the seed's form or template writes it. A
    message quotes what the participant wrote (「記載：…」), so it is cut at MESSAGE_LIMIT: a
    2 MB line must not go whole into the correction mail and the database."""

    field: str
    message: str

    def __post_init__(self) -> None:
        if len(self.message) > MESSAGE_LIMIT:
            object.__setattr__(self, "message", self.message[: MESSAGE_LIMIT - 1] + "…")

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def remarks_of(case: dict[str, Any]) -> list[dict[str, str]]:
    """Staff-only remarks (`field`, `message`) kept in the case's data: what the seeds do not
    ask of the participant but staff may want to look at. Never part of a correction request."""
    return list((case.get("data") or {}).get("remarks") or [])


@dataclass(frozen=True)
class Reply:
    """A mail to plan. `window` mails (notices, reminders) wait for the sending window;
    receipts and correction requests go at once. `to` replaces the thread's recipient; `cc`
    are copied (Cc header and SMTP envelope)."""

    kind: str
    template: str
    context: dict[str, Any] = field(default_factory=dict)
    to: str | None = None
    cc: tuple[str, ...] = ()
    attachments: tuple[OutgoingAttachment, ...] = ()
    window: bool = False
    in_reply: bool = True


@dataclass
class Outcome:
    status: str
    problems: list[Problem] = field(default_factory=list)
    operator_code: str | None = None
    source_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    replies: list[Reply] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reason: str | None = None
    complete_on: date | None = None
    due: date | None = None
    register_operator: dict[str, Any] | None = None
    register_grid_code: tuple[str, str, str, str] | None = None
    """(事業者コード, 発電所名略称, エリア, the issued 系統コード)"""
    new_case: bool = False
    attach_to: int | None = None
    linked_cases: tuple[str, list[int]] | None = None
    """(event kind, other case ids): each of those cases gets that event naming this case (as
    MB-…), so a link shows in both histories (the same company's second application)."""


@dataclass(frozen=True)
class Incoming:
    """A mail on its way to a handler, with what classification found."""

    mail: Mail
    classification: Classification
    received_at: datetime
    mailbox_address: str
