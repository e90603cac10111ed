"""Decoding Japanese mail text the way Japanese mail is really written.

Python's `iso2022_jp*` codecs reject the NEC row-13 (①, ㈱, Ⅲ) and IBM extension (髙)
characters that Outlook and most Japanese clients put inside ISO-2022-JP (really CP50220/
CP50221), and its `shift_jis` codec rejects them in Shift_JIS: a 髙橋 silently becomes mojibake
or U+FFFD, and a wrong name on a notice is a wrong notice to a real company. So Shift_JIS labels
decode as CP932, and ISO-2022-JP is read by the WHATWG decoder (Firefox's encoding_rs), whose
JIS X 0208 index is CP932's; what it refuses is read the older way, two-byte runs mapped JIS
row/cell → Shift_JIS bytes and decoded as CP932. Nothing here raises.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import contextlib
import quopri
import re
from email.header import Header, decode_header

import endec
from endec.exceptions import DecodeError

from mailbot.mail.labels import REFUSED, codec_for, decode_strict, single_byte

JIS_LABELS = frozenset(
    {"iso-2022-jp", "iso2022jp", "iso-2022-jp-1", "iso-2022-jp-2", "iso-2022-jp-3",
     "iso-2022-jp-2004", "iso-2022-jp-ext", "csiso2022jp", "cp50220", "cp50221", "cp50222",
     "jis", "x-jis"}
)  # fmt: skip
ESC = 0x1B
JIS_ESCAPE = re.compile(rb"\x1b\$[@B]|\x1b\(I")
JIS_X_0213_ESCAPE = re.compile(rb"\x1b\$\([OPQ]")
JIS_X_0212_ESCAPE = re.compile(rb"\x1b\$\(D")


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

_JIS_ONLY = re.compile("[" + "".join(map(chr, JIS_TO_CP932)) + "]")


def _as_cp932(text: str) -> str:
    """`JIS_TO_CP932` applied: `str.translate` looks every character up (~200 us for a
    5,000-character body), and a search for the six finds that most texts have none."""
    return text.translate(JIS_TO_CP932) if _JIS_ONLY.search(text) else text


def _jis_extension(error: UnicodeError) -> tuple[str, int]:
    """Error handler for the C codec: a two-byte pair it refuses (NEC row 13 ①㈱, the
    NEC-selected IBM rows 89-92 髙) is read as CP932 reads it, and decoding goes on in the same
    state. Anything else (a broken pair, SO/SI, JIS X 0212, 8-bit bytes) re-raises, so the
    caller takes the byte-by-byte path."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    text = JIS_EXTENSIONS.get(error.object[error.start : error.start + 2])
    if text is None:
        raise error
    return text, error.start + 2


def _extensions() -> dict[bytes, str]:
    """Every JIS pair CP932 reads but the stdlib's ISO-2022-JP codec refuses: NEC row 13 and
    the NEC-selected IBM rows 89-92 (tests/test_parse.py proves no other row has one)."""
    table = {}
    for j1 in (0x2D, 0x79, 0x7A, 0x7B, 0x7C):
        for j2 in range(0x21, 0x7F):
            with contextlib.suppress(UnicodeDecodeError):
                table[bytes((j1, j2))] = _jis_pair_to_sjis(j1, j2).decode("cp932")
    return table


JIS_EXTENSIONS = _extensions()


codecs.register_error("mailbot-jis-extension", _jis_extension)


def decode_jis(data: bytes) -> tuple[str, list[str]]:
    """ISO-2022-JP (with CP50220/50221 extensions) → text as CP932 reads it.

    encoding_rs (through `endec`) reads JIS X 0208 with the NEC row 13 and IBM extensions
    Outlook writes (①, ㈱, 髙) and CP932's forms of 〜 − ¢ £ ¬ ‖, in one pass of compiled code,
    so a text with extension characters costs what plain JIS costs (the stdlib codec calls back
    into Python at each one). It refuses whatever is damaged or unusual (SO/SI, a line break
    inside a two-byte run, JIS X 0212/0213, two escapes in a row, 8-bit bytes), and reads
    JIS-Roman 0x5C/0x7E as ¥/‾ where this desk has always read ASCII; those texts, and only
    those, go the older way (`decode_jis_stdlib`). tests/test_charset_jis.py proves the two
    agree on every input the first accepts."""
    try:
        text = endec.decode(data, "iso-2022-jp", bom="ignore")
    except DecodeError:
        return decode_jis_stdlib(data)
    if "\xa5" in text or "\u203e" in text:
        return decode_jis_stdlib(data)
    return text, []


def decode_jis_stdlib(data: bytes) -> tuple[str, list[str]]:
    """What `decode_jis` refuses to the WHATWG decoder.

    JIS X 0208 goes through the stdlib's C codec (remapped to CP932's characters), which is
    ~20× faster, with the extension characters Outlook writes (①, ㈱, 髙) filled in by
    `_jis_extension` at the pair the codec refuses; what remains (half-width kana, JIS-Roman,
    damage) takes the byte-by-byte path below. Runs of JIS X 0213 (ISO-2022-JP-3/2004:
    ESC $ ( O, P, Q) or JIS X 0212 (ISO-2022-JP-2: ESC $ ( D), which CP932 cannot hold, are
    read by the stdlib codec for those, when it reads the whole text."""
    for escape, codec in (
        (JIS_X_0213_ESCAPE, "iso2022_jp_2004"),
        (JIS_X_0212_ESCAPE, "iso2022_jp_2"),
    ):
        if escape.search(data):
            with contextlib.suppress(UnicodeDecodeError):
                return _as_cp932(data.decode(codec)), []
    if b"\x1b(J" not in data and b"\x1b(I" not in data:
        try:
            return _as_cp932(data.decode("iso2022_jp", "mailbot-jis-extension")), []
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
    label = charset.strip().strip('"').strip("'").lower()
    return label or None


def decode_bytes(
    data: bytes, charset: str | None, fallback: str | None = None
) -> tuple[str, list[str]]:
    """Text and what had to be guessed or replaced. Never raises.

    The label is read as the WHATWG Encoding Standard maps it (`mailbot.mail.labels`) and checked
    against the bytes first: a label that does not fit them (a decoding error, 8-bit bytes under
    a 7-bit label, UTF-8 under a single-byte label) is not trusted, and `_guess` reads the bytes
    instead. `fallback` is the charset declared elsewhere in the mail, for unlabelled bytes."""
    label = normalize_label(charset)
    if label is None or label in ("7bit", "8bit", "x-unknown") or label.startswith("unknown"):
        return _unlabelled(data, "no charset declared", fallback)
    if label in JIS_LABELS:
        if data.isascii() or looks_like_jis(data):
            return decode_jis(data)
        return _guess(data, f"labelled {label} but 8-bit", None)
    if label in UTF7_LABELS:
        return decode_utf7(data)
    if label in REFUSED:
        text, defects = _unlabelled(data, f"charset {label} not decoded", None)
        return text, [f"charset {label} not decoded (WHATWG: replacement)", *defects]
    codec = codec_for(label)
    if codec is None:
        return _unlabelled(data, f"unknown charset {label!r}", fallback)
    if data.isascii() and not codec.startswith("utf-16"):
        if looks_like_jis(data):
            text, defects = decode_jis(data)
            return text, [f"labelled {label} but iso-2022-jp", *defects]
        return data.decode("ascii"), []
    if single_byte(codec) and _is_utf8(data):
        return data.decode("utf-8"), [f"labelled {label} but utf-8"]
    try:
        return decode_strict(data, codec), []
    except UnicodeDecodeError:
        if looks_like_jis(data):
            text, defects = decode_jis(data)
            return text, [f"labelled {label} but iso-2022-jp", *defects]
        wider = JIS_X_0213_OF.get(codec)
        if wider:
            with contextlib.suppress(UnicodeDecodeError):
                return data.decode(wider), [f"labelled {label} but {wider}"]
        return _guess(data, f"not valid {label}", codec)


JIS_X_0213_OF = {"cp932": "shift_jis_2004", "euc_jp": "euc_jis_2004"}
"""A Shift_JIS or EUC-JP label over bytes only JIS X 0213 defines (macOS and mobile mail
write 𠀋 or 俱 so): read as the JIS X 0213 form of the same encoding before any guess."""


UTF7_LABELS = frozenset({"utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7", "x-utf-7"})
_UTF7_RUN = re.compile(rb"\+([A-Za-z0-9+/]+)-?")


def decode_utf7(data: bytes) -> tuple[str, list[str]]:
    """UTF-7 (old Exchange delivery reports write it), decoded only when no base64 run hides
    an ASCII character: an encoder writes ASCII as itself, so a run that decodes to `<`, `@`
    or a quote is a stranger smuggling it past every check that reads the bytes. Such text,
    and text that is not UTF-7 at all, stays as the literal bytes."""
    if not data.isascii():
        return _guess(data, "labelled utf-7 but 8-bit", None)
    try:
        hidden = any(
            ch < "\x80" for run in _UTF7_RUN.finditer(data) for ch in run.group(0).decode("utf-7")
        )
        text = data.decode("utf-7")
    except UnicodeDecodeError:
        return data.decode("ascii"), ["utf-7 not valid: left as written"]
    if hidden:
        return data.decode("ascii"), ["utf-7 hiding ASCII characters: left as written"]
    return text, []


def _unlabelled(data: bytes, why: str, fallback: str | None) -> tuple[str, list[str]]:
    if looks_like_jis(data):
        text, defects = decode_jis(data)
        return text, ["charset guessed: iso-2022-jp", *defects]
    if data.isascii():
        return data.decode("ascii"), []
    label = normalize_label(fallback)
    codec = codec_for(label) if label and label not in JIS_LABELS else None
    return _guess(data, why, codec)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_KANA = re.compile(r"[\u3041-\u30ff]")
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]{2}")
_NOT_CJK_TEXT = re.compile(
    r"[^\t\n\r\x20-\x7e\u00a7\u00a8\u00b0\u00b1\u00b4\u00b6\u00d7\u00f7\u0391-\u03c9"
    r"\u0401-\u0451\u2010-\u2312\u2460-\u24ff\u2500-\u257f\u25a0-\u26ff\u3000-\u30ff"
    r"\u3190-\u33ff\u3400-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff01-\uff60\uffe0-\uffe5]"
)


def plausible_cjk(text: str) -> bool:
    """Bytes read as CP932 or GBK look like real Japanese or Chinese: only characters those
    texts use (no private-use, no half-width kana, no accented Latin) and at least one kana or
    one two-character word. Latin-1 `Hofjägeralle` read as CP932 gives a lone `臠`; GB2312 read
    as CP932 gives half-width kana; either is refused."""
    if _NOT_CJK_TEXT.search(text):
        return False
    return bool(_KANA.search(text) or _CJK_RUN.search(text))


LATIN_DEFAULTS = frozenset({"cp1252", "cp1254"})


def _guess(data: bytes, why: str, declared: str | None) -> tuple[str, list[str]]:
    """Unlabelled or mislabelled bytes: UTF-8 first (it almost never fits by accident), then the
    declared charset, then CP932 where the result is plausible Japanese, then GBK where it is
    plausible Chinese, then windows-1252 (UTF-8 sequences still read as UTF-8).

    A declared `iso-8859-1`/`us-ascii` (windows-1252 in WHATWG terms) is what many mailers write
    by default and fits any bytes, so it proves nothing and waits until after the CJK checks; a
    declared Greek or Cyrillic single-byte charset is a real statement and comes first."""
    if _is_utf8(data):
        return data.decode("utf-8"), [f"{why}: decoded as utf-8"]
    if declared and declared != "utf-8" and declared not in LATIN_DEFAULTS:
        try:
            return decode_strict(data, declared), [f"{why}: decoded as {declared}"]
        except UnicodeDecodeError:
            pass
    for codec in ("cp932", "gb18030"):
        if codec == declared:
            continue
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if plausible_cjk(text):
            return text, [f"{why}: decoded as {codec}"]
    if declared and declared != "utf-8" and not single_byte(declared):
        return data.decode(declared, errors="replace"), [f"{why}: undecodable bytes replaced"]
    if declared in LATIN_DEFAULTS:
        return decode_strict(data, declared), [f"{why}: decoded as {declared}"]
    return data.decode("utf-8", errors="mailbot-utf8-or-1252"), [f"{why}: decoded as windows-1252"]


def raw_header_bytes(value: str) -> bytes:
    """A header string as the parser left it (8-bit bytes kept as surrogates) back to bytes."""
    return value.encode("ascii", errors="surrogateescape")


def decode_header_value(value: str | bytes | Header | None, fallback: str | None = None) -> str:
    """RFC 2047 encoded-words in any of the charsets above, and raw 8-bit or ISO-2022-JP text
    that some clients put in headers unencoded (read by `_guess`, with `fallback` the charset
    the mail declares for its text). Only the first HEADER_CAP characters are read."""
    if value is None:
        return ""
    if isinstance(value, Header):
        value = "".join(
            chunk.decode("ascii", errors="surrogateescape")
            if isinstance(chunk, bytes) and str(charset).startswith("unknown")
            else chunk
            if isinstance(chunk, str)
            else decode_bytes(chunk, charset)[0]
            for chunk, charset in decode_header(value)
        )
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="surrogateescape")
    value = FOLD.sub("", str(value))[:HEADER_CAP]
    if "=?" in value and _has_surrogates(value):
        return "".join(_decode_text(piece, fallback) for piece in WORD_RUN.split(value) if piece)
    return _decode_text(value, fallback)


WORD_RUN = re.compile(r"(=\?[^?\s]+\?[QqBb]\?[^?]*\?=(?:\s+=\?[^?\s]+\?[QqBb]\?[^?]*\?=)*)")
"""A run of encoded-words: raw 8-bit text beside one is decoded on its own (the stdlib hands it
back as escaped text, `\\udce9…`, when a header mixes the two)."""


def _decode_text(value: str, fallback: str | None) -> str:
    try:
        parts = decode_header(value)
    except Exception:
        parts = [(value, None)]
    pieces: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            data = raw_header_bytes(chunk) if _has_surrogates(chunk) else None
            if data is None and "\x1b" not in chunk:
                pieces.append(_loose_words(chunk))
                continue
            data = data or chunk.encode("latin-1", errors="replace")
            pieces.append(_loose_words(decode_bytes(data, None, fallback)[0]))
        elif charset is None:
            pieces.append(_loose_words(decode_bytes(chunk, None, fallback)[0]))
        else:
            pieces.append(decode_bytes(chunk, charset, fallback)[0])
    return "".join(pieces)


def _loose_words(text: str) -> str:
    """Loose encoded-words decoded in text as the sender wrote it, never in text an
    encoded-word decoded to: `=?utf-8?B?PT91dGYt…?=` whose text is itself `=?…?=` is
    decoded once, so a doubly encoded name cannot reach a check in disguise."""
    return LOOSE_WORD.sub(_loose_word, text) if "=?" in text else text


FOLD = re.compile(r"\r?\n(?=[ \t])")
LOOSE_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")
HEADER_CAP = 16 * 1024
"""What of a header field is decoded: the stdlib's encoded-word reader costs time quadratic in a
line's length, and no real Subject, name or address list comes near 16 KB."""


def _loose_word(found: re.Match[str]) -> str:
    """An encoded-word the stdlib refused (spaces inside, as a Microsoft DSN writes them)."""
    charset, kind, text = found.groups()
    try:
        if kind in "Bb":
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            data = quopri.decodestring(text.replace("_", " ").encode("ascii"), header=False)
    except (ValueError, UnicodeEncodeError, binascii.Error):
        return found.group(0)
    return decode_bytes(data, charset.split("*", 1)[0])[0]


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)
