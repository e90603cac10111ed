"""The IMAP backend against a real Dovecot on 127.0.0.1."""

from __future__ import annotations

import threading
import time

import pytest

from mailbot.errors import MailboxError
from mailbot.intake.mailboxes.imap import KEYWORD, ImapMailbox
from tests.support.servers import PASSWORD, Dovecot


def mail(n: int, subject: str = "テスト") -> bytes:
    return (
        f"From: sender{n}@example.co.jp\r\nTo: code@occto.or.jp\r\n"
        f"Subject: {subject} {n}\r\nMessage-ID: <m{n}@example.co.jp>\r\n\r\nbody {n}\r\n"
    ).encode()


def box(server: Dovecot, user: str = "code", **kwargs) -> ImapMailbox:
    return ImapMailbox(
        address=f"{user}@occto.or.jp",
        host="127.0.0.1",
        port=server.port,
        security="none",
        username=user,
        password=PASSWORD,
        poll_interval=0.5,
        **kwargs,
    )


def test_fetch_peeks_oldest_first_and_ack_marks(dovecot: Dovecot) -> None:
    for n in range(3):
        dovecot.deliver("code", mail(n))
    mailbox = box(dovecot)
    fetched = list(mailbox.fetch())
    assert [m.data.replace(b"\r\n", b"\n") for m in fetched] == [
        mail(n).replace(b"\r\n", b"\n") for n in range(3)
    ]
    assert all(m.key.startswith(f"imap:{mailbox.uidvalidity}:") for m in fetched)
    flags = dovecot.flags("code")
    assert all(b"\\Seen" not in f and KEYWORD.encode() not in f for f in flags.values())
    mailbox.ack([m.key for m in fetched[:2]])
    flags = dovecot.flags("code")
    marked = [uid for uid, f in flags.items() if KEYWORD.encode() in f]
    assert len(marked) == 2
    assert all(b"\\Seen" not in f for f in flags.values())
    again = list(mailbox.fetch())
    assert [m.key for m in again] == [fetched[2].key]
    mailbox.ack([fetched[2].key, fetched[2].key])
    assert list(mailbox.fetch()) == []
    mailbox.close()


def test_limit_and_batches_over_a_hundred(dovecot: Dovecot) -> None:
    for n in range(230):
        dovecot.deliver("code", mail(n))
    mailbox = box(dovecot)
    assert len(list(mailbox.fetch(limit=7))) == 7
    everything = list(mailbox.fetch())
    assert len(everything) == 230
    uids = [int(m.key.rsplit(":", 1)[1]) for m in everything]
    assert uids == sorted(uids)
    mailbox.ack([m.key for m in everything])
    assert list(mailbox.fetch()) == []
    mailbox.close()


def test_ack_moves_to_a_folder_created_on_demand(dovecot: Dovecot) -> None:
    dovecot.deliver("code", mail(1))
    mailbox = box(dovecot, move_to="mailbot-stored")
    keys = [m.key for m in mailbox.fetch()]
    mailbox.ack(keys)
    assert dovecot.count("code") == 0
    assert dovecot.count("code", "mailbot-stored") == 1
    mailbox.close()


def test_key_of_another_uidvalidity_is_ignored(dovecot: Dovecot) -> None:
    dovecot.deliver("code", mail(1))
    mailbox = box(dovecot)
    key = next(mailbox.fetch()).key
    _, validity, uid = key.split(":")
    mailbox.ack([f"imap:{int(validity) + 1}:{uid}"])
    assert len(list(mailbox.fetch())) == 1
    mailbox.close()


def test_idle_wakes_on_delivery(dovecot: Dovecot) -> None:
    mailbox = box(dovecot)
    assert list(mailbox.fetch()) == []
    assert mailbox.can_idle
    timer = threading.Timer(0.5, dovecot.deliver, args=("code", mail(9)))
    timer.start()
    started = time.monotonic()
    assert mailbox.wait(timeout=20) is True
    assert time.monotonic() - started < 15
    timer.join()
    assert len(list(mailbox.fetch())) == 1
    mailbox.close()


def test_polling_where_the_server_has_no_idle(dovecot_no_idle: Dovecot) -> None:
    mailbox = box(dovecot_no_idle)
    assert list(mailbox.fetch()) == []
    assert not mailbox.can_idle
    dovecot_no_idle.deliver("code", mail(1))
    assert mailbox.wait(timeout=2) is True
    assert len(list(mailbox.fetch())) == 1
    mailbox.close()


def test_reconnects_after_the_server_restarts(dovecot: Dovecot) -> None:
    dovecot.deliver("code", mail(1))
    mailbox = box(dovecot)
    first = list(mailbox.fetch())
    dovecot.restart()
    mailbox.ack([m.key for m in first])
    dovecot.deliver("code", mail(2))
    dovecot.restart()
    second = list(mailbox.fetch())
    assert len(second) == 1
    assert b"<m2@example.co.jp>" in second[0].data
    mailbox.close()


def test_two_mailboxes_at_once(dovecot: Dovecot) -> None:
    dovecot.deliver("code", mail(1))
    dovecot.deliver("youryou", mail(2))
    dovecot.deliver("youryou", mail(3))
    code, long = box(dovecot, "code"), box(dovecot, "youryou")
    assert len(list(code.fetch())) == 1
    assert len(list(long.fetch())) == 2
    code.close()
    long.close()


def test_wrong_password_is_a_clear_error(dovecot: Dovecot) -> None:
    mailbox = ImapMailbox(
        address="code@occto.or.jp",
        host="127.0.0.1",
        port=dovecot.port,
        security="none",
        username="code",
        password="wrong",
    )
    with pytest.raises(MailboxError, match="login refused"):
        list(mailbox.fetch())


def test_large_mails_are_fetched_a_few_at_a_time(dovecot: Dovecot) -> None:
    big = b"X" * (7 * 1024 * 1024)
    for n in range(3):
        dovecot.deliver("code", mail(n) + big + b"\r\n")
    dovecot.deliver("code", mail(9))
    mailbox = box(dovecot)
    fetched = list(mailbox.fetch())
    assert len(fetched) == 4
    uids = [int(m.key.rsplit(":", 1)[1]) for m in fetched]
    assert [chunk for chunk, _size, _arrived in mailbox._chunks(uids)] == [uids[:2], uids[2:]]
    assert all(m.data.endswith(b"X\r\n") for m in fetched[:3])


def test_a_mail_larger_than_a_batch_is_fetched_in_pieces_byte_for_byte(dovecot: Dovecot) -> None:
    big = b"".join(f"{n:08d} 容量市場 ①㈱髙\r\n".encode() for n in range(700_000))
    raw = mail(1) + big
    dovecot.deliver("code", raw)
    mailbox = box(dovecot)
    [fetched] = list(mailbox.fetch())
    assert len(fetched.data) > 16 * 1024 * 1024
    assert fetched.data.replace(b"\r\n", b"\n") == raw.replace(b"\r\n", b"\n")
    mailbox.close()
