"""Maildir backend (the embedded default): `<path>/new/` holds what arrived, and a file's
mtime is when the MTA delivered it (renaming into new/ and later into cur/ keeps it).

A message is acked by moving it to `cur/` with the S flag, after its bytes are committed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from mailbot.intake.mailboxes import RawMessage
from mailbot.private import private_dir, write_private


def ensure_maildir(path: Path) -> None:
    for sub in ("tmp", "new", "cur"):
        private_dir(path / sub)


def _unique(name: str) -> str:
    return name.split(":2,", 1)[0]


class MaildirMailbox:
    def __init__(self, address: str, path: Path, poll_interval: float = 5.0) -> None:
        self.address = address
        self.path = path
        self.poll_interval = poll_interval
        ensure_maildir(path)

    def _waiting(self) -> list[Path]:
        entries = [p for p in (self.path / "new").iterdir() if not p.name.startswith(".")]
        for p in (self.path / "cur").iterdir():
            flags = p.name.split(":2,", 1)[1] if ":2," in p.name else ""
            if "S" not in flags and not p.name.startswith("."):
                entries.append(p)
        return sorted(entries, key=lambda p: (p.stat().st_mtime, p.name))

    def fetch(self, limit: int | None = None) -> Iterator[RawMessage]:
        for count, path in enumerate(self._waiting()):
            if limit is not None and count >= limit:
                return
            try:
                data = path.read_bytes()
                delivered = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            except FileNotFoundError:
                continue
            yield RawMessage(key=f"maildir:{_unique(path.name)}", data=data, arrived_at=delivered)

    def ack(self, keys: list[str]) -> None:
        wanted = {k.removeprefix("maildir:") for k in keys}
        for path in self._waiting():
            unique = _unique(path.name)
            if unique in wanted:
                flags = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
                target = self.path / "cur" / f"{unique}:2,{''.join(sorted(set(flags + 'S')))}"
                try:
                    os.replace(path, target)
                except FileNotFoundError:
                    continue

    pushes = True

    def wait(self, timeout: float, stop: threading.Event | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            if any((self.path / "new").iterdir()):
                return True
            time.sleep(min(self.poll_interval, 0.5, max(0.0, deadline - time.monotonic())))
        return False

    def close(self) -> None:
        return None


def deliver(path: Path, data: bytes, unique: str) -> Path:
    """Put a message into a Maildir the way an MTA does (write to tmp/, rename into new/)."""
    ensure_maildir(path)
    tmp = path / "tmp" / unique
    write_private(tmp, data)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    target = path / "new" / unique
    os.replace(tmp, target)
    return target
