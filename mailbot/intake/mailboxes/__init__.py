"""Mailbox backends: where raw messages come from.

A backend yields raw bytes with a stable key and is told to `ack` a key only after the
bytes are committed to the store. It never parses and never decides anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class RawMessage:
    """Raw bytes as they sit in the mailbox; `key` is unique per mailbox for good
    (IMAP: ``imap:UIDVALIDITY:UID``; Maildir: ``maildir:<unique part of the file name>``)."""

    key: str
    data: bytes
    arrived_at: datetime | None = None
    """When the operator's server took the mail (IMAP INTERNALDATE, Maildir delivery time)."""


class Mailbox(Protocol):
    """What the intake loop needs of a mailbox."""

    address: str
    pushes: bool
    """True when `wait` returns as soon as mail arrives (IMAP IDLE, a local Maildir); False when
    only polling every `poll_interval` finds it."""

    def fetch(self, limit: int | None = None) -> Iterator[RawMessage]:
        """Yield messages not yet acknowledged, oldest first."""
        ...

    def ack(self, keys: list[str]) -> None:
        """Mark messages as stored (IMAP: set the keyword/flag, optionally move; Maildir: move
        to cur/ with the S flag). Idempotent."""
        ...

    def wait(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Block until the server announces new mail, `timeout` seconds pass or `stop` is set
        (IMAP IDLE, or a sleep where IDLE is missing). True when something may have arrived."""
        ...

    def close(self) -> None: ...
