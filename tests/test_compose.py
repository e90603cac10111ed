"""The bytes of outgoing mail: headers encoded and folded, nothing injectable, threading kept."""

from __future__ import annotations

from datetime import datetime
from email import message_from_bytes, policy

from mailbot.clock import TOKYO
from mailbot.mail.compose import OutgoingAttachment, compose, envelope_recipients
from mailbot.mail.parse import parse

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=TOKYO)


def build(**overrides) -> bytes:
    fields = {
        "from_addr": "code@occto.or.jp",
        "from_name": "電力広域的運営推進機関 容量市場 受付窓口",
        "to": "taro@example.co.jp",
        "subject": "【受付番号 MB-000001】受付のお知らせ（容量市場向け事業者コード申請）①㈱髙",
        "body": "山田 太郎 様\n\n受け付けました。\n",
        "message_id": "<mailbot.1.abc@occto.or.jp>",
        "date": NOW,
    }
    return compose(**(fields | overrides))


def test_japanese_headers_round_trip_and_every_line_is_short():
    raw = build(in_reply_to="<orig@example.co.jp>", references=("<first@example.co.jp>",))
    msg = message_from_bytes(raw, policy=policy.default)
    assert (
        msg["Subject"]
        == "【受付番号 MB-000001】受付のお知らせ（容量市場向け事業者コード申請）①㈱髙"
    )
    # adjacent encoded words join without a space (RFC 2047 §6.2), as mailbot's own parser and
    # mail clients read them; the stdlib's structured-header parser inserts one
    assert parse(raw).from_name == "電力広域的運営推進機関 容量市場 受付窓口"
    assert msg["From"].addresses[0].addr_spec == "code@occto.or.jp"
    assert msg["In-Reply-To"] == "<orig@example.co.jp>"
    assert msg["References"] == "<first@example.co.jp> <orig@example.co.jp>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert raw.isascii()
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    body = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body == "山田 太郎 様\n\n受け付けました。\n"


def test_nothing_a_participant_writes_can_add_a_header():
    raw = build(
        subject="件名\r\nBcc: victim@example.org\r\n",
        from_name='悪意 "x", <evil@example.org>\r\nBcc: victim@example.org',
    )
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Bcc"] is None
    assert msg.get_all("Subject") and len(msg.get_all("Subject")) == 1
    assert "victim" in msg["Subject"]  # kept as text on one line, not as a header
    assert [a.addr_spec for a in msg["From"].addresses] == ["code@occto.or.jp"]


def test_ascii_subject_stays_readable_and_attachments_keep_japanese_names():
    raw = build(
        subject="Receipt MB-000002",
        attachments=(
            OutgoingAttachment("アセスメント結果通知書_0001.pdf", b"%PDF-1.4", "application/pdf"),
        ),
    )
    assert b"Subject: Receipt MB-000002\r\n" in raw
    msg = message_from_bytes(raw, policy=policy.default)
    [part] = list(msg.iter_attachments())
    assert part.get_filename() == "アセスメント結果通知書_0001.pdf"
    assert part.get_content() == b"%PDF-1.4"


def test_the_plain_receipt_is_byte_for_byte_what_the_stdlib_builds():
    """Issue 17: plain UTF-8 receipts are written directly (the header registry took a quarter
    of checking a mail); they must not differ by a byte from EmailMessage's output."""
    import random
    from datetime import timedelta, timezone

    from mailbot.mail.compose import _mime, _plain_text

    rng = random.Random(17)
    pieces = [
        "受付しました。",
        "■事業者名：",
        "ａｂｃ①㈱髙",
        "abc def",
        "",
        "\t",
        "x" * 90,
        "。" * 40,
    ]
    for n in range(300):
        lines = [rng.choice(pieces) * rng.randint(0, 4) for _ in range(rng.randint(0, 30))]
        body = rng.choice(["\n", "\r\n"]).join(lines) + rng.choice(["", "\n", "\r\n"])
        date = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=9))) + timedelta(
            minutes=n
        )
        message_id = f"<mailbot.{n}.{rng.getrandbits(128):032x}@example.jp>"
        for kind in ("auto-replied", "auto-generated"):
            fast = _plain_text(date, message_id, kind, body, "utf-8")
            assert fast == _mime(date, message_id, kind, body, "utf-8"), body


def test_a_quoted_sender_is_copied_to_itself_and_nowhere_else():
    """A From whose quoted local part holds '@' and ',' (parse accepts it as one address) is
    the objector copied on an objection's result: the Cc header names that one mailbox, and
    the SMTP envelope, read back from the header, reaches it and no other domain."""
    objector = '"jiro,evil@evil.example"@takahashi-power.co.jp'
    assert parse(f"From: {objector}\r\nSubject: x\r\n\r\nx\r\n".encode()).from_addr == objector
    raw = build(to="ichiro@takahashi-power.co.jp", cc=(objector,))
    assert envelope_recipients(raw, "ichiro@takahashi-power.co.jp") == [
        "ichiro@takahashi-power.co.jp",
        objector,
    ]
    msg = message_from_bytes(raw, policy=policy.default)
    assert [a.addr_spec for a in msg["Cc"].addresses] == [objector]
