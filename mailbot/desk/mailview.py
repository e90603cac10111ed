"""The mails a case received, as staff read them on the case page and in `mailbot case`,
from what was kept when each was processed (the body text and `messages.shown`), never by
parsing the raw mails: a participant's eight 20 MB mails made every view of their case parse
160 MB (3.5 s, 249 MB).

A mail processed before schema step 15 has no `shown` yet: it is parsed once, the first time
its case is shown, and what was read is kept for every later view.
"""

from __future__ import annotations

import logging
from typing import Any

from mailbot.context import Context
from mailbot.errors import StoreError
from mailbot.mail.parse import parse
from mailbot.mail.shown import read_shown, shown_of

log = logging.getLogger(__name__)

ALL_TEXT = 1_000_000_000  # SQLite's longest value; past 2**31 its substr() wraps


def received_mails(ctx: Context, case_id: int, text_chars: int = ALL_TEXT) -> list[dict[str, Any]]:
    """Each mail in on the case, oldest first: its row (`id`, `mailbox`, `received_at`,
    `state`, `outcome`), what `mail.shown.read_shown` gives, `text` (the body's first
    `text_chars` characters) and `cut` (whether the body is longer)."""
    out: list[dict[str, Any]] = []
    for row in ctx.store.received_of_case(case_id, text_chars):
        shown, text = row["shown"], row["text"]
        if shown is None:
            shown, text = _keep_what_a_parse_reads(ctx, row["id"], text)
        text = text or ""
        out.append(
            {k: row[k] for k in ("id", "mailbox", "received_at", "state", "outcome")}
            | read_shown(shown)
            | {"text": text[:text_chars], "cut": len(text) > text_chars}
        )
    return out


def _keep_what_a_parse_reads(
    ctx: Context, message_row: int, text: str | None
) -> tuple[str, str | None]:
    """Parses one mail processed before `shown` was kept and keeps what it read (its body
    text too, when none was kept: that also puts it in the search index). Returns (shown,
    text). A database busy past its timeout keeps nothing this time; the mail is parsed
    again at the next view."""
    mail = parse(bytes(ctx.store.raw_of(message_row)))  # never raises: see parse()
    shown, body, names = shown_of(mail), mail.text, [a.filename for a in mail.attachments]
    try:
        with ctx.store.transaction():
            if text is None:
                ctx.store.set_message_text(message_row, body, names)
            ctx.store.set_message_shown(message_row, shown)
    except StoreError as exc:
        log.warning("mail %s: what staff are shown was not kept: %s", message_row, exc)
    return shown, text if text is not None else body
