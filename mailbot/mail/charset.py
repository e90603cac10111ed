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
    text: str | None
    try:
        text = endec.decode(data, "iso-2022-jp", bom="ignore")
    except DecodeError:
        text = None  # outside the handler: the error holds a copy of the bytes
    if text is None or "\xa5" in text or "\u203e" in text:
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


_ESCAPE = rb"\x1b(?:\(B|\(J|\$@|\$B|\(I|\$\([DOPQ]|&@)"
_KANA_RUN = re.compile(rb"[\x21-\x5f]+")
_LINE_BREAKS = re.compile(rb"[\r\n]+")
_JIS_OR_NOT = re.compile(rb"[\x21-\x7e]+|[^\x21-\x7e]+")
_SHIFT_END = re.compile(rb"[\x0e\x0f]|" + _ESCAPE)
_LINE_END = re.compile(rb"[\x0e\x0f\r\n]|" + _ESCAPE)
_UNSUPPORTED_PLAIN_END = re.compile(rb"[\x21-\x7e\x0e\x0f]|" + _ESCAPE)
"""Where a stretch read one way ends: at an escape, SO or SI (and at a line break where it
ends a two-byte run). Searched for, not matched as a repeated group, which costs `re` memory
per byte (1.3 GB for a 20 MB run)."""

_ONE_BYTE = str.maketrans(
    {b: bytes((b,)).decode("cp932", errors="replace") for b in range(0x80, 0x100)}
)
_KANA_TEXT = _ONE_BYTE | {b: bytes((b | 0x80,)).decode("cp932") for b in range(0x21, 0x60)}
"""Half-width kana (ESC ( I, SO): 0x21-0x5F read as CP932 reads the byte with its high bit set.
Each byte reads on its own, so a kana stretch is one `str.translate`."""
_SJIS_LEAD = bytes(
    ((j + 1) >> 1) + (0x70 if j <= 0x5E else 0xB0) if 0x21 <= j <= 0x7E else 0 for j in range(256)
)
_ODD_LEAD = bytes(0x80 if j & 1 else 0 for j in range(256))
_SJIS_TRAIL = bytes(
    ((k & 0x7F) + (31 if (k & 0x7F) <= 95 else 32)) if k & 0x80 else (k + 126) % 256
    for k in range(256)
)


def _jis_run_to_sjis(run: bytes) -> bytearray:
    """`_jis_pair_to_sjis` for a whole run of pairs in a few C passes: the lead byte maps on
    its own, the trail by its value and whether the lead is odd (carried in its high bit)."""
    leads, trails = run[0::2], run[1::2]
    keyed = int.from_bytes(trails, "big") | int.from_bytes(leads.translate(_ODD_LEAD), "big")
    out = bytearray(len(run))
    out[0::2] = leads.translate(_SJIS_LEAD)
    out[1::2] = keyed.to_bytes(len(trails), "big").translate(_SJIS_TRAIL)
    return out


def decode_jis_bytewise(data: bytes) -> tuple[str, list[str]]:
    """Damaged or unusual ISO-2022-JP, read as far as it goes: half-width kana (ESC ( I, SO/SI),
    JIS-Roman as ASCII, a line break ending a two-byte run, U+FFFD for what cannot be read.
    A stretch read one way (up to an escape, SO, SI or line break) is one step, and the text is
    joined as it grows, so memory follows the text: 20 MB of 8-bit bytes after one ESC $ B took
    1.2 GB (and 12 s) read a byte at a time. Time stays linear, with a step per two-byte run and
    broken byte inside a kanji stretch. The byte-at-a-time reader is tests/support/
    jis_oracle.py; tests/test_charset_jis.py holds the two to one answer."""
    chunks: list[str] = []
    out: list[str] = []
    defects: set[str] = set()
    mode = "ascii"
    shifted = False
    pending = bytearray()
    i, n = 0, len(data)

    def flush() -> None:
        if len(out) > 4096:
            chunks.append("".join(out))
            out.clear()
        if pending:
            text = bytes(pending).decode("cp932", errors="replace")
            if "\ufffd" in text:
                defects.add("iso-2022-jp: characters outside CP932 replaced")
            out.append(text)
            pending.clear()

    while i < n:
        byte = data[i]
        if byte == ESC:
            seq3 = data[i : i + 3]
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
            if data[i : i + 4] in (b"\x1b$(D", b"\x1b$(Q", b"\x1b$(O", b"\x1b$(P"):
                flush()
                mode, i = "unsupported", i + 4
                defects.add("iso-2022-jp: JIS X 0212/0213 run replaced")
                continue
            if seq3 == b"\x1b&@":
                i += 3
                continue
        if byte in (0x0E, 0x0F):
            flush()
            shifted, i = byte == 0x0E, i + 1
            continue
        if byte in (0x0A, 0x0D):
            flush()
            if mode == "kanji":
                mode = "ascii"
            run = _LINE_BREAKS.match(data, i)
            assert run is not None
            out.append(run.group().decode("ascii"))
            i = run.end()
            continue
        if mode == "kanji" and not shifted:
            pair = data[i : i + 3]
            if (
                0x21 <= byte <= 0x7E
                and len(pair) > 1
                and 0x21 <= pair[1] <= 0x7E
                and (len(pair) == 2 or not 0x21 <= pair[2] <= 0x7E)
            ):
                pending += _jis_pair_to_sjis(byte, pair[1])
                i += 2
                continue
            stop = _LINE_END.search(data, i)
            end = stop.start() if stop else n
            for run in _JIS_OR_NOT.finditer(data, i, end):
                size = run.end() - run.start()
                if 0x21 <= data[run.start()] <= 0x7E:
                    pairs = size & ~1
                    if pairs == 2:
                        pending += _jis_pair_to_sjis(data[run.start()], data[run.start() + 1])
                    elif pairs:
                        pending += _jis_run_to_sjis(data[run.start() : run.start() + pairs])
                    if not size & 1:
                        continue
                    size = 1
                flush()
                out.append("\ufffd" * size)
                defects.add("iso-2022-jp: broken two-byte sequence")
            i = end
            continue
        if mode == "kana" or (shifted and mode != "unsupported"):
            stop = (_LINE_END if mode == "kanji" else _SHIFT_END).search(data, i)
            end = stop.start() if stop else n
            text = data[i:end].decode("latin-1").translate(_KANA_TEXT)
        elif shifted and 0x21 <= byte <= 0x5F:
            run = _KANA_RUN.match(data, i)
            assert run is not None
            end = run.end()
            text = data[i:end].decode("latin-1").translate(_KANA_TEXT)
        elif mode == "unsupported" and 0x21 <= byte <= 0x7E and i + 1 < n:
            flush()
            count = 1
            i += 2
            while not shifted and i + 1 < n and 0x21 <= data[i] <= 0x7E:
                count += 1
                i += 2
            out.append("\ufffd" * count)
            continue
        else:
            end_of = _UNSUPPORTED_PLAIN_END if mode == "unsupported" else _SHIFT_END
            stop = end_of.search(data, i + 1)
            end = stop.start() if stop else n
            text = data[i:end].decode("latin-1").translate(_ONE_BYTE)
        flush()
        if "\ufffd" in text:
            defects.add("iso-2022-jp: characters outside CP932 replaced")
        out.append(text)
        i = end
    flush()
    chunks.append("".join(out))
    return "".join(chunks), sorted(defects)


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
