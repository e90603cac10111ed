"""The mails a case received, as staff read them on the case page and in `mailbot case`,
from what was kept when each was processed (`mail_views`: the body text and what
`mail.shown` keeps), never by parsing the raw mails: a participant's eight 20 MB mails made
every view of their case parse 160 MB (3.5 s, 249 MB).

A mail processed before schema step 19 (or quarantined) has no view yet: it is parsed once,
the first time its case is shown, and what was read is kept for every later view.
"""

from __future__ import annotations

from typing import Any

from mailbot.context import Context
from mailbot.mail.parse import parse
from mailbot.mail.shown import read_shown, shown_of

ALL_TEXT = 1_000_000_000  # SQLite's longest value; past 2**31 its substr() wraps


def received_mails(ctx: Context, case_id: int, text_chars: int = ALL_TEXT) -> list[dict[str, Any]]:
    """Each mail in on the case, oldest first: `id`, `mailbox`, `received_at`, `state`,
    `outcome`, what `mail.shown.read_shown` gives, `text` (the body's first `text_chars`
    characters) and `cut` (whether the body is longer). Raises StoreError when a view that
    had to be kept could not be written."""
    for message_row in ctx.store.messages_without_view(case_id):
        _keep_what_a_parse_reads(ctx, message_row)
    out: list[dict[str, Any]] = []
    for row in ctx.store.mail_views_of_case(case_id, text_chars):
        text = row["text"]
        out.append(
            {k: row[k] for k in ("id", "mailbox", "received_at", "state", "outcome")}
            | read_shown(row["shown"])
            | {"text": text[:text_chars], "cut": len(text) > text_chars}
        )
    return out


def _keep_what_a_parse_reads(ctx: Context, message_row: int) -> None:
    """Parses one mail processed before views were kept (or quarantined) and keeps what it
    read; a mail that never had its body text kept (before schema step 5) gets it too, which
    also puts it in the search index."""
    mail = parse(bytes(ctx.store.raw_of(message_row)))  # never raises: see parse()
    with ctx.store.transaction():
        if ctx.store.message_text_missing(message_row):
            names = [a.filename for a in mail.attachments]
            ctx.store.set_message_text(message_row, mail.text, names)
        ctx.store.keep_mail_view(message_row, shown_of(mail), mail.text)
