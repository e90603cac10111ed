"""What one mail (or one staff decision) changes, as a value: the store writes it in one call.

The stages before the store only read while they decide; `Store.apply(effect)` then writes the
case change, its events, the planned mails and the stored mail's finish in one savepoint, so
nothing of a mail is ever half written. A new case's id is reserved while deciding
(`Store.next_case_id`, stable because the deciding runs inside the writer's transaction), so
its replies can carry their case number before the case exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mailbot.mail.shown import shown_of

if TYPE_CHECKING:
    from mailbot.mail import Mail


@dataclass(frozen=True)
class CaseWrite:
    """A case to create (`new`, under the reserved `case_id`) or to update with `fields`."""

    case_id: int
    fields: dict[str, Any]
    new: bool = False


@dataclass(frozen=True)
class Event:
    case_id: int
    actor: str
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PlannedMail:
    """One outbox row, rendered and composed, its Message-ID fixed."""

    case_id: int | None
    kind: str
    message_id: str
    recipient: str
    subject: str
    raw: bytes
    send_at: datetime


@dataclass(frozen=True)
class MessageFinish:
    """How the stored raw mail ends (`messages` row), with what the parse read from it: the
    search row's text, the thread a later reply answers in, and what staff are shown of it
    (`shown`, mail/shown.py)."""

    message_row: int
    state: str
    case_id: int | None
    outcome: str
    message_id: str | None = None
    sender: str | None = None
    subject: str | None = None
    text: str | None = None
    attachment_names: tuple[str, ...] = ()
    digest: str | None = None
    references: tuple[str, ...] | None = None
    sender_name: str | None = None
    shown: str | None = None

    @classmethod
    def done(
        cls, message_row: int, case_id: int | None, outcome: str, mail: Mail, digest: str | None
    ) -> MessageFinish:
        """A mail processed to its end, with what its parse read."""
        return cls(
            message_row,
            "done",
            case_id,
            outcome,
            message_id=mail.message_id,
            sender=mail.from_addr,
            subject=mail.subject,
            text=mail.text,
            attachment_names=tuple(a.filename for a in mail.attachments),
            digest=digest,
            references=mail.references,
            sender_name=mail.from_name,
            shown=shown_of(mail),
        )


@dataclass
class Effect:
    """Everything one mail or decision writes, in the order the store writes it."""

    now: datetime
    case: CaseWrite | None = None
    register_operator: dict[str, Any] | None = None
    register_grid_code: tuple[str, str, str, str] | None = None
    """(事業者コード, 発電所名略称, エリア, the issued 系統コード)"""
    events: list[Event] = field(default_factory=list)
    mails: list[PlannedMail] = field(default_factory=list)
    bounced: list[tuple[str, str]] = field(default_factory=list)
    message: MessageFinish | None = None

    def event(self, case_id: int, actor: str, kind: str, /, **detail: Any) -> None:
        self.events.append(Event(case_id, actor, kind, detail))

    def planned_to(self, recipient: str) -> int:
        """Mails to `recipient` this effect already plans: the daily budget of automatic
        replies counts them with the outbox rows the store holds."""
        return sum(1 for m in self.mails if m.recipient == recipient)


def case_after(before: dict[str, Any] | None, write: CaseWrite, now: datetime) -> dict[str, Any]:
    """The case as `Store.case` will read it once `write` is applied: what a reply renders
    from, computed before anything is written (dates as ISO text, data through JSON)."""
    out: dict[str, Any] = dict(before or {})
    if before is None:
        out |= {
            "id": write.case_id,
            "operator_code": None,
            "source_id": None,
            "sender": None,
            "sender_name": None,
            "mailbox": None,
            "subject": None,
            "completed_at": None,
            "due": None,
            "problems": [],
            "data": {},
            "reason": None,
            "owner": None,
            "version": 1,
            "received_at": now.isoformat(timespec="seconds"),
        }
    else:
        out["version"] = int(before.get("version") or 1) + 1
    for key, value in write.fields.items():
        if key in ("problems", "data"):
            value = json.loads(json.dumps(value, ensure_ascii=False, default=str))
        elif key in ("received_at", "completed_at", "due") and not isinstance(value, str | None):
            value = value.isoformat()
        out[key] = value
    out["updated_at"] = now.isoformat(timespec="seconds")
    return out
