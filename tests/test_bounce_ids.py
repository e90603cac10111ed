"""A delivery report's returned Message-IDs are read in the one parse of the mail
(`Mail.returned_ids`), with the large base64 parts lifted out as that parse lifts them: the
pipeline read a bounce a second time, whole, to find them, and a 20 MB bounce peaked at
~160 MB (issue 17). Which ids count is unchanged: the returned mail's own Message-ID field,
never one it cites, and None when the report returns no headers."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from mailbot.mail.parse import parse, returned_message_ids
from tests.support.jpmail import build

OURS = "<mailbot.7.0123456789abcdef0123456789abcdef@occto.example>"
CITED = "<mailbot.6.fedcba9876543210fedcba9876543210@occto.example>"


def report(returned: bytes) -> bytes:
    return (
        b"From: MAILER-DAEMON@mx.example.jp\r\nTo: code@occto.or.jp\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n--b\r\n"
        b"Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; x@example.jp\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n" + returned + b"--b--\r\n"
    )


def returned_mail(attachment: bytes = b"") -> bytes:
    files = [("受付.pdf", attachment, "application/pdf")] if attachment else []
    inner = build("受付のお知らせ", "本文", message_id=OURS, references=(CITED,), attachments=files)
    return b"--b\r\nContent-Type: message/rfc822\r\n\r\n" + inner + b"\r\n"


SHAPES = {
    "the returned mail": report(returned_mail()),
    "the returned headers": report(
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        + f"From: code@occto.example\r\nMessage-ID: {OURS}\r\nIn-Reply-To: {CITED}\r\n\r\n".encode()
    ),
    "no headers returned": report(b""),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_parse_finds_the_ids_the_report_returns(name: str) -> None:
    raw = SHAPES[name]
    mail = parse(raw)
    assert mail.is_delivery_report
    assert mail.returned_ids == returned_message_ids(raw)
    assert mail.returned_ids == (None if name == "no headers returned" else (OURS,))


def test_a_mail_that_is_no_report_returns_nothing() -> None:
    assert parse(build("質問", "本文", message_id=OURS)).returned_ids is None


def test_a_20_mb_bounce_is_read_once_without_its_lines_in_memory() -> None:
    raw = report(returned_mail(random.Random(7).randbytes(14 * 1024 * 1024)))
    assert len(raw) > 19 * 1024 * 1024
    tracemalloc.start()
    try:
        mail = parse(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mail.returned_ids == (OURS,)
    assert peak < 60 * 1024 * 1024, f"peak {peak / 2**20:.0f} MB"
