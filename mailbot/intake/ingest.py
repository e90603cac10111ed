"""Raw messages from files (`mailbot ingest`, `deliver`, `parse`): each belongs to the
configured mailbox it was addressed to, as if it had arrived there."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from mailbot.config import Config
from mailbot.context import Context


def addressed_mailbox(config: Config, raw: bytes) -> str:
    """The configured mailbox a raw message was sent to (To, then Cc), else the first one."""
    headers = BytesHeaderParser().parsebytes(raw[:65536])
    for header in ("To", "Cc", "Delivered-To"):
        for _name, addr in getaddresses([str(v) for v in headers.get_all(header, [])]):
            box = config.mailbox_for(addr)
            if box:
                return box.address
    return config.mailboxes[0].address


def store_raw_files(ctx: Context, raws: Iterable[bytes]) -> None:
    """Commit each message under a key of its content, so ingesting a file twice is harmless."""
    for raw in raws:
        key = f"ingest:{hashlib.sha256(raw).hexdigest()}"
        ctx.store.save_raw(addressed_mailbox(ctx.config, raw), [(key, raw)], ctx.now())
