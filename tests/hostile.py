"""Hostile and broken mail, made from real-looking mail: what a public address receives from
broken clients, gateways and people probing it. Used by tests/test_hostile.py (a few hundred,
in the unit suite) and bench/reliability.py (thousands)."""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable, Iterator

from tests.forms import operator_form, to_bytes
from tests.jpmail import XLSX, build, encoded_word
from tests.samples import samples


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"0" * (60 * 1024 * 1024))
    return out.getvalue()


def _macro_book() -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(to_bytes(operator_form()))) as src,
        zipfile.ZipFile(out, "w") as dst,
    ):
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        dst.writestr("xl/vbaProject.bin", b"\0" * 256)
    return out.getvalue()


def _xxe_book() -> bytes:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(to_bytes(operator_form()))) as src,
        zipfile.ZipFile(out, "w") as dst,
    ):
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/sharedStrings.xml":
                data = (
                    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                    b'<!ENTITY e SYSTEM "file:///etc/passwd">]>' + data.split(b"?>", 1)[-1]
                )
            dst.writestr(item, data)
    return out.getvalue()


def _sheet_with(extra: bytes) -> bytes:
    """The example form with `extra` XML appended to its first sheet's data, as a hand-made
    or generated workbook can carry it."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(to_bytes(operator_form()))) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", extra + b"</sheetData>")
            dst.writestr(item, data)
    return out.getvalue()


def far_cell_lowercase() -> bytes:
    """One cell at the sheet's last corner, its reference in lower case."""
    return _sheet_with(
        b'<row r="1048576"><c r="xfd1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    )


def cells_without_r() -> bytes:
    """Thousands of cells with no reference in the last row: each takes the next column."""
    return _sheet_with(b'<row r="1048576">' + b"<c><v>1</v></c>" * 5000 + b"</row>")


def far_cell_without_r() -> bytes:
    """A single cell without a reference, in the last row: 6 KB that a dense reader fills in
    to a million rows."""
    return _sheet_with(b'<row r="1048576"><c><v>1</v></c></row>')


def rows_without_r() -> bytes:
    """Rows without a reference count on from the last one: 3,000 of them reach far down."""
    return _sheet_with(b"<row><c><v>1</v></c></row>" * 3000)


def too_many_cells() -> bytes:
    """More empty cells than any form has, small enough zipped to pass the ratio check."""
    return _sheet_with(b"<row>" + b"<c/>" * 60_000 + b"</row>")


WORKBOOK_ATTACKS: dict[str, Callable[[], bytes]] = {
    "far_cell_lowercase": far_cell_lowercase,
    "cells_without_r": cells_without_r,
    "far_cell_without_r": far_cell_without_r,
    "rows_without_r": rows_without_r,
    "too_many_cells": too_many_cells,
}
ATTACKS: dict[str, Callable[[], bytes]] = {
    "zip_bomb": _zip_bomb,
    "macro": _macro_book,
    "xxe": _xxe_book,
    **WORKBOOK_ATTACKS,
}
INJECTED_NAME = "悪意\r\nBcc: victim@example.org"
INJECTED_SUBJECT = "件名\r\nBcc: victim@example.org\r\nX-Evil: 1"
BAD_NAMES = (
    "../../etc/passwd.xlsx",
    "事業者マスタ申込書\r\nBcc: victim@example.org.xlsx",
    "a\x00b\x1b[31m.xlsx",
    "C:\\Windows\\system32\\申込書.xlsx",
    "申込書" * 200 + ".xlsx",
)


def _mutate(raw: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind == 0:
        return raw[: rng.randrange(1, max(2, len(raw)))]
    if kind == 1:
        data = bytearray(raw)
        for _ in range(rng.randint(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if kind == 2:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        rng.shuffle(lines)
        return b"\r\n".join(lines[: rng.randint(0, len(lines))]) + b"\r\n\r\n" + body
    if kind == 3:
        label = rng.choice([b"x-unknown", b"utf-7", b"iso-2022-kr", b"", b'"', b"utf-8\x00"])
        return raw.replace(b"ISO-2022-JP", label).replace(b"UTF-8", label)
    if kind == 4:
        return raw.replace(b"Subject:", b"Subject: " + b"A" * 100_000 + b"\r\n X:", 1)
    if kind == 5:
        depth = rng.randint(30, 120)
        opens = b"".join(
            b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
            for i in range(depth)
        )
        return raw.replace(b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\r\n" + opens, 1)
    if kind == 6:
        return raw.replace(b"\r\n", b"\n") if rng.random() < 0.5 else raw.replace(b"\r\n", b"\r")
    if kind == 7:
        return raw + bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000)))
    if kind == 8:
        return raw.replace(b"base64", b"quoted-printable").replace(b"7bit", b"base64")
    return raw.replace(b"boundary=", b"boundary=X", 1)


def hostile_mails(count: int, seed: int = 13) -> Iterator[tuple[str, bytes]]:
    """(what, raw) pairs: mutated samples, attacks in attachments, injection in headers."""
    rng = random.Random(seed)
    base = [s.raw for s in samples()]
    form = to_bytes(operator_form())
    attacks = {name: make() for name, make in ATTACKS.items()}
    for n in range(count):
        pick = n % 5
        if pick == 0:
            name = rng.choice(list(attacks))
            yield (
                name,
                build(
                    "【容量市場向け事業者コード申請】",
                    "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『安定電源』です。",
                    from_addr=f"attacker{n}@example.net",
                    attachments=[("事業者マスタ申込書.xlsx", attacks[name], XLSX)],
                ),
            )
        elif pick == 1:
            yield (
                "bad_name",
                build(
                    "【容量市場向け事業者コード申請】",
                    "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『安定電源』です。",
                    from_addr=f"names{n}@example.net",
                    attachments=[(rng.choice(BAD_NAMES), form, XLSX)],
                    name_style=rng.choice(("rfc2231", "raw-utf8", "rfc2047-jis")),
                ),
            )
        elif pick == 2:
            name = encoded_word(INJECTED_NAME, "utf-8")
            subject = encoded_word(INJECTED_SUBJECT, "utf-8")
            yield (
                "header_injection",
                (
                    f"From: {name} <inject{n}@example.net>\r\nTo: code@occto.or.jp\r\n"
                    f"Subject: {subject}\r\nMessage-ID: <inject{n}@example.net>\r\n\r\n本文\r\n"
                ).encode(),
            )
        else:
            yield "mutated", _mutate(rng.choice(base), rng)
