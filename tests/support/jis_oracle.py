"""The byte-by-byte ISO-2022-JP reader as it was before it read runs at a time (issue 17's
hostile-input review: 20 MB of 8-bit bytes after one ESC $ B took 12 s and 1.2 GB). Kept here,
unchanged, as the oracle the faster reader must agree with on any bytes."""

from __future__ import annotations

from mailbot.mail.charset import ESC, _jis_pair_to_sjis


def decode_jis_bytewise_oracle(data: bytes) -> tuple[str, list[str]]:
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
