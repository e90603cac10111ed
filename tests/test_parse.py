"""Decoding mails built the way Japanese clients build them (tests/support/jpmail.py), never raising."""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.mail.charset import decode_bytes, decode_header_value
from mailbot.mail.parse import html_to_text, parse
from tests.support.jpmail import XLSX, build, encode_jis, encoded_word

SUBJECT = "【容量市場向け事業者コード申請】株式会社髙橋電力①"
BODY = "容量市場向け事業者コードを申請します。\n㈱髙橋電力　参加区分：安定電源\nⅢ期 ｶﾀｶﾅ\n"
NAME = "事業者マスタ_髙橋.xlsx"


def test_iso2022jp_with_outlook_extensions() -> None:
    mail = parse(build(SUBJECT, BODY))
    assert mail.subject == SUBJECT
    assert mail.text.strip() == BODY.strip()
    assert mail.from_name == "山田 太郎"
    assert mail.from_addr == "taro@example.co.jp"
    assert mail.to == ("code@occto.or.jp",)
    assert mail.defects == ()


def test_shift_jis_label_decodes_as_cp932() -> None:
    mail = parse(build(SUBJECT, BODY, charset="shift_jis", transfer="base64"))
    assert mail.subject == SUBJECT
    assert "㈱髙橋電力" in mail.text


def test_iso2022jp_in_quoted_printable() -> None:
    mail = parse(build(SUBJECT, BODY, transfer="quoted-printable"))
    assert mail.text.strip() == BODY.strip()


def test_iso2022jp_without_charset_parameter() -> None:
    mail = parse(build(SUBJECT, BODY, charset="none"))
    assert mail.text.strip() == BODY.strip()
    assert "charset guessed: iso-2022-jp" in mail.defects


def test_utf8_base64_and_html_only() -> None:
    assert "㈱髙橋電力" in parse(build(SUBJECT, BODY, charset="utf-8", transfer="base64")).text
    html = "<html><style>p{color:red}</style><body><p>事業者名称：㈱髙橋&amp;電力</p><div>二行目<br>三行目</div></body></html>"
    mail = parse(build(SUBJECT, html, charset="utf-8", transfer="base64", html=True))
    assert mail.text.split("\n") == ["事業者名称：㈱髙橋&電力", "", "二行目", "三行目"]


def test_attachment_names_in_every_form() -> None:
    for style in ("rfc2231", "rfc2231-continued", "rfc2047-jis", "rfc2047-sjis"):
        raw = build(SUBJECT, BODY, attachments=[(NAME, b"PK\x03\x04data", XLSX)], name_style=style)
        mail = parse(raw)
        assert [a.filename for a in mail.attachments] == [NAME], style
        assert mail.attachments[0].data == b"PK\x03\x04data"
        assert mail.text.strip() == BODY.strip()


def test_raw_utf8_attachment_name() -> None:
    raw = build(SUBJECT, BODY, attachments=[(NAME, b"x", XLSX)], name_style="raw-utf8")
    assert parse(raw).attachments[0].filename == NAME


def test_threading_and_robot_headers() -> None:
    raw = build(
        "Re: " + SUBJECT,
        BODY,
        in_reply_to="<mailbot.1.abc@occto.or.jp>",
        references=("<first@example.co.jp>", "<mailbot.1.abc@occto.or.jp>"),
        headers={
            "Auto-Submitted": "auto-replied",
            "Precedence": "bulk",
            "List-Unsubscribe": "<mailto:x@example.jp>",
        },
    )
    mail = parse(raw)
    assert mail.in_reply_to == "<mailbot.1.abc@occto.or.jp>"
    assert mail.thread_ids == ("<mailbot.1.abc@occto.or.jp>", "<first@example.co.jp>")
    assert mail.auto_submitted == "auto-replied"
    assert mail.precedence == "bulk"
    assert mail.list_headers


def test_forwarded_mail_keeps_inner_text_and_attachments() -> None:
    inner = build(SUBJECT, BODY, attachments=[(NAME, b"inner", XLSX)])
    outer = (
        b"From: a@example.co.jp\r\nTo: code@occto.or.jp\r\nSubject: "
        + encoded_word("転送: " + SUBJECT).encode()
        + b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n"
        + encode_jis("転送します。")
        + b"\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\n"
        + inner
        + b"\r\n--b1--\r\n"
    )
    mail = parse(outer)
    assert mail.subject == "転送: " + SUBJECT
    assert mail.text.startswith("転送します。")
    assert "㈱髙橋電力" in mail.text
    assert [a.filename for a in mail.attachments] == [NAME]


def test_delivery_report_recognised() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.jp\r\nTo: code@occto.or.jp\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\n\r\nsorry\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; x@example.jp\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--r--\r\n"
    )
    assert parse(raw).is_delivery_report
    assert not parse(build(SUBJECT, BODY)).is_delivery_report


def test_headers_in_raw_8bit_and_raw_jis() -> None:
    raw = (
        "From: 髙橋 <t@example.co.jp>\r\nTo: code@occto.or.jp\r\nSubject: 申請㈱\r\n\r\nx\r\n"
    ).encode()
    mail = parse(raw)
    assert mail.subject == "申請㈱"
    assert mail.from_name == "髙橋"
    jis_subject = b"Subject: " + encode_jis("申請①") + b"\r\nFrom: t@example.co.jp\r\n\r\nx"
    assert parse(jis_subject).subject == "申請①"


def test_decode_helpers() -> None:
    assert decode_bytes("髙".encode("cp932"), "Shift_JIS") == ("髙", [])
    assert decode_bytes(b"\xff\xfe", "x-unknown")[1]
    assert (
        decode_header_value(encoded_word("①㈱", "iso-2022-jp") + " " + encoded_word("髙"))
        == "①㈱髙"
    )
    assert html_to_text("<p>a</p><script>x</script><p>b&nbsp;c</p>") == "a\n\nb c"
    payload = base64.b64encode(encode_jis("本文")).decode()
    raw = (
        "Subject: x\r\nContent-Type: text/plain; charset=iso-2022-jp\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{payload}\r\n"
    ).encode()
    assert parse(raw).text.strip() == "本文"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(data: bytes) -> None:
    assert parse(data) is not None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 200))
def test_mutated_real_mails_never_raise(position: int, byte: int, cut: int) -> None:
    raw = bytearray(
        build(SUBJECT, BODY, attachments=[(NAME, b"PK" * 300, XLSX)], name_style="rfc2047-jis")
    )
    raw[position % len(raw)] = byte
    mail = parse(bytes(raw[: len(raw) - cut]))
    assert isinstance(mail.text, str)


def test_large_base64_attachments_decode_exactly_without_the_line_by_line_parser():
    blob = random.Random(5).randbytes(3 * 1024 * 1024)
    raw = build(
        "【容量市場向け事業者コード申請】",
        "大きな添付です。",
        attachments=[
            ("契約書.pdf", blob, "application/pdf"),
            ("b.bin", blob[:1000], "application/octet-stream"),
        ],
    )
    mail = parse(raw)
    assert [a.data for a in mail.attachments] == [blob, blob[:1000]]
    assert mail.text.strip() == "大きな添付です。"
    assert not mail.defects


def test_large_attachment_inside_a_forwarded_mail():
    blob = random.Random(6).randbytes(2 * 1024 * 1024)
    inner = build("元のメール", "転送元の本文", attachments=[("図面.pdf", blob, "application/pdf")])
    raw = (
        b"From: a@example.jp\r\nTo: code@occto.or.jp\r\nSubject: Fw\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n--outer\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nFYI\r\n--outer\r\n"
        b"Content-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--outer--\r\n"
    )
    mail = parse(raw)
    assert [a.data for a in mail.attachments] == [blob]
    assert "転送元の本文" in mail.text


def test_the_fast_jis_path_agrees_with_the_cp932_path_on_every_code_point():
    from mailbot.mail.charset import decode_jis, decode_jis_bytewise

    for j1 in range(0x21, 0x7F):
        for j2 in range(0x21, 0x7F):
            raw = b"\x1b$B" + bytes((j1, j2)) + b"\x1b(B"
            assert decode_jis(raw) == decode_jis_bytewise(raw), raw


EXTENSION_ROWS = (0x2D, 0x79, 0x7A, 0x7B, 0x7C)


def test_every_outlook_extension_code_point_decodes_as_cp932_without_the_bytewise_path(
    monkeypatch,
):
    """NEC row 13 (①, ㈱, Ⅲ) and the NEC-selected IBM rows 89-92 (髙), each inside ordinary JIS
    text: a defined cell reads as CP932 reads it, through the C codec (the byte-by-byte path is
    never entered); an undefined cell still comes out as the byte-by-byte path says."""
    from mailbot.mail import charset

    bytewise = charset.decode_jis_bytewise
    entered: list[bytes] = []

    def counted(data: bytes) -> tuple[str, list[str]]:
        entered.append(data)
        return bytewise(data)

    monkeypatch.setattr(charset, "decode_jis_bytewise", counted)
    defined = 0
    for j1 in EXTENSION_ROWS:
        for j2 in range(0x21, 0x7F):
            raw = b"ab\x1b$B?=@A" + bytes((j1, j2)) + b'$"\x1b(Bc\r\n'
            try:
                char = charset._jis_pair_to_sjis(j1, j2).decode("cp932")
            except UnicodeDecodeError:
                assert charset.decode_jis(raw) == bytewise(raw)
                continue
            defined += 1
            entered.clear()
            assert charset.decode_jis(raw) == (f"ab申請{char}あc\r\n", []), raw
            assert bytewise(raw) == (f"ab申請{char}あc\r\n", [])
            assert entered == [], raw
    assert defined == len(charset.JIS_EXTENSIONS) > 400
    assert charset.decode_jis(encode_jis("㈱髙橋電力①Ⅲ")) == ("㈱髙橋電力①Ⅲ", [])


def test_no_row_outside_the_extension_rows_has_a_cell_only_cp932_reads():
    from mailbot.mail.charset import _jis_pair_to_sjis

    for j1 in set(range(0x21, 0x7F)) - set(EXTENSION_ROWS):
        for j2 in range(0x21, 0x7F):
            try:
                (b"\x1b$B" + bytes((j1, j2))).decode("iso2022_jp")
            except UnicodeDecodeError:
                with pytest.raises(UnicodeDecodeError):
                    _jis_pair_to_sjis(j1, j2).decode("cp932")
