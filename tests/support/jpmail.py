"""Raw mails built the way Japanese mail clients build them, for tests and the sample mails.

`encode_jis` is what Outlook does for ISO-2022-JP (CP50221): characters outside JIS X 0208 but in
CP932 (①, ㈱, Ⅲ, 髙) are written as their NEC / NEC-selected IBM rows inside ESC $ B runs.
The stdlib encoders cannot produce those mails, which is exactly why tests need them.
"""

from __future__ import annotations

import base64
import quopri
import uuid
from datetime import datetime
from email.utils import format_datetime
from functools import cache
from urllib.parse import quote
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@cache
def _nec_selected() -> dict[str, bytes]:
    """Unicode → NEC-selected IBM extension bytes (0xED/0xEE rows), which have JIS codes."""
    table: dict[str, bytes] = {}
    for lead in (0xED, 0xEE):
        for trail in range(0x40, 0xFD):
            raw = bytes((lead, trail))
            try:
                table.setdefault(raw.decode("cp932"), raw)
            except UnicodeDecodeError:
                continue
    return table


def _sjis_to_jis(pair: bytes) -> bytes:
    s1, s2 = pair
    if s1 >= 0xE0:
        s1 -= 0x40
    j1 = (s1 - 0x81) * 2 + 0x21
    if s2 >= 0x9F:
        return bytes((j1 + 1, s2 - 0x7E))
    j2 = s2 - 0x1F
    if s2 >= 0x80:
        j2 -= 1
    return bytes((j1, j2))


def encode_jis(text: str) -> bytes:
    """ISO-2022-JP as CP50221 writes it; half-width kana as ESC ( I."""
    out = bytearray()
    mode = "ascii"
    for ch in text:
        if ch in "\r\n" or ord(ch) < 0x80:
            if mode != "ascii":
                out += b"\x1b(B"
                mode = "ascii"
            out += ch.encode("ascii")
            continue
        raw = ch.encode("cp932")
        if len(raw) == 1:
            if mode != "kana":
                out += b"\x1b(I"
                mode = "kana"
            out.append(raw[0] & 0x7F)
            continue
        if raw[0] >= 0xFA:
            raw = _nec_selected()[ch]
        if mode != "kanji":
            out += b"\x1b$B"
            mode = "kanji"
        out += _sjis_to_jis(raw)
    if mode != "ascii":
        out += b"\x1b(B"
    return bytes(out)


def encode_text(text: str, charset: str) -> bytes:
    if charset == "iso-2022-jp":
        return encode_jis(text)
    if charset == "shift_jis":
        return text.encode("cp932")
    return text.encode(charset)


def encoded_word(text: str, charset: str = "iso-2022-jp") -> str:
    data = encode_text(text, charset)
    return f"=?{charset.upper()}?B?{base64.b64encode(data).decode()}?="


def _header(text: str, charset: str) -> str:
    return text if text.isascii() else encoded_word(text, charset)


def _filename_params(name: str, style: str) -> str:
    if name.isascii():
        return f'filename="{name}"'
    if style == "rfc2231":
        return f"filename*=UTF-8''{quote(name, safe='')}"
    if style == "rfc2231-continued":
        pieces = [quote(ch, safe="") for ch in name]
        chunks, current = [], ""
        for piece in pieces:
            if len(current) + len(piece) > 40:
                chunks.append(current)
                current = ""
            current += piece
        chunks.append(current)
        parts = [
            f"filename*{n}*={'UTF-8' + chr(39) * 2 if n == 0 else ''}{c}"
            for n, c in enumerate(chunks)
        ]
        return ";\r\n ".join(parts)
    if style == "rfc2047-jis":
        return f'filename="{encoded_word(name, "iso-2022-jp")}"'
    if style == "rfc2047-sjis":
        return f'filename="{encoded_word(name, "shift_jis")}"'
    if style == "raw-utf8":
        return f'filename="{name}"'
    if style == "rfc2231-raw":
        return f"filename*=utf-8''{name}"
    raise ValueError(style)


def _body_part(body: str, charset: str, transfer: str, subtype: str = "plain") -> bytes:
    data = encode_text(body.replace("\r\n", "\n").replace("\n", "\r\n"), charset)
    label = "" if charset == "none" else f'; charset="{charset.upper()}"'
    if transfer == "base64":
        payload = base64.encodebytes(data)
    elif transfer == "quoted-printable":
        payload = quopri.encodestring(data)
    else:
        payload = data
    head = (
        f"Content-Type: text/{subtype}{label}\r\nContent-Transfer-Encoding: {transfer}\r\n\r\n"
    ).encode()
    return head + payload.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def build(
    subject: str,
    body: str,
    *,
    from_addr: str = "taro@example.co.jp",
    from_name: str = "山田 太郎",
    to: str = "code@occto.or.jp",
    charset: str = "iso-2022-jp",
    transfer: str = "7bit",
    attachments: list[tuple[str, bytes, str]] | tuple = (),
    name_style: str = "rfc2231",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
    html: bool = False,
    date: datetime | None = None,
) -> bytes:
    """One raw message. `charset="none"` writes text/plain with no charset parameter at all
    (the ISO-2022-JP bytes stay), as some old clients and gateways do."""
    body_charset = "iso-2022-jp" if charset == "none" else charset
    head_charset = "iso-2022-jp" if charset in ("none", "iso-2022-jp") else charset
    message_id = message_id or f"<{uuid.uuid4().hex}@example.co.jp>"
    lines = [
        f"From: {_header(from_name, head_charset)} <{from_addr}>",
        f"To: {to}",
        f"Subject: {_header(subject, head_charset)}",
        f"Date: {format_datetime(date or datetime(2026, 11, 25, 10, 0, tzinfo=TOKYO))}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: {in_reply_to}")
    if references:
        lines.append(f"References: {' '.join(references)}")
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if charset == "none":
        text = body.replace("\n", "\r\n")
        part = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" + encode_jis(
            text
        )
    else:
        part = _body_part(body, body_charset, transfer, "html" if html else "plain")
    if not attachments:
        return ("\r\n".join(lines) + "\r\n").encode() + part + b"\r\n"
    boundary = f"----=_Part_{uuid.uuid4().hex[:16]}"
    lines.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
    out = ("\r\n".join(lines) + "\r\n\r\n").encode()
    out += f"--{boundary}\r\n".encode() + part + b"\r\n"
    for filename, data, content_type in attachments:
        params = _filename_params(filename, name_style)
        head = (
            f"--{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; {params}\r\n\r\n"
        )
        out += head.encode("utf-8") + base64.encodebytes(data).replace(b"\n", b"\r\n")
    out += f"--{boundary}--\r\n".encode()
    return out
