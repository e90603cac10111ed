"""Charset labels read the way mail clients read them: the WHATWG Encoding Standard's map.

Mail says `gb2312`, `iso-8859-1`, `us-ascii` or `euc-kr` and means what Windows wrote: GBK,
windows-1252, windows-949. Python takes the labels literally, so a GBK character in a `gb2312`
part or a curly quote in an `iso-8859-1` one becomes U+FFFD or a C1 control. Only the labels
whose WHATWG meaning differs from Python's are listed; every other label goes to Python's own
lookup. Shift_JIS and ISO-2022-JP are read in `mailbot.mail.charset` (CP932 and its JIS mapping).
"""

from __future__ import annotations

import codecs

_FAMILIES = {
    "cp1252": (
        "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 iso8859-1 "
        "iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252 us "
        "iso646-us csascii latin-1"
    ),
    "cp1254": (
        "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 "
        "iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254"
    ),
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "gb18030": (
        "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk "
        "gb18030 euc-cn x-euc-cn"
    ),
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "cp949": (
        "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 "
        "ksc5601 ksc_5601 windows-949 cp949 uhc"
    ),
    "cp932": (
        "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis cp932 "
        "x-ms-cp932 shift_jisx0213"
    ),
    "koi8_u": "koi8-ru koi8-u",
    "iso8859_8": "csiso88598i iso-8859-8-i logical",
    "mac_cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "mac_roman": "csmacintosh mac macintosh x-mac-roman",
    "utf-16": "utf-16 utf-16le csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff",
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "utf-7": "utf-7 unicode-1-1-utf-7 csunicode11utf7 x-utf-7",
}
WHATWG = {label: codec for codec, labels in _FAMILIES.items() for label in labels.split()}
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
    """The Python codec that reads `label` as mail clients do, or None when nobody knows it."""
    codec = WHATWG.get(label)
    if codec:
        return codec
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


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
