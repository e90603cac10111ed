"""Raw bytes → `Mail`, for every mail, however broken.

The stdlib `email` parser (compat32 policy, which keeps 8-bit bytes and never raises on bad
MIME) does the structure, and `mailbot.mail.charset` does the decoding: see docs/parsing.md for why
not `mail-parser` or `policy.default` (ISO-2022-JP bodies left undecoded, Outlook's extended
characters lost). `parse` never raises: what it had to guess or skip is listed in `defects`.
"""

from __future__ import annotations

import binascii
import mimetypes
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.header import Header, decode_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from mailbot.clock import TOKYO
from mailbot.mail import Attachment, Mail
from mailbot.mail.charset import HEADER_CAP, decode_bytes, decode_header_value, raw_header_bytes

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


def _header(msg: Message, name: str, fallback: str | None = None) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    return " ".join(decode_header_value(value, fallback).split()) or None


ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[QqBb]\?[^?]*\?=(?:\s+=\?[^?\s]+\?[QqBb]\?[^?]*\?=)*")
SPECIALS = re.compile(r'[,;:<>@"()\[\]\\]')
ADDR_SPEC = re.compile(r"^[^@\s<>()\[\],;:\\\"]+@[^@\s<>()\[\],;:\\\"]+$|^\"[^\"]+\"@[^@\s]+$")


CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _quote_words(value: str) -> str:
    """Encoded-words that carry an address special raw inside them (a Q-encoded name written
    `=?iso-8859-1?q?B=fcrling,=20Andreas?= <a@b>`) put in a quoted string, still encoded, so
    the address parser keeps them whole as a display name. Nothing is decoded before the
    address parser has read the field: whatever an encoded-word decodes to (a CR, a colon,
    `<victim@…>`) is display-name text, never an address."""

    def quote(found: re.Match[str]) -> str:
        inside_quotes = value[: found.start()].count('"') % 2 == 1
        if inside_quotes or not SPECIALS.search(found.group(0).replace("?", "")):
            return found.group(0)
        return '"' + found.group(0).replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ENCODED_WORD.sub(quote, value) if "=?" in value else value


def _display(text: str, fallback: str | None) -> str:
    """A display name as read: encoded-words and raw 8-bit text decoded, control characters
    (a CR an encoded-word carried) gone."""
    return " ".join(CONTROL.sub(" ", decode_header_value(text, fallback)).split())


def _addresses(msg: Message, name: str, fallback: str | None = None) -> list[tuple[str, str]]:
    """(display name, address) pairs of every `name` field, read from the field as written
    (raw 8-bit bytes kept as surrogates); only display names are decoded afterwards."""
    values = [_quote_words(_field_text(v)[:HEADER_CAP]) for v in msg.get_all(name, [])]
    found = []
    for display, addr in getaddresses(values):
        display, addr = _display(display, fallback), addr.strip()
        if RAW_BYTE.search(addr):
            addr = decode_bytes(raw_header_bytes(addr), None, fallback)[0]
        words = addr.rsplit(None, 1)
        if not display and len(words) == 2 and ADDR_SPEC.match(words[1]):
            display, addr = display or words[0], words[1]
        if addr:
            found.append((display, addr.lower()))
    return found


def _sender(msg: Message, fallback: str | None) -> tuple[str, str, str]:
    """(name, address, problem) of the author: the one well-formed address of the one From
    field, the domain our MTA's DMARC check judged. Anything else (no From, two From fields,
    two addresses, none well-formed, a NUL or other control character in the address: a reply
    would go to that byte string) names no sender, and `problem` says why for staff:
    Sender and Reply-To are never read in its place, nobody checked them."""
    fields = msg.get_all("From", [])
    if len(fields) != 1:
        return "", "", f"差出人欄（From）が {len(fields)} 個あります"
    found = _addresses(msg, "From", fallback)

    def written() -> str:
        return " ".join(decode_header_value(_field_text(fields[0])[:200], fallback).split())

    if len(found) != 1:
        return "", "", f"差出人欄（From: {written()}）のアドレスが 1 つではありません"
    display, addr = found[0]
    if CONTROL.search(addr):
        problem = f"差出人アドレス（{written()!r}）に制御文字が含まれており、自動では返信できません"
        return "", "", problem
    if not ADDR_SPEC.match(addr):
        return "", "", f"差出人欄（From: {written()}）にメールアドレスがありません"
    if not addr.isascii():
        problem = (
            f"差出人アドレス（{written()}）に英数字以外の文字が含まれており、自動では返信できません"
        )
        return "", "", problem
    return display, addr, ""


def _ids(value: str | Header | None) -> tuple[str, ...]:
    """The ids of a Message-ID, In-Reply-To or References field: ASCII only, as RFC 5322 has
    them (one with 8-bit bytes is no id: no reply could cite it)."""
    found = MSG_ID.findall(_field_text(value) if value is not None else "")
    return tuple(i for i in found if i.isascii())


RETURNED_HEADERS = frozenset({"text/rfc822-headers", "message/global-headers"})
RETURNED_MAIL = frozenset({"message/rfc822", "message/global"})


def returned_message_ids(raw: bytes) -> tuple[str, ...] | None:
    """The Message-ID field of each mail a delivery report returns (its message/rfc822 or
    text/rfc822-headers part, read as headers): the id of the mail that bounced, never one
    its In-Reply-To or References cite. None when the report returns no headers at all.
    `parse` collects them (`Mail.returned_ids`) from the message it has read already."""
    reduced, blobs = _lift_blobs(raw)
    return _returned_ids(message_from_bytes(reduced, policy=compat32), blobs)


def _returned_ids(msg: Message, blobs: list[memoryview]) -> tuple[str, ...] | None:
    """`returned_message_ids` of the strictly read message (a large base64 part lifted out,
    as the first read lifts it: a 20 MB bounce read a second time whole peaked ~158 MB)."""
    found: list[str] | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in RETURNED_HEADERS:
            data = _payload(part, [], blobs)
            headers = message_from_bytes(data, policy=compat32)
        elif ctype in RETURNED_MAIL and isinstance(part.get_payload(), list) and part.get_payload():
            headers = part.get_payload()[0]
        else:
            continue
        found = (found or []) + list(_ids(str(headers.get("Message-ID", ""))))
    return None if found is None else tuple(found)


def _date(msg: Message) -> datetime | None:
    value = msg.get("Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=TOKYO)


EXTENDED_VALUE = re.compile(r"(\*\s*=\s*)([^;]*)")
RAW_BYTE = re.compile("[\udc80-\udcff]")


def _percent_raw(found: re.Match[str]) -> str:
    """Raw 8-bit bytes in an RFC 2231 value (`filename*=utf-8''日本.pdf` unencoded) written as
    the %XX they should have been: the value's own charset then decodes them."""
    value = RAW_BYTE.sub(lambda b: f"%{ord(b.group(0)) - 0xDC00:02X}", found.group(2))
    return found.group(1) + value


def _readable(part: Message, fallback: str | None = None) -> Message:
    """Parameters of a header written in raw 8-bit (some webmail does this) come back as a
    Header object that get_param cannot read: re-read them from the text, RFC 2231 values
    percent-encoded, anything else decoded."""
    raw = [(k, v) for k, v in part.items() if isinstance(v, Header)]
    if not raw:
        return part
    copy = Message()
    for key, value in part.items():
        if isinstance(value, Header):
            text = EXTENDED_VALUE.sub(_percent_raw, _raw_text(value))
            value = decode_header_value(text, fallback) if RAW_BYTE.search(text) else text
        copy[key] = value
    return copy


def _field_text(value: str | Header) -> str:
    return _raw_text(value) if isinstance(value, Header) else str(value)


def _long_fields(msg: Message) -> list[str]:
    """Fields cut to HEADER_CAP before they are read (what a stranger sends to stall a parse)."""
    return [
        f"{key} field over 16 KB: read only its start"
        for key, value in msg.items()
        if len(_field_text(value)) > HEADER_CAP
    ]


def _raw_text(value: Header) -> str:
    """A raw 8-bit header as the parser read it, its bytes kept as surrogates."""
    return "".join(
        chunk.decode("ascii", "surrogateescape") if isinstance(chunk, bytes) else chunk
        for chunk, _charset in decode_header(value)
    )


def _filename(part: Message, fallback: str | None = None) -> str | None:
    """The sender's file name, decoded; None when the part has none (or an empty one)."""
    fallback = _charset_param(part) or fallback
    part = _readable(part, fallback)
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        value = part.get_param(param, header=header)
        if value is None:
            continue
        if isinstance(value, tuple):
            charset, _lang, text = value
            try:
                raw = str(text).encode("latin-1", "surrogateescape")
            except UnicodeEncodeError:
                name = str(text)
            else:
                name = decode_bytes(raw, charset or None, fallback)[0]
        else:
            text = str(value).strip().strip('"')
            if any("\udc80" <= ch <= "\udcff" for ch in text):
                name = decode_bytes(raw_header_bytes(text), None, fallback)[0]
            else:
                name = decode_header_value(text, fallback)
        if name.strip():
            return name.strip()
    return None


CHARSET_PARAM = re.compile(r'charset\s*=\s*"?([^";\s]+)', re.IGNORECASE)


def _charset_param(part: Message) -> str | None:
    """The charset parameter, read with one regex: get_param costs more than the whole rest of
    a small part's decoding, and charset values never need RFC 2231."""
    found = CHARSET_PARAM.search(str(part.get("Content-Type", "")))
    return found.group(1) if found else None


def _declared_charset(msg: Message) -> str | None:
    """The charset the mail declares for its text: where raw 8-bit headers are concerned, the
    sender's client most likely wrote them in the same one."""
    for part in msg.walk():
        charset = _charset_param(part)
        if charset:
            return charset
    return None


EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "text/plain": ".txt",
    "text/html": ".html",
    "video/quicktime": ".mov",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
}
BASENAMES = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "text": "document",
    "message": "message",
}
CID_NAME = re.compile(r"^<?([^<>@\s/\\]+\.[A-Za-z][A-Za-z0-9]{1,4})@")


def generated_name(part: Message, ctype: str, taken: set[str]) -> str:
    """A name for a part that has none, so staff can open and save it: the file name Outlook
    puts in the Content-ID (`<image001.jpg@01CD…>`), else one from the type (`image.jpg`,
    `document.html`, `file.pdf`), numbered when already taken (`document1.html`)."""
    found = CID_NAME.match(str(part.get("Content-ID", "")).strip())
    if found:
        name = found.group(1)
    else:
        ext = EXTENSIONS.get(ctype) or mimetypes.guess_extension(ctype) or ""
        name = BASENAMES.get(ctype.split("/", 1)[0], "file") + ext
    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    number = 0
    while name in taken:
        number += 1
        name = f"{stem}{number}{dot}{ext}"
    return name


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


_CJK = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uff66-\uff9f"
WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
PLAIN_COVERS = 0.9


def _covers(plain: str, rich: str) -> bool:
    """The plain alternative holds nine tenths of the rich one's words (each kana or kanji
    counting as a word, so line-wrapped Japanese still matches): the same message, not a stub
    ("this newsletter is best read in HTML") nor a part of it."""
    want = Counter(WORD.findall(rich.lower()))
    if not want:
        return True
    have = Counter(WORD.findall(plain.lower()))
    return sum((want & have).values()) >= PLAIN_COVERS * sum(want.values())


@dataclass
class _Html:
    """An HTML part outside any alternative: the body when the mail has no plain text, else a
    named attachment, so neither is lost."""

    text: str
    part: Message
    data: bytes


class _Walk:
    """Collects text and attachments, descending into alternatives and forwarded messages."""

    def __init__(self, blobs: list[memoryview] | None = None, fallback: str | None = None) -> None:
        self.blobs = blobs or []
        self.fallback = fallback
        self.plain: list[str] = []
        self.html: list[_Html] = []
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
            parts = [sub for sub in msg.get_payload() or [] if isinstance(sub, Message)]
            if ctype == "multipart/alternative" and len(parts) > 1:
                self.alternative(parts, depth)
                return
            for sub in parts:
                self.visit(sub, depth + 1)
            return
        if ctype == "message/rfc822" or (
            ctype.startswith("message/") and isinstance(msg.get_payload(), list)
        ):
            inner = msg.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(inner, Message):
                self.forward(inner, depth)
            return
        filename = _filename(msg, self.fallback)
        if ctype.startswith("multipart/") and filename is None:
            self.text_part(msg, "text/plain", "multipart without parts: read as text")
            return
        if _is_attachment(msg, filename) or not ctype.startswith("text/"):
            data = _payload(msg, self.defects, self.blobs)
            if filename is None:
                if not data:
                    return
                filename = self.name_for(msg, ctype)
            self.attachments.append(Attachment(filename=filename, content_type=ctype, data=data))
            return
        self.text_part(msg, ctype)

    def text_part(self, msg: Message, ctype: str, defect: str | None = None) -> None:
        data = _payload(msg, self.defects, self.blobs)
        text, defects = decode_bytes(data, _charset_param(msg), self.fallback)
        if defect and text.strip():
            defects.append(defect)
        self.defects.extend(defects)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if ctype == "text/html":
            self.html.append(_Html(text, msg, data))
        elif text.strip() or not defect:
            self.plain.append(text)

    def name_for(self, part: Message, ctype: str) -> str:
        self.defects.append("attachment without a name")
        return generated_name(part, ctype, {a.filename for a in self.attachments})

    def alternative(self, parts: list[Message], depth: int) -> None:
        """One of the alternatives is the body: the plain one, unless it is empty or a stub
        beside a richer one; the others' attachments (inline images) are kept."""
        walks = []
        for sub in parts:
            walk = _Walk(self.blobs, self.fallback)
            walk.visit(sub, depth + 1)
            walks.append(walk)
        texts = [walk.text() for walk in walks]
        filled = [i for i, text in enumerate(texts) if text.strip()]
        chosen = filled[-1] if filled else 0
        plain = next((i for i in filled if walks[i].plain), None)
        if plain is not None and _covers(texts[plain], texts[chosen]):
            chosen = plain
        for i, walk in enumerate(walks):
            if i == chosen:
                walk.finish()  # moves HTML beside plain text to attachments; the text stays
                self.plain.append(texts[i])
            self.attachments.extend(walk.attachments)
            self.defects.extend(walk.defects)
            self.delivery_report |= walk.delivery_report

    def forward(self, inner: Message, depth: int) -> None:
        nested = _Walk(self.blobs, _declared_charset(inner) or self.fallback)
        nested.visit(inner, depth + 1)
        nested.finish()
        subject = _header(inner, "Subject", nested.fallback) or ""
        sender = _header(inner, "From", nested.fallback) or ""
        head = f"{FORWARD_SEPARATOR}\nFrom: {sender}\nSubject: {subject}\n\n"
        self.forwards.append(head + nested.text())
        self.attachments.extend(nested.attachments)
        self.defects.extend(nested.defects)

    def finish(self) -> None:
        """HTML parts beside plain text (Apple Mail's inline fragments, a mixed part) become
        named attachments: staff open them there, and the body stays the plain text."""
        if not self.plain:
            return
        for html in self.html:
            name = self.name_for(html.part, "text/html")
            self.attachments.append(
                Attachment(filename=name, content_type="text/html", data=html.data)
            )
        self.html = []

    def text(self) -> str:
        body = (
            "\n".join(self.plain)
            if self.plain
            else "\n".join(html_to_text(h.text) for h in self.html)
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


HEADER_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:")
HEADER_END = re.compile(rb"\r?\n\r?\n")


def _mend_headers(raw: bytes) -> bytes | None:
    """The header block as a lenient reader sees it: a junk first line ("---- Original email
    message ----") dropped, and unindented lines that are no header field joined to the field
    above as the continuation they were meant to be. None when nothing needed mending."""
    end = HEADER_END.search(raw)
    head, rest = (raw[: end.start()], raw[end.start() :]) if end else (raw, b"")
    lines: list[bytes] = []
    in_fields = False
    for number, line in enumerate(head.split(b"\n")):
        if number == 0 and line.startswith(b"From "):
            lines.append(line)
        elif HEADER_FIELD.match(line):
            in_fields = True
            lines.append(line)
        elif in_fields:
            lines.append(line if line[:1] in (b" ", b"\t") else b" " + line)
    mended = b"\n".join(lines) + rest
    return None if mended == raw else mended


def _found(msg: Message) -> int:
    return sum(msg.get(name) is not None for name in ("From", "Subject"))


MENDED_MAY_SUPPLY = frozenset(
    {"subject", "date", "to", "cc", "mime-version", "content-type", "content-transfer-encoding",
     "content-disposition", "auto-submitted", "precedence", "x-auto-response-suppress"}
)  # fmt: skip
"""What the lenient re-read may take from below the line where the stdlib (and the receiving
MTA, and DKIM) ended the header block: what is needed to read the mail, and the robot markers
that only ever stop an answer. Everything that says who sent it, vouches for that sender or
places the mail in a thread (From, Sender, Reply-To, Return-Path, Authentication-Results,
Message-ID, In-Reply-To, References) is taken from the real header block only: below that line
our MTA neither strips a forged Authentication-Results nor checks a From."""


def _may_supply(name: str) -> bool:
    name = name.lower()
    return name in MENDED_MAY_SUPPLY or name.startswith("list-")


def _well_formed_sender(msg: Message) -> str:
    return _sender(msg, None)[1]


def _claimed_sender(mended: Message) -> str:
    """The last well-formed From address the lenient read found, to show staff."""
    found = [a for _, a in _addresses(mended, "From") if ADDR_SPEC.match(a)]
    return found[-1] if found else ""


def _keep_trusted(strict: Message, mended: Message) -> Message:
    """The mended message with every field it may not supply replaced by the strict parse's."""
    for name in {key.lower() for key in mended if not _may_supply(key)}:
        del mended[name]
    for key, value in strict.items():
        if not _may_supply(key):
            mended[key] = value
    return mended


def _read(raw: bytes) -> tuple[Message, list[str], str, Message]:
    """The stdlib parse, and a second, lenient one when the first lost From or Subject: the
    stdlib ends the header block at the first line that is neither a field nor indented.
    The third value is a sender address that only the lenient read found: never trusted (a
    stranger writes `junk line` then `From: <someone else>`), shown to staff only. The fourth
    is the strict parse itself, which alone says what a delivery report returns."""
    msg = message_from_bytes(raw, policy=compat32)
    if msg.get("From") is not None and msg.get("Subject") is not None:
        return msg, [], "", msg
    mended = _mend_headers(raw)
    if mended is None:
        return msg, [], "", msg
    second = message_from_bytes(mended, policy=compat32)
    if _found(second) <= _found(msg):
        return msg, [], "", msg
    defects = ["broken header block read leniently"]
    claimed = "" if _well_formed_sender(msg) else _claimed_sender(second)
    if claimed:
        defects.append(f"sender only below a broken header line, not trusted: {claimed}")
    return _keep_trusted(msg, second), defects, claimed, msg


def _parse(raw: bytes) -> Mail:
    reduced, blobs = _lift_blobs(raw)
    msg, mended, claimed_sender, strict = _read(reduced)
    del reduced
    fallback = _declared_charset(msg)
    walk = _Walk(blobs, fallback)
    walk.visit(msg)
    walk.finish()
    from_name, from_addr, sender_problem = _sender(msg, fallback)
    reply_to = _addresses(msg, "Reply-To", fallback)
    subject = _header(msg, "Subject", fallback) or ""
    report_type = (
        (msg.get_param("report-type") or "") if msg.get_content_type() == "multipart/report" else ""
    )
    loose = from_addr or next((a for _, a in _addresses(msg, "From", fallback)), "")
    local = loose.split("@", 1)[0]
    is_report = (
        walk.delivery_report
        or str(report_type).lower() == "delivery-status"
        or (local in ROBOT_LOCALS and bool(DSN_SUBJECT.search(subject)))
    )
    defects = [type(d).__name__ for d in msg.defects] + mended + _long_fields(msg) + walk.defects
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
        claimed_sender=claimed_sender,
        sender_problem="" if claimed_sender else sender_problem,
        to=tuple(a for _, a in _addresses(msg, "To", fallback)),
        cc=tuple(a for _, a in _addresses(msg, "Cc", fallback)),
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
        authentication_results=tuple(
            " ".join(_field_text(v).split())[:HEADER_CAP]
            for v in msg.get_all("Authentication-Results", [])
        ),
        content_type=msg.get_content_type(),
        is_delivery_report=is_report,
        defects=tuple(dict.fromkeys(defects)),
        returned_ids=_returned_ids(strict, blobs) if is_report else None,
    )
