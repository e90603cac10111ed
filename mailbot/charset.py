"""Decoding Japanese mail text the way Japanese mail is really written.

Python's `iso2022_jp*` codecs reject the NEC row-13 (①, ㈱, Ⅲ) and IBM extension (髙)
characters that Outlook and most Japanese clients put inside ISO-2022-JP (really CP50220/
CP50221), and its `shift_jis` codec rejects them in Shift_JIS: a 髙橋 silently becomes mojibake
or U+FFFD, and a wrong name on a notice is a wrong notice to a real company. So Shift_JIS labels
decode as CP932, and ISO-2022-JP two-byte runs are mapped JIS row/cell → Shift_JIS bytes and
decoded as CP932, which knows every one of those characters. Nothing here raises.
"""

from __future__ import annotations

import re
from email.header import Header, decode_header

SJIS_LABELS = frozenset(
    {"shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "csshiftjis", "windows-31j",
     "cp932", "ms932", "x-ms-cp932", "shift_jisx0213"}
)  # fmt: skip
JIS_LABELS = frozenset(
    {"iso-2022-jp", "iso2022jp", "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3",
     "iso-2022-jp-ext", "csiso2022jp", "cp50220", "cp50221", "cp50222", "jis", "x-jis"}
)  # fmt: skip
ESC = 0x1B
JIS_ESCAPE = re.compile(rb"\x1b\$[@B]|\x1b\(I")


def looks_like_jis(data: bytes) -> bool:
    return JIS_ESCAPE.search(data) is not None


def _jis_pair_to_sjis(j1: int, j2: int) -> bytes:
    s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
    s2 = j2 + (31 if j2 <= 95 else 32) if j1 & 1 else j2 + 126
    return bytes((s1, s2))


# The stdlib's JIS X 0208 mapping differs from CP932's (what Windows users typed) on exactly
# these six characters; tests/test_parse.py checks every one of the 94×94 code points.
JIS_TO_CP932 = str.maketrans(
    {
        "\u301c": "\uff5e",
        "\u2016": "\u2225",
        "\u2212": "\uff0d",
        "\u00a2": "\uffe0",
        "\u00a3": "\uffe1",
        "\u00ac": "\uffe2",
    }
)


def decode_jis(data: bytes) -> tuple[str, list[str]]:
    """ISO-2022-JP (with CP50220/50221 extensions) → text via Shift_JIS/CP932.

    Plain JIS X 0208 goes through the stdlib's C codec (remapped to CP932's characters), which
    is ~20× faster; anything it refuses (①, ㈱, 髙, half-width kana, JIS-Roman, damage) takes
    the byte-by-byte path below."""
    if b"\x1b(J" not in data and b"\x1b(I" not in data:
        try:
            return data.decode("iso2022_jp").translate(JIS_TO_CP932), []
        except UnicodeDecodeError:
            pass
    return decode_jis_bytewise(data)


def decode_jis_bytewise(data: bytes) -> tuple[str, list[str]]:
    out: list[str] = []
    defects: list[str] = []
    mode = "ascii"
    shifted = False
    pending = bytearray()
    i, n = 0, len(data)

    def flush() -> None:
        if pending:
            text = bytes(pending).decode("cp932", errors="replace")
            if "\ufffd" in text:
                defects.append("iso-2022-jp: characters outside CP932 replaced")
            out.append(text)
            pending.clear()

    while i < n:
        byte = data[i]
        if byte == ESC:
            seq3 = data[i : i + 3]
            seq4 = data[i : i + 4]
            if seq3 in (b"\x1b(B", b"\x1b(J"):
                flush()
                mode, i = "ascii", i + 3
                continue
            if seq3 in (b"\x1b$@", b"\x1b$B"):
                flush()
                mode, i = "kanji", i + 3
                continue
            if seq3 == b"\x1b(I":
                flush()
                mode, i = "kana", i + 3
                continue
            if seq4 in (b"\x1b$(D", b"\x1b$(Q", b"\x1b$(O", b"\x1b$(P"):
                flush()
                mode, i = "unsupported", i + 4
                defects.append("iso-2022-jp: JIS X 0212/0213 run replaced")
                continue
            if seq4 == b"\x1b&@\x1b" or seq3 == b"\x1b&@":
                i += 3
                continue
        if byte == 0x0E:
            flush()
            shifted, i = True, i + 1
            continue
        if byte == 0x0F:
            flush()
            shifted, i = False, i + 1
            continue
        if byte in (0x0A, 0x0D):
            flush()
            if mode == "kanji":
                mode = "ascii"
            out.append(chr(byte))
            i += 1
            continue
        if mode == "kanji" and not shifted:
            if i + 1 < n and 0x21 <= byte <= 0x7E and 0x21 <= data[i + 1] <= 0x7E:
                pending += _jis_pair_to_sjis(byte, data[i + 1])
                i += 2
                continue
            flush()
            out.append("\ufffd")
            defects.append("iso-2022-jp: broken two-byte sequence")
            i += 1
            continue
        if (mode == "kana" or shifted) and 0x21 <= byte <= 0x5F:
            pending.append(byte | 0x80)
            i += 1
            continue
        if mode == "unsupported" and 0x21 <= byte <= 0x7E and i + 1 < n:
            flush()
            out.append("\ufffd")
            i += 2
            continue
        flush()
        if byte < 0x80:
            out.append(chr(byte))
        else:
            pending.append(byte)
            flush()
        i += 1
    flush()
    return "".join(out), sorted(set(defects))


def normalize_label(charset: str | None) -> str | None:
    if not charset:
        return None
    label = charset.strip().strip('"').lower()
    return label or None


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, list[str]]:
    """Text and what had to be guessed or replaced. Never raises."""
    label = normalize_label(charset)
    if label in JIS_LABELS:
        return decode_jis(data)
    if label in SJIS_LABELS:
        text = data.decode("cp932", errors="replace")
        return text, (["shift_jis: undecodable bytes replaced"] if "\ufffd" in text else [])
    if label in (None, "us-ascii", "ascii", "7bit", "8bit") or label.startswith("unknown"):
        if looks_like_jis(data):
            text, defects = decode_jis(data)
            return text, ["charset guessed: iso-2022-jp", *defects]
        if data.isascii():
            return data.decode("ascii"), []
        return _guess(data, "no charset declared")
    if label in ("euc-jp", "eucjp", "x-euc-jp", "euc_jp"):
        text = data.decode("euc_jp", errors="replace")
        return text, (["euc-jp: undecodable bytes replaced"] if "\ufffd" in text else [])
    if label in ("utf8", "utf-8"):
        try:
            return data.decode("utf-8"), []
        except UnicodeDecodeError:
            if looks_like_jis(data):
                text, defects = decode_jis(data)
                return text, ["labelled utf-8 but iso-2022-jp", *defects]
            return _guess(data, "labelled utf-8 but not utf-8")
    try:
        return data.decode(label), []
    except LookupError:
        if looks_like_jis(data):
            text, defects = decode_jis(data)
            return text, [f"unknown charset {label!r}: iso-2022-jp guessed", *defects]
        return _guess(data, f"unknown charset {label!r}")
    except UnicodeDecodeError:
        return _guess(data, f"not valid {label}")


def _guess(data: bytes, why: str) -> tuple[str, list[str]]:
    for codec in ("utf-8", "cp932"):
        try:
            return data.decode(codec), [f"{why}: decoded as {codec}"]
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", errors="replace"), [f"{why}: undecodable bytes replaced"]


def raw_header_bytes(value: str) -> bytes:
    """A header string as the parser left it (8-bit bytes kept as surrogates) back to bytes."""
    return value.encode("ascii", errors="surrogateescape")


def decode_header_value(value: str | bytes | Header | None) -> str:
    """RFC 2047 encoded-words in any of the charsets above, and raw 8-bit or ISO-2022-JP text
    that some clients put in headers unencoded."""
    if value is None:
        return ""
    if isinstance(value, Header):
        return "".join(
            chunk if isinstance(chunk, str) else decode_bytes(chunk, charset)[0]
            for chunk, charset in decode_header(value)
        )
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="surrogateescape")
    value = str(value)
    try:
        parts = decode_header(value)
    except Exception:
        parts = [(value, None)]
    pieces: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            data = raw_header_bytes(chunk) if _has_surrogates(chunk) else None
            if data is None and "\x1b" not in chunk:
                pieces.append(chunk)
                continue
            data = data or chunk.encode("latin-1", errors="replace")
            pieces.append(decode_bytes(data, None)[0])
        else:
            pieces.append(decode_bytes(chunk, charset)[0])
    return "".join(pieces)


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)
