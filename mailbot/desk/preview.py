"""What a staff action would mail, shown before it is taken: the action runs as it will (the
very `decide` or `reply`), inside a transaction that is then rolled back, and the mails it
planned are read back first. Nothing is kept; the outbox never sees them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailbot.context import Context
from mailbot.mail.parse import parse


@dataclass(frozen=True)
class MailPreview:
    kind: str
    recipient: str
    subject: str
    text: str
    send_at: str
    window: bool


class _Undo(Exception):
    def __init__(self, mails: list[MailPreview]) -> None:
        super().__init__("preview")
        self.mails = mails


def preview(ctx: Context, action: Callable[[], Any]) -> list[MailPreview]:
    """The mails `action` plans, without keeping anything it writes. Raises what the action
    raises (a refusal reads the same as when it is taken)."""
    store = ctx.store
    now = ctx.now().isoformat(timespec="seconds")
    try:
        with store.transaction():
            before = store.newest_outbox_id()
            action()
            mails = [
                MailPreview(
                    kind=row["kind"],
                    recipient=row["recipient"],
                    subject=row["subject"] or "",
                    text=parse(bytes(row["raw"])).text,
                    send_at=row["send_at"],
                    window=row["send_at"] > now,
                )
                for row in store.outbox_after(before)
            ]
            raise _Undo(mails)
    except _Undo as undo:
        return undo.mails
