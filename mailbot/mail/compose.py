"""Building the bytes of an outgoing mail, exactly as they go over SMTP.

Headers that carry participant text (subject, names) are made single-line first, so nothing a
participant writes can inject a header. Never sends anything.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, formataddr, getaddresses

from mailbot.text import single_line

SMTP_POLICY = policy.SMTP.clone(max_line_length=78)


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    data: bytes
    content_type: str = "application/octet-stream"


def new_message_id(domain: str, case_id: int | None) -> str:
    """Fixed when the mail is planned, so a resend after a crash is recognisably the same."""
    return f"<mailbot.{case_id or 0}.{uuid.uuid4().hex}@{domain}>"


def _address(addr: str, name: str = "") -> Address:
    """The domain follows the last '@': a quoted local part (「"jiro,x@y"@example.co.jp」, which
    parse accepts) may hold one, and is unquoted so that Address quotes it once again. Split at
    the first, the header named another mailbox, and the Cc read back from it for the SMTP
    envelope (`envelope_recipients`) reached another domain."""
    local, at, domain = addr.rpartition("@")
    if not at:
        local, domain = domain, ""
    if len(local) >= 2 and local[0] == local[-1] == '"':
        local = local[1:-1]
    return Address(display_name=single_line(name, 100), username=local, domain=domain)


def envelope_recipients(raw: bytes, recipient: str) -> list[str]:
    """Where a mail composed here goes over SMTP: its outbox recipient (the To) and every
    address of its Cc header. A header alone delivers nothing: without these RCPT TO lines a
    copied party sees its name on the mail and never gets it."""
    head = BytesHeaderParser(policy=policy.compat32).parsebytes(raw.split(b"\r\n\r\n", 1)[0])
    copied = [addr for _name, addr in getaddresses(head.get_all("Cc", [])) if "@" in addr]
    return list(dict.fromkeys([recipient, *copied]))


def compose(
    *,
    from_addr: str,
    from_name: str,
    to: str,
    subject: str,
    body: str,
    message_id: str,
    date: datetime,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    charset: str = "utf-8",
    attachments: tuple[OutgoingAttachment, ...] = (),
    cc: tuple[str, ...] = (),
    auto_submitted: str = "auto-replied",
    html: str | None = None,
) -> bytes:
    head = [
        f"From: {_mailbox(from_addr, from_name)}",
        f"To: {_mailbox(to)}",
        *([f"Cc: {', '.join(_mailbox(a) for a in cc)}"] if cc else []),
        f"Subject: {_encoded(single_line(subject, 300), 'Subject')}",
    ]
    if in_reply_to and _MESSAGE_ID.fullmatch(in_reply_to):
        refs = [r for r in references if r != in_reply_to][-10:]
        head.append(f"In-Reply-To: {in_reply_to}")
        head.append(_id_list("References", [*refs, in_reply_to]))
    top = ("\r\n".join(head) + "\r\n").encode("ascii")
    if html is None and not attachments:
        plain = _plain_text(date, message_id, auto_submitted, body, charset)
        if plain is not None:
            return top + plain
    return top + _mime(
        date, message_id, auto_submitted, body, charset, html=html, attachments=attachments
    )


def _own_headers(date: datetime, message_id: str, auto_submitted: str) -> list[tuple[str, str]]:
    """The headers below the addresses and subject that every mail mailbot sends carries, in
    order: `_mime` and `_plain_text` both write these."""
    return [
        ("Date", format_datetime(date)),
        ("Message-ID", message_id),
        ("Auto-Submitted", auto_submitted),
        ("X-Auto-Response-Suppress", "All"),
    ]


def _body_text(body: str) -> str:
    """The body with LF line ends and a final newline, as both builders encode it."""
    text = body.replace("\r\n", "\n")
    return text if text.endswith("\n") else text + "\n"


def _mime(
    date: datetime,
    message_id: str,
    auto_submitted: str,
    body: str,
    charset: str,
    *,
    html: str | None = None,
    attachments: tuple[OutgoingAttachment, ...] = (),
) -> bytes:
    """Everything below the address and subject lines, built by the stdlib's EmailMessage."""
    msg = EmailMessage(policy=SMTP_POLICY)
    for name, value in _own_headers(date, message_id, auto_submitted):
        msg[name] = value
    text = _body_text(body)
    if charset == "iso-2022-jp" and _fits_iso2022jp(text):
        msg.set_content(text.encode("iso-2022-jp"), maintype="text", subtype="plain", cte="7bit")
        msg.set_param("charset", "ISO-2022-JP")
    else:
        msg.set_content(text, charset="utf-8", cte="base64")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    for item in attachments:
        maintype, _, subtype = item.content_type.partition("/")
        msg.add_attachment(
            item.data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=single_line(item.filename, 200),
        )
    return msg.as_bytes(policy=SMTP_POLICY)


_PLAIN_ID = re.compile(r"<[!-;=?-~]{1,60}>")
_BASE64_PIECE = 78 // 4 * 3  # bytes a base64 line of SMTP_POLICY's 78 carries, as email does


def _plain_text(
    date: datetime, message_id: str, auto_submitted: str, body: str, charset: str
) -> bytes | None:
    """A plain UTF-8 receipt (most of what mailbot sends), byte for byte what `_mime` builds,
    written directly: the header registry and generator took a quarter of checking a mail.
    None for anything else (ISO-2022-JP, unusual header values), which `_mime` builds."""
    if charset != "utf-8" or not _PLAIN_ID.fullmatch(message_id):
        return None
    if auto_submitted not in ("auto-replied", "auto-generated", "auto-notified"):
        return None
    data = b"\r\n".join(_body_text(body).encode("utf-8").splitlines()) + b"\r\n"
    encoded = b"".join(
        binascii.b2a_base64(data[i : i + _BASE64_PIECE]) for i in range(0, len(data), _BASE64_PIECE)
    )
    head = "".join(
        f"{name}: {value}\r\n" for name, value in _own_headers(date, message_id, auto_submitted)
    )
    head += (
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: base64\r\n"
        "MIME-Version: 1.0\r\n\r\n"
    )
    return head.encode("ascii") + encoded.replace(b"\n", b"\r\n")


_DATE_LINE = re.compile(rb"^Date:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*", re.IGNORECASE | re.MULTILINE)


def stamp_date(raw: bytes, at: datetime) -> bytes:
    """The planned mail with its `Date:` set to `at`, the moment it is handed over: a notice
    planned at 18:30 and sent when the window opens next morning says the morning (SPEC §6).
    Only the header block is touched; the Message-ID and everything else stay as planned."""
    end = raw.find(b"\r\n\r\n")
    head, rest = (raw, b"") if end < 0 else (raw[:end], raw[end:])
    line = b"Date: " + format_datetime(at).encode("ascii")
    stamped, count = _DATE_LINE.subn(lambda _m: line, head, count=1)
    if count == 0:
        stamped = line + b"\r\n" + head
    return stamped + rest


# A msg-id as a reply may carry it: printable ASCII, no space or angle bracket inside, short
# enough for one header line. Anything else is not echoed.
_MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,900}>")


def _id_list(name: str, ids: list[str]) -> str:
    """Message-IDs are never RFC 2047-encoded (Outlook's run past 78 characters, and an
    encoded one no longer threads): folded between ids, one per line when long."""
    good = [i for i in ids if _MESSAGE_ID.fullmatch(i)]
    return f"{name}: " + "\r\n ".join(good)


def _encoded(text: str, name: str) -> str:
    """RFC 2047, folded at 78. The compat32 Header encoder does here in microseconds what the
    modern header registry's folding took 5 ms per Japanese subject to do."""
    charset = "us-ascii" if text.isascii() else "utf-8"
    return Header(text, charset, header_name=name).encode(linesep="\r\n")


def _mailbox(addr: str, name: str = "") -> str:
    """`addr` is ours or a parsed address; a name is single-lined before it is encoded."""
    address = _address(addr).addr_spec
    display = single_line(name, 100)
    if not display:
        return address
    if display.isascii():
        return formataddr((display, address))
    return f"{_display_words(display)} <{address}>"


ENCODED_WORD_BYTES = 45


def _display_words(display: str) -> str:
    """A Japanese display name as RFC 2047 encoded words that each end at a space of the name
    (the space carried inside, so strict decoders, which drop the folding between words, keep
    it) and each hold whole characters: no decoder can split 容量市場 into 容量 and 市場. A word
    longer than one encoded word (15 characters) is cut between characters, the least harm."""
    words: list[str] = []
    for part in re.findall(r"\S+\s*|\s+", display):
        piece = ""
        for char in part:
            if len((piece + char).encode("utf-8")) > ENCODED_WORD_BYTES:
                words.append(piece)
                piece = ""
            piece += char
        words.append(piece)
    encoded = [
        "=?utf-8?b?" + base64.b64encode(word.encode("utf-8")).decode("ascii") + "?="
        for word in words
    ]
    return "\r\n ".join(encoded)


def _fits_iso2022jp(text: str) -> bool:
    """Legacy clients need ISO-2022-JP; text with characters it cannot carry (①, 髙) stays UTF-8
    rather than be damaged."""
    try:
        text.encode("iso-2022-jp")
    except UnicodeEncodeError:
        return False
    return True
