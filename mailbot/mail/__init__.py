"""Values that describe one received mail after parsing.

Pure data: nothing here reads a socket, a file or the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Attachment:
    """One attached file, name decoded (RFC 2231 / RFC 2047) and payload transfer-decoded.
    `opened` is the workbook the read-ahead worker already opened from `data` (a
    forms.workbook.OpenedBook; typed loosely so that mail/ stays below forms/)."""

    filename: str
    content_type: str
    data: bytes
    opened: Any = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Mail:
    """A received message as the checks see it.

    Addresses are lower-cased addr-specs. `text` is the readable body: the text/plain part (of
    an alternative, the plain one unless it is empty or a stub beside a richer HTML one), or the
    text extracted from text/html when there is no plain part; HTML beside plain text is among
    the attachments. `defects` lists what the parser had to guess or skip, so a stored case can
    say why it looks odd. `claimed_sender` is an address a broken header block named only below
    the line where real headers end: shown to staff, never answered, matched or trusted
    (`from_addr` is empty then). `sender_problem` says why `from_addr` is empty when the From
    field names no single address (never filled from Sender or Reply-To).
    `authentication_results` holds every such header, topmost first, as written (never
    RFC 2047-decoded): `mailbot.mail.trust.auth_verdict` decides which one our MTA stamped.
    `returned_ids`, for a delivery report only, holds the Message-ID of each mail it returns
    (`mailbot.mail.parse.returned_message_ids`; None: it returns no headers at all).
    """

    message_id: str | None
    subject: str
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...] = ()
    reply_to: str | None = None
    date: datetime | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    auto_submitted: str | None = None
    precedence: str | None = None
    list_id: str | None = None
    list_headers: bool = False
    return_path: str | None = None
    x_auto_response_suppress: str | None = None
    authentication_results: tuple[str, ...] = ()
    content_type: str = "text/plain"
    is_delivery_report: bool = False
    claimed_sender: str = ""
    sender_problem: str = ""
    defects: tuple[str, ...] = field(default=())
    returned_ids: tuple[str, ...] | None = None

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this mail answers, nearest first (In-Reply-To, then References reversed)."""
        ids: list[str] = []
        if self.in_reply_to:
            ids.append(self.in_reply_to)
        ids.extend(ref for ref in reversed(self.references) if ref not in ids)
        return tuple(ids)
