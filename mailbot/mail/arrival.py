"""When a mail reached the operator's server (SPEC §6): the moment every deadline counts from.

The mailbox says it best (IMAP INTERNALDATE, a Maildir file's delivery time); without that, the
topmost Received header, which our own MTA wrote last; without that, the moment it was stored.
Never later than that moment: a clock ahead of ours must not push a deadline back.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime

HEAD_LIMIT = 256 * 1024
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_RECEIVED = re.compile(rb"^received[ \t]*:(?P<value>.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.M)


def topmost_received(raw: bytes) -> datetime | None:
    """The date after the last `;` of the first Received header, aware; None when absent or
    unreadable."""
    head = raw[:HEAD_LIMIT]
    end = _HEAD_END.search(head)
    if end is not None:
        head = head[: end.start()]
    match = _RECEIVED.search(head)
    if match is None:
        return None
    value = re.sub(rb"\r?\n[ \t]+", b" ", match["value"]).decode("ascii", "replace")
    if ";" not in value:
        return None
    try:
        when = parsedate_to_datetime(value.rsplit(";", 1)[1].strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return when if when.tzinfo is not None else None


def arrival_time(raw: bytes, delivered_at: datetime | None, stored_at: datetime) -> datetime:
    """`delivered_at` (the mailbox's own time), else the topmost Received, else `stored_at`;
    never after `stored_at`."""
    when = delivered_at or topmost_received(raw) or stored_at
    if when.tzinfo is None:
        when = when.astimezone()
    return min(when, stored_at).astimezone(stored_at.tzinfo)
