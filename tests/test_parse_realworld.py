"""Mails as the wild sends them (issue 13): each breakage Zammad's corpus showed, rebuilt here as
a small mail of our own, with what a mail client shows for it."""

from __future__ import annotations

import base64

import pytest

from mailbot.mail.charset import decode_bytes, decode_header_value, plausible_cjk
from mailbot.mail.parse import parse

HEAD = b"From: Sender <sender@example.com>\r\nTo: code@occto.or.jp\r\nSubject: test\r\n"


def mail(headers: bytes, body: bytes = b"body\r\n") -> bytes:
    return headers + b"MIME-Version: 1.0\r\n\r\n" + body


def b64_word(text: str, charset: str, codec: str | None = None) -> bytes:
    data = base64.b64encode(text.encode(codec or charset)).decode()
    return f"=?{charset}?B?{data}?=".encode()


# -- Labels read as the WHATWG Encoding Standard maps them, and checked against their bytes --


@pytest.mark.parametrize(
    ("label", "data", "text"),
    [
        ("gb2312", "朱镕基的报告".encode("gbk"), "朱镕基的报告"),  # 镕 is GBK, not GB2312
        ("GB2312", "鎔".encode("gbk"), "鎔"),
        ("shift_jis", "①㈱髙橋".encode("cp932"), "①㈱髙橋"),
        ("euc-kr", "똠방각하".encode("cp949"), "똠방각하"),  # 똠 is windows-949 only
        ("iso-8859-1", b"\x93quoted\x94 \x80 5", "\u201cquoted\u201d \u20ac 5"),
        ("us-ascii", b"caf\xe9", "café"),
        ("latin1", b"\x81", "\x81"),  # undefined in windows-1252: WHATWG passes it through
        ("iso-8859-9", b"\x80", "\u20ac"),  # windows-1254
        ("unicode-1-1-utf-7", b"+ANw-bermittlung", "Übermittlung"),
    ],
)
def test_labels_read_as_mail_clients_read_them(label: str, data: bytes, text: str) -> None:
    assert decode_bytes(data, label) == (text, [])


def test_a_single_byte_label_over_utf8_bytes_is_utf8() -> None:
    text, defects = decode_bytes("Grüße 差出人".encode(), "iso-8859-1")
    assert text == "Grüße 差出人"
    assert defects == ["labelled iso-8859-1 but utf-8"]


def test_gb2312_labelled_body_subject_and_name_holding_gbk_characters() -> None:
    raw = mail(
        b"From: " + b64_word("朱镕基", "gb2312", "gbk") + b" <zhu@example.cn>\r\n"
        b"Subject: " + b64_word("关于镕炼的报告", "gb2312", "gbk") + b"\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n',
        b"--b\r\nContent-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode("镕炼报告，请查收。".encode("gbk"))
        + b"\r\n--b\r\nContent-Type: application/vnd.ms-excel\r\n"
        b'Content-Disposition: attachment; filename="'
        + b64_word("镕炼.xls", "gb2312", "gbk")
        + b'"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n",
    )
    parsed = parse(raw)
    assert (parsed.subject, parsed.from_name) == ("关于镕炼的报告", "朱镕基")
    assert parsed.text.strip() == "镕炼报告，请查收。"
    assert [a.filename for a in parsed.attachments] == ["镕炼.xls"]
    assert "\ufffd" not in parsed.subject + parsed.text


def test_iso2022jp_encoded_word_that_holds_shift_jis_bytes() -> None:
    word = b"=?ISO-2022-JP?B?" + base64.b64encode("ツール".encode("cp932")) + b"?="
    raw = mail(b"From: " + word + b" EXAMPLE <bar@example.org>\r\nSubject: " + word + b"\r\n")
    parsed = parse(raw)
    assert (parsed.subject, parsed.from_name) == ("ツール", "ツール EXAMPLE")


def test_outlook_iso2022jp_words_still_exact() -> None:
    word = "=?ISO-2022-JP?B?" + base64.b64encode(b"\x1b$B-!-j\x1b(B").decode() + "?="
    assert decode_header_value(word) == "①㈱"


# -- Raw 8-bit headers: UTF-8, the declared charset, CP932 if plausibly Japanese, then … --


@pytest.mark.parametrize(
    ("raw_subject", "declared", "subject"),
    [
        ("Grüße aus Köln".encode(), None, "Grüße aus Köln"),
        ("見積書の送付".encode("cp932"), None, "見積書の送付"),
        (
            "【容量市場向け事業者コード申請】".encode("cp932"),
            None,
            "【容量市場向け事業者コード申請】",
        ),
        ("申請書の送付".encode("cp932"), None, "申請書の送付"),
        ("ツール".encode("cp932"), None, "ツール"),
        ("整体提升企业服务水平".encode("gb2312"), None, "整体提升企业服务水平"),
        ("整体提升企业服务水平".encode("gb2312"), "iso-8859-1", "整体提升企业服务水平"),
        ("Hofjägeralle".encode("latin-1"), None, "Hofjägeralle"),
        ("Καλημέρα".encode("iso-8859-7"), "iso-8859-7", "Καλημέρα"),
        ("Привет мир".encode("koi8-r"), "koi8-r", "Привет мир"),
    ],
)
def test_raw_8bit_subject(raw_subject: bytes, declared: str | None, subject: str) -> None:
    content_type = f"Content-Type: text/plain; charset={declared}\r\n" if declared else ""
    raw = mail(HEAD.replace(b"Subject: test", b"Subject: " + raw_subject) + content_type.encode())
    assert parse(raw).subject == subject


def test_gb2312_bytes_are_not_taken_for_japanese() -> None:
    assert not plausible_cjk("整体提升".encode("gb2312").decode("cp932"))
    assert not plausible_cjk("Hofjägeralle".encode("latin-1").decode("cp932"))
    assert plausible_cjk("申請書の送付について")


def test_raw_latin1_attachment_name() -> None:
    raw = mail(
        HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n',
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n"
        b'Content-Type: image/jpeg; name="Hofj\xe4geralle Wasserschaden.jpg"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n/9j/\r\n--b--\r\n",
    )
    assert [a.filename for a in parse(raw).attachments] == ["Hofjägeralle Wasserschaden.jpg"]


# -- Header blocks that real mailers break --


def test_unindented_continuation_lines_keep_from_subject_and_mime() -> None:
    raw = (
        b"From karoline@example.com Wed Apr 19 20:56:33 2017\r\n"
        b"Received: from mx.example.com by mail.example.com with ESMTP\r\n"
        b"for <desk@example.com>; Thu, 2 Aug 2018 16:58:16 +0200\r\n"
        b"From: Karoline Smith <karoline@example.com>\r\n"
        b"Subject: AW: One Net Business\r\n"
        b"Content-Type: multipart/alternative;\r\n"
        b'boundary="XX"\r\n'
        b"MIME-Version: 1.0\r\n\r\n"
        b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsome text\r\n"
        b"--XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>some text</p>\r\n--XX--\r\n"
    )
    parsed = parse(raw)
    assert parsed.subject == "AW: One Net Business"
    assert parsed.text.strip() == "some text"
    assert "broken header block read leniently" in parsed.defects
    # From is below the break, where the MTA read body: claimed, never the trusted sender
    assert (parsed.from_addr, parsed.claimed_sender) == ("", "karoline@example.com")


def test_junk_first_line_before_the_header_block() -> None:
    raw = b"---- Original email message ----\r\n" + mail(HEAD)
    parsed = parse(raw)
    assert (parsed.claimed_sender, parsed.subject, parsed.text.strip()) == (
        "sender@example.com",
        "test",
        "body",
    )
    assert parsed.from_addr == ""


def test_a_sound_header_block_is_read_strictly() -> None:
    parsed = parse(mail(HEAD))
    assert "broken header block read leniently" not in parsed.defects


def test_two_from_headers_name_no_sender() -> None:
    """RFC 5322 §3.6 allows one From field: with two, which one our MTA's DMARC judged is
    unknown, so neither is the sender (the mail is held for staff)."""
    raw = mail(b"From: [??????]\r\nFrom: " + b64_word("都琹", "utf-8") + b" <g@example.cn>\r\n")
    parsed = parse(raw)
    assert (parsed.from_addr, parsed.from_name) == ("", "")
    assert parsed.sender_problem == "差出人欄（From）が 2 個あります"


def test_no_from_address_never_falls_back_to_reply_to() -> None:
    raw = mail(b'From: "=?GB2312?B?ztI=?=" <>\r\nReply-To: <vip@example.com>\r\nSubject: x\r\n')
    parsed = parse(raw)
    assert (parsed.from_addr, parsed.reply_to) == ("", "vip@example.com")
    assert "アドレスが 1 つではありません" in parsed.sender_problem


def test_comma_inside_an_encoded_word_display_name() -> None:
    raw = mail(b"From: =?iso-8859-1?Q?B=FCrling,=20Andreas?= <smith@example.com>\r\n")
    parsed = parse(raw)
    assert (parsed.from_name, parsed.from_addr) == ("Bürling, Andreas", "smith@example.com")


def test_address_without_angle_brackets_after_a_name() -> None:
    parsed = parse(mail(b"From: Test test@example.com\r\n"))
    assert (parsed.from_name, parsed.from_addr) == ("Test", "test@example.com")


def test_utf7_encoded_words_also_with_spaces_inside() -> None:
    raw = mail(
        b"From: postmaster@example.com\r\n"
        b"Subject: Benachrichtung zum\r\n =?unicode-1-1-utf-7?Q?+ANw-bermittlungsstatus (Fehlgeschlagen)?=\r\n"
    )
    assert parse(raw).subject == "Benachrichtung zum Übermittlungsstatus (Fehlgeschlagen)"
    assert decode_header_value("=?unicode-1-1-utf-7?Q?+ANw-bermittlung?=") == "Übermittlung"


# -- Body choice: keep every part somewhere staff can see it --


def alternative(plain: bytes, html: bytes, charset: bytes = b"utf-8") -> bytes:
    return mail(
        HEAD + b'Content-Type: multipart/alternative; boundary="a"\r\n',
        b"--a\r\nContent-Type: text/plain; charset=" + charset + b"\r\n\r\n" + plain + b"\r\n"
        b"--a\r\nContent-Type: text/html; charset="
        + charset
        + b"\r\n\r\n"
        + html
        + b"\r\n--a--\r\n",
    )


def test_empty_plain_alternative_gives_way_to_the_html() -> None:
    assert parse(alternative(b"\r\n", b"<b>some html text</b>")).text.strip() == "some html text"


def test_stub_plain_alternative_gives_way_to_the_html() -> None:
    html = b"<h1>Advent offers</h1><p>Twenty catalogues of winter goods, each with prices.</p>"
    parsed = parse(alternative(b"HTML newsletter could be read here: http://x.example/", html))
    assert "Twenty catalogues of winter goods" in parsed.text
    assert "newsletter could be read here" not in parsed.text


def test_plain_alternative_that_says_the_same_is_kept() -> None:
    body = "電力広域的運営推進機関\n容量市場 受付窓口 ご担当者様\n添付の通り申請します。"
    wrapped = "電力広域的運営推進機関\n容量市場 受付窓口 ご担\n当者様\n添付の通り申請しま\nす。"
    html = "<div>" + body.replace("\n", "<br>") + "</div>"
    parsed = parse(alternative(wrapped.encode(), html.encode()))
    assert parsed.text.strip() == wrapped


def test_html_beside_a_plain_part_in_mixed_is_kept_as_an_attachment() -> None:
    raw = mail(
        HEAD + b'Content-Type: multipart/mixed; boundary="m"\r\n',
        b"--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nsee below\r\n"
        b"--m\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>the real message</p>\r\n"
        b"--m\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>signature</p>\r\n--m--\r\n",
    )
    parsed = parse(raw)
    assert parsed.text.strip() == "see below"
    assert [(a.filename, a.data.strip()) for a in parsed.attachments] == [
        ("document.html", b"<p>the real message</p>"),
        ("document1.html", b"<p>signature</p>"),
    ]


def test_html_only_mixed_mail_is_the_body() -> None:
    raw = mail(
        HEAD + b'Content-Type: multipart/mixed; boundary="m"\r\n',
        b"--m\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>only html</p>\r\n--m--\r\n",
    )
    parsed = parse(raw)
    assert (parsed.text.strip(), parsed.attachments) == ("only html", ())


def test_multipart_header_over_a_body_without_parts() -> None:
    raw = mail(
        HEAD + b'Content-Type: multipart/mixed; boundary="never"\r\n', b"\xe4\xf6\xfc ad asd\n"
    )
    parsed = parse(raw)
    assert (parsed.text.strip(), parsed.attachments) == ("äöü ad asd", ())


def test_body_pasted_from_utf8_and_latin1_sources() -> None:
    data = "äöü - 差出人 - ".encode() + "äöü".encode("latin-1")
    raw = mail(HEAD + b"Content-Type: text/plain; charset=iso-gb2312\r\n", data)
    assert parse(raw).text.strip() == "äöü - 差出人 - äöü"


def test_utf8_labelled_body_with_a_stray_latin1_byte_has_no_replacement_character() -> None:
    raw = mail(HEAD + b"Content-Type: text/plain; charset=utf-8\r\n", "naïve ".encode() + b"li\xe9")
    assert parse(raw).text.strip() == "naïve lié"


# -- Attachment names --


def part(headers: bytes, payload: bytes = b"AAAA") -> bytes:
    return b"--m\r\n" + headers + b"Content-Transfer-Encoding: base64\r\n\r\n" + payload + b"\r\n"


def with_parts(*parts: bytes) -> bytes:
    return mail(
        HEAD + b'Content-Type: multipart/mixed; boundary="m"\r\n',
        b"--m\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n" + b"".join(parts) + b"--m--\r\n",
    )


def test_unnamed_parts_get_names_staff_can_open() -> None:
    raw = with_parts(
        part(b"Content-Type: image/jpeg\r\n"),
        part(b"Content-Type: image/jpeg\r\n"),
        part(b"Content-Type: image/jpeg\r\nContent-ID: <image001.jpg@01CDB132.D8A510F0>\r\n"),
        part(
            b'Content-Type: image/jpeg; name=""\r\nContent-Disposition: attachment; filename=""\r\n'
        ),
        part(b"Content-Type: application/pdf\r\n"),
        part(b"Content-Type: video/quicktime\r\n"),
        part(b"Content-Type: application/x-unknown-thing\r\n"),
    )
    assert [a.filename for a in parse(raw).attachments] == [
        "image.jpg",
        "image1.jpg",
        "image001.jpg",
        "image2.jpg",
        "file.pdf",
        "video.mov",
        "file",
    ]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        (
            b"filename*0*=utf-8''%E4%BA%8B%E6%A5%AD%E8%80%85;\r\n filename*1*=%E3%83%9E%E3%82%B9%E3%82%BF.xlsx",
            "事業者マスタ.xlsx",
        ),
        (b"filename*0*=shift_jis''%EE%E0%8B%B4;\r\n filename*1*=%87%40.xlsx", "髙橋①.xlsx"),
        (b"filename*0*=iso-8859-1''%93Angebot%94;\r\n filename*1*=.pdf", "\u201cAngebot\u201d.pdf"),
        (
            b"filename*=us-ascii''Forex%20Platte%20ohne%20W%F6lbung.jpg",
            "Forex Platte ohne Wölbung.jpg",
        ),
        (b"filename*=gb2312''%E9%46.xls", "镕.xls"),
    ],
)
def test_rfc2231_names_and_continuations_in_every_charset(params: bytes, name: str) -> None:
    raw = with_parts(
        part(
            b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment;\r\n "
            + params
            + b"\r\n"
        )
    )
    assert [a.filename for a in parse(raw).attachments] == [name]
