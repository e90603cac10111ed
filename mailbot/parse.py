"""Raw bytes → `Mail`, for every mail, however broken.

The stdlib `email` parser (compat32 policy, which keeps 8-bit bytes and never raises on bad
MIME) does the structure, and `mailbot.charset` does the decoding: see docs/parsing.md for why
not `mail-parser` or `policy.default` (ISO-2022-JP bodies left undecoded, Outlook's extended
characters lost). `parse` never raises: what it had to guess or skip is listed in `defects`.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from datetime import datetime
from email import message_from_bytes
from email.header import Header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from mailbot.charset import decode_bytes, decode_header_value, raw_header_bytes
from mailbot.clock import TOKYO
from mailbot.mail import Attachment, Mail

MSG_ID = re.compile(r"<[^<>\s]+>")
ROBOT_LOCALS = ("mailer-daemon", "postmaster")
DSN_SUBJECT = re.compile(
    r"undeliver|delivery (status|failure)|returned mail|failure notice|mail delivery failed"
    r"|配信不能|配送エラー|不達",
    re.IGNORECASE,
)
FORWARD_SEPARATOR = "---------- 転送されたメッセージ ----------"


class _TextExtractor(HTMLParser):
    BREAKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table"})
    SKIP = frozenset({"style", "script", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BREAKS:
            self.parts.append("\n")
        elif tag == "td":
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BREAKS and tag != "br":
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:
        return re.sub(r"<[^>]+>", "", html)
    text = "".join(extractor.parts).replace("\xa0", " ")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    return " ".join(decode_header_value(value).split()) or None


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    values = [
        decode_header_value(v) if isinstance(v, Header) else str(v) for v in msg.get_all(name, [])
    ]
    found = []
    for display, addr in getaddresses(values):
        addr = addr.strip().lower()
        if "@" in addr or addr:
            found.append((decode_header_value(display).strip(), addr))
    return [(n, a) for n, a in found if a]


def _ids(value: str | None) -> tuple[str, ...]:
    return tuple(MSG_ID.findall(value or ""))


def _date(msg: Message) -> datetime | None:
    value = msg.get("Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=TOKYO)


def _readable(part: Message) -> Message:
    """Parameters of a header written in raw 8-bit (some webmail does this) come back as a
    Header object that get_param cannot read: re-read them from the decoded text."""
    raw = [(k, v) for k, v in part.items() if isinstance(v, Header)]
    if not raw:
        return part
    copy = Message()
    for key, value in part.items():
        copy[key] = decode_header_value(value) if isinstance(value, Header) else value
    return copy


def _filename(part: Message) -> str | None:
    part = _readable(part)
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = part.get_param(param, header=header)
        if value is None:
            continue
        if isinstance(value, tuple):
            charset, _lang, text = value
            return decode_bytes(str(text).encode("latin-1", "surrogateescape"), charset)[0]
        text = str(value).strip().strip('"')
        if any("\udc80" <= ch <= "\udcff" for ch in text):
            return decode_bytes(raw_header_bytes(text), None)[0]
        return decode_header_value(text)
    return None


LIFT_OVER_BYTES = 1_000_000
LIFT_MIN_LINES = 4000
_BASE64_LINE = re.compile(rb"[A-Za-z0-9+/=]{1,76}\r?\n")
_BLOB = re.compile(r"^MAILBOT-LIFTED-BLOB-(\d+)\s*$")


def _base64_runs(raw: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of ≥ LIFT_MIN_LINES base64 lines, line by line: a regex with
    a repeated group kept ~60 MB of state on a 28 MB mail."""
    pos, size = 0, len(raw)
    run_start, lines = 0, 0
    while pos < size:
        found = _BASE64_LINE.match(raw, pos)
        if found:
            if lines == 0:
                run_start = pos
            lines += 1
            pos = found.end()
            continue
        if lines >= LIFT_MIN_LINES:
            yield run_start, pos
        lines = 0
        newline = raw.find(b"\n", pos)
        pos = size if newline < 0 else newline + 1
    if lines >= LIFT_MIN_LINES:
        yield run_start, pos


def _lift_blobs(raw: bytes) -> tuple[bytes, list[memoryview]]:
    """Large base64 bodies, cut out before the stdlib parser sees them.

    The email package keeps every line of a body as its own string and then joins, encodes and
    decodes it, so a 20 MB attachment cost ~200 MB. A run of ≥ 4,000 base64 lines (≈ 300 KB;
    boundaries and headers can never match) is replaced by a one-line token and decoded
    straight from the raw bytes when its part is read. Small mails are untouched.
    """
    if len(raw) < LIFT_OVER_BYTES:
        return raw, []
    blobs: list[memoryview] = []
    pieces: list[bytes] = []
    view = memoryview(raw)
    last = 0
    for start, end in _base64_runs(raw):
        pieces.append(raw[last:start])
        pieces.append(b"MAILBOT-LIFTED-BLOB-%d\r\n" % len(blobs))
        blobs.append(view[start:end])
        last = end
    if not blobs:
        return raw, []
    pieces.append(raw[last:])
    return b"".join(pieces), blobs


def _payload(part: Message, defects: list[str], blobs: list[memoryview] | None = None) -> bytes:
    if blobs:
        payload = part.get_payload()
        found = _BLOB.match(payload) if isinstance(payload, str) and len(payload) < 64 else None
        if found:
            blob = blobs[int(found.group(1))]
            cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            return binascii.a2b_base64(blob) if cte == "base64" else bytes(blob)
    try:
        data = part.get_payload(decode=True)
    except Exception as exc:
        defects.append(f"payload not decodable: {type(exc).__name__}")
        return b""
    if data is None:
        return b""
    if isinstance(data, str):
        return data.encode("utf-8", "surrogateescape")
    return data


def _is_attachment(part: Message, filename: str | None) -> bool:
    disposition = decode_header_value(part.get("Content-Disposition")).split(";", 1)[0]
    disposition = disposition.strip().lower()
    return disposition == "attachment" or filename is not None


class _Walk:
    """Collects text and attachments, descending into forwarded messages."""

    def __init__(self, blobs: list[memoryview] | None = None) -> None:
        self.blobs = blobs or []
        self.plain: list[str] = []
        self.html: list[str] = []
        self.forwards: list[str] = []
        self.attachments: list[Attachment] = []
        self.defects: list[str] = []
        self.delivery_report = False

    def visit(self, msg: Message, depth: int = 0) -> None:
        if depth > 20:
            self.defects.append("MIME nesting too deep: rest skipped")
            return
        ctype = msg.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            self.delivery_report = True
        if msg.is_multipart():
            for sub in msg.get_payload() or []:
                if isinstance(sub, Message):
                    self.visit(sub, depth + 1)
            return
        if ctype == "message/rfc822" or (
            isinstance(msg.get_payload(), list) and ctype.startswith("message/")
        ):
            inner = msg.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(inner, Message):
                self.forward(inner, depth)
            return
        filename = _filename(msg)
        if _is_attachment(msg, filename) or not ctype.startswith("text/"):
            data = _payload(msg, self.defects, self.blobs)
            if filename is None:
                if not data:
                    return
                filename = f"添付ファイル.{msg.get_content_subtype() or 'bin'}"
                self.defects.append("attachment without a name")
            self.attachments.append(Attachment(filename=filename, content_type=ctype, data=data))
            return
        data = _payload(msg, self.defects, self.blobs)
        text, defects = decode_bytes(data, msg.get_param("charset"))
        self.defects.extend(defects)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        (self.html if ctype == "text/html" else self.plain).append(text)

    def forward(self, inner: Message, depth: int) -> None:
        nested = _Walk(self.blobs)
        nested.visit(inner, depth + 1)
        subject = _header(inner, "Subject") or ""
        sender = _header(inner, "From") or ""
        head = f"{FORWARD_SEPARATOR}\nFrom: {sender}\nSubject: {subject}\n\n"
        self.forwards.append(head + nested.text())
        self.attachments.extend(nested.attachments)
        self.defects.extend(nested.defects)

    def text(self) -> str:
        body = (
            "\n".join(self.plain) if self.plain else "\n".join(html_to_text(h) for h in self.html)
        )
        return "\n\n".join(part for part in [body, *self.forwards] if part)


def parse(raw: bytes) -> Mail:
    try:
        return _parse(raw)
    except Exception as exc:
        return Mail(
            message_id=None,
            subject="",
            from_addr="",
            from_name="",
            to=(),
            text=raw[:20000].decode("utf-8", "replace"),
            defects=(f"unparseable: {type(exc).__name__}: {exc}",),
        )


def _parse(raw: bytes) -> Mail:
    reduced, blobs = _lift_blobs(raw)
    msg = message_from_bytes(reduced, policy=compat32)
    del reduced
    walk = _Walk(blobs)
    walk.visit(msg)
    senders = _addresses(msg, "From") or _addresses(msg, "Sender")
    from_name, from_addr = senders[0] if senders else ("", "")
    reply_to = _addresses(msg, "Reply-To")
    subject = _header(msg, "Subject") or ""
    report_type = (
        (msg.get_param("report-type") or "") if msg.get_content_type() == "multipart/report" else ""
    )
    local = from_addr.split("@", 1)[0]
    is_report = (
        walk.delivery_report
        or str(report_type).lower() == "delivery-status"
        or (local in ROBOT_LOCALS and bool(DSN_SUBJECT.search(subject)))
    )
    defects = [type(d).__name__ for d in msg.defects] + walk.defects
    for part in msg.walk():
        if part is not msg:
            defects.extend(type(d).__name__ for d in part.defects)
    message_ids = _ids(msg.get("Message-ID"))
    in_reply_to = _ids(msg.get("In-Reply-To"))
    return Mail(
        message_id=message_ids[0] if message_ids else None,
        subject=subject,
        from_addr=from_addr,
        from_name=from_name,
        to=tuple(a for _, a in _addresses(msg, "To")),
        cc=tuple(a for _, a in _addresses(msg, "Cc")),
        reply_to=reply_to[0][1] if reply_to else None,
        date=_date(msg),
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=_ids(msg.get("References")),
        text=walk.text(),
        attachments=tuple(walk.attachments),
        auto_submitted=_header(msg, "Auto-Submitted"),
        precedence=_header(msg, "Precedence"),
        list_id=_header(msg, "List-Id"),
        list_headers=any(key.lower().startswith("list-") for key in msg),
        return_path=_header(msg, "Return-Path"),
        x_auto_response_suppress=_header(msg, "X-Auto-Response-Suppress"),
        authentication_results=_header(msg, "Authentication-Results"),
        content_type=msg.get_content_type(),
        is_delivery_report=is_report,
        defects=tuple(dict.fromkeys(defects)),
    )
