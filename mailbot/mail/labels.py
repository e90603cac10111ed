"""Charset labels read the way mail clients read them: the WHATWG Encoding Standard's map.

Mail says `gb2312`, `iso-8859-1`, `us-ascii` or `euc-kr` and means what Windows wrote: GBK,
windows-1252, windows-949. Python takes the labels literally, so a GBK character in a `gb2312`
part or a curly quote in an `iso-8859-1` one becomes U+FFFD or a C1 control; and Python knows
none of `x-cp1251`, `koi8`, `cskoi8r`, `x-mac-cyrillic`, `dos-874`… `WHATWG_LABELS` is the
standard's whole table (encodings.json, by encoding name; tests/test_charset_labels.py checks
it), `CODECS` the Python codec that reads each encoding, and `MAIL_LABELS` the few labels mail
uses beyond the web's. The standard's "replacement" encodings (ISO-2022-KR, HZ, ISO-2022-CN:
7-bit encodings that can hide ASCII from a filter) are never decoded, and neither is UTF-7,
which the standard leaves out for the same reason: `REFUSED`; see `mailbot.mail.charset`.
Every other label goes to Python's own lookup. Shift_JIS and ISO-2022-JP are read in
`mailbot.mail.charset` (CP932 and its JIS mapping).
"""

from __future__ import annotations

import codecs

WHATWG_LABELS: dict[str, tuple[str, ...]] = {
    name: tuple(labels.split())
    for name, labels in {
        "UTF-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
        "IBM866": "866 cp866 csibm866 ibm866",
        "ISO-8859-2": (
            "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 iso_8859-2:1987 "
            "l2 latin2"
        ),
        "ISO-8859-3": (
            "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 iso_8859-3:1988 "
            "l3 latin3"
        ),
        "ISO-8859-4": (
            "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 iso_8859-4:1988 "
            "l4 latin4"
        ),
        "ISO-8859-5": (
            "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 iso_8859-5 "
            "iso_8859-5:1988"
        ),
        "ISO-8859-6": (
            "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 "
            "iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987"
        ),
        "ISO-8859-7": (
            "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 iso8859-7 "
            "iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek"
        ),
        "ISO-8859-8": (
            "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 iso8859-8 "
            "iso88598 iso_8859-8 iso_8859-8:1988 visual"
        ),
        "ISO-8859-8-I": "csiso88598i iso-8859-8-i logical",
        "ISO-8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
        "ISO-8859-13": "iso-8859-13 iso8859-13 iso885913",
        "ISO-8859-14": "iso-8859-14 iso8859-14 iso885914",
        "ISO-8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
        "ISO-8859-16": "iso-8859-16",
        "KOI8-R": "cskoi8r koi koi8 koi8-r koi8_r",
        "KOI8-U": "koi8-ru koi8-u",
        "macintosh": "csmacintosh mac macintosh x-mac-roman",
        "windows-874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
        "windows-1250": "cp1250 windows-1250 x-cp1250",
        "windows-1251": "cp1251 windows-1251 x-cp1251",
        "windows-1252": (
            "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 "
            "iso8859-1 iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 "
            "x-cp1252"
        ),
        "windows-1253": "cp1253 windows-1253 x-cp1253",
        "windows-1254": (
            "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 "
            "iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254"
        ),
        "windows-1255": "cp1255 windows-1255 x-cp1255",
        "windows-1256": "cp1256 windows-1256 x-cp1256",
        "windows-1257": "cp1257 windows-1257 x-cp1257",
        "windows-1258": "cp1258 windows-1258 x-cp1258",
        "x-mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
        "GBK": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk",
        "gb18030": "gb18030",
        "Big5": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
        "EUC-JP": "cseucpkdfmtjapanese euc-jp x-euc-jp",
        "ISO-2022-JP": "csiso2022jp iso-2022-jp",
        "Shift_JIS": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
        "EUC-KR": (
            "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 "
            "ksc5601 ksc_5601 windows-949"
        ),
        "replacement": "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement",
        "UTF-16BE": "unicodefffe utf-16be",
        "UTF-16LE": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
        "x-user-defined": "x-user-defined",
    }.items()
}  # fmt: skip
"""The WHATWG Encoding Standard's labels (https://encoding.spec.whatwg.org/encodings.json)."""

CODECS: dict[str, str | None] = {
    "UTF-8": "utf-8", "IBM866": "cp866", "ISO-8859-2": "iso8859_2", "ISO-8859-3": "iso8859_3",
    "ISO-8859-4": "iso8859_4", "ISO-8859-5": "iso8859_5", "ISO-8859-6": "iso8859_6",
    "ISO-8859-7": "iso8859_7", "ISO-8859-8": "iso8859_8", "ISO-8859-8-I": "iso8859_8",
    "ISO-8859-10": "iso8859_10", "ISO-8859-13": "iso8859_13", "ISO-8859-14": "iso8859_14",
    "ISO-8859-15": "iso8859_15", "ISO-8859-16": "iso8859_16", "KOI8-R": "koi8_r",
    "KOI8-U": "koi8_u", "macintosh": "mac_roman", "windows-874": "cp874",
    "windows-1250": "cp1250", "windows-1251": "cp1251", "windows-1252": "cp1252",
    "windows-1253": "cp1253", "windows-1254": "cp1254", "windows-1255": "cp1255",
    "windows-1256": "cp1256", "windows-1257": "cp1257", "windows-1258": "cp1258",
    "x-mac-cyrillic": "mac_cyrillic",
    # the standard's GBK decoder is its gb18030 decoder; Big5 is Big5-HKSCS
    "GBK": "gb18030", "gb18030": "gb18030", "Big5": "big5hkscs",
    "EUC-JP": "euc_jp", "ISO-2022-JP": "iso2022_jp", "Shift_JIS": "cp932", "EUC-KR": "cp949",
    "UTF-16BE": "utf-16-be",
    # Python's utf-16 reads a byte order mark as the standard does, else little-endian
    "UTF-16LE": "utf-16",
    # no Python codec: such text is read as unlabelled
    "x-user-defined": None,
    "replacement": None,
}  # fmt: skip

MAIL_LABELS: dict[str, str] = {
    label: codec
    for codec, labels in {
        "cp1252": "latin-1 us iso646-us csascii",
        "gb18030": "euc-cn x-euc-cn",
        "cp949": "cp949 uhc",
        "cp932": "cp932 x-ms-cp932",
        # JIS X 0213 (2004 adds ten characters to 2000): its rows beyond JIS X 0208 are not
        # CP932's, so reading it as CP932 turns 𠀋 into U+FFFD and plane-2 kanji into IBM ones
        "shift_jis_2004": "shift_jisx0213 shift_jis-2004 shift_jis2004 x-sjis-2004",
        "euc_jis_2004": "euc-jisx0213 euc-jis-2004 euc_jis_2004 x-euc-jisx0213",
    }.items()
    for label in labels.split()
}
"""Labels mail uses that the web's table has not, read as the mail clients that write them."""

REFUSED = frozenset(WHATWG_LABELS["replacement"]) | frozenset(
    {"utf-7", "utf7", "unicode-1-1-utf-7", "csunicode11utf7", "x-utf-7"}
)
"""Labels whose text is never decoded as labelled: the standard's "replacement" encodings and
UTF-7, each of which can encode `<`, `@` or a quote so that no byte of the mail shows one."""

WHATWG = {
    label: codec
    for name, labels in WHATWG_LABELS.items()
    for label in labels
    if (codec := CODECS[name]) is not None
} | MAIL_LABELS
C1_TOLERANT = frozenset({"cp1252", "cp1254", "cp874"})


def _c1_as_latin1(error: UnicodeDecodeError) -> tuple[str, int]:
    """The five bytes windows-1252 leaves undefined (0x81, 0x8D, …) are U+0081… in WHATWG."""
    return error.object[error.start : error.end].decode("latin-1"), error.end


def _as_1252(error: UnicodeDecodeError) -> tuple[str, int]:
    """Bytes that are not UTF-8 read as windows-1252: a mail pasted together from a UTF-8 and
    a Latin-1 source keeps both halves readable."""
    return error.object[error.start : error.end].decode("cp1252", errors="mailbot-c1"), error.end


codecs.register_error("mailbot-c1", _c1_as_latin1)
codecs.register_error("mailbot-utf8-or-1252", _as_1252)


def codec_for(label: str) -> str | None:
    """The Python codec that reads `label` as mail clients do, or None when nobody knows it
    (or it is one the standard maps to no decoder: x-user-defined, the REFUSED ones)."""
    codec = WHATWG.get(label)
    if codec:
        return codec
    if label in REFUSED or label in WHATWG_LABELS["x-user-defined"]:
        return None
    try:
        name = codecs.lookup(label).name
        b"\0\0\0\0".decode(name)
    except (LookupError, ValueError):
        return None
    return None if name in NOT_CHARSETS else name


NOT_CHARSETS = frozenset(
    {"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode", "charmap",
     "utf-7", "hz", "iso2022_kr"}
)  # fmt: skip
"""Python codecs a stranger may name as a charset that are no charset a mail client writes:
`unicode_escape` turns the text `\\u003c` into `<`, `idna` and `punycode` raise on ordinary
text, and the rest are the 7-bit encodings refused above under Python's own names. Codecs that
are no text encoding (`base64`, `rot13`, `zlib`) or decode nothing (`undefined`) fail the
trial decode. Such text is read as unlabelled."""


def decode_strict(data: bytes, codec: str) -> str:
    """Raises UnicodeDecodeError when the bytes do not fit the codec (the fit check)."""
    if codec in C1_TOLERANT:
        return data.decode(codec, errors="mailbot-c1")
    return data.decode(codec)


def single_byte(codec: str) -> bool:
    """A single-byte codec decodes any bytes, so it proves nothing about the bytes."""
    return codec in C1_TOLERANT or codecs.lookup(codec).name in _SINGLE_BYTE


_SINGLE_BYTE = frozenset(
    codecs.lookup(name).name
    for name in (
        "latin-1", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256",
        "cp1257", "cp1258", "cp874", "cp866", "cp437", "cp850", "koi8_r", "koi8_u",
        "mac_roman", "mac_cyrillic", "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_5",
        "iso8859_6", "iso8859_7", "iso8859_8", "iso8859_9", "iso8859_10", "iso8859_11",
        "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16", "tis_620",
    )
)  # fmt: skip
