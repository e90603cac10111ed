"""The outbox sender against a real aiosmtpd server: bytes arrive exactly, 4xx retries with
backoff, 5xx is recorded on the case, and a sent row is never sent again."""

from __future__ import annotations

from pathlib import Path

from mailbot.clock import Clock, parse_instant
from mailbot.config import parse_config
from mailbot.context import Context
from mailbot.errors import PermanentSendError, TransientSendError
from mailbot.outbox.planner import Thread, plan_reply
from mailbot.outbox.send import SmtpSender, flush_outbox, make_sender
from mailbot.outcome import Reply
from mailbot.states import Status
from tests.support.desk import body_text, outbox, set_now
from tests.support.servers import SmtpCapture


def smtp_desk(tmp_path: Path, server: SmtpCapture) -> Context:
    config = (
        '[storage]\ndatabase = "data/mailbot.db"\n'
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "maildir"\n'
        'path = "data/inbox/code"\n' + server.outgoing_config() + "\n"
        '[staff]\naddresses = ["capacity-desk@occto.or.jp"]\n'
    )
    return Context.open(
        parse_config(config, "<test>", tmp_path), Clock(parse_instant("2026-11-25T10:00"))
    )


def plan(ctx: Context, recipients: list[str]) -> int:
    now = ctx.now()
    with ctx.store.transaction():
        case_id = ctx.store.create_case(
            now,
            procedure="operator_code_application",
            status=Status.RECEIVED,
            sender=recipients[0],
            subject="【容量市場向け事業者コード申請】",
            received_at=now.isoformat(),
        )
        case = ctx.store.case(case_id)
        for to in recipients:
            reply = Reply(
                "receipt",
                "receipt",
                {
                    "received_at": now,
                    "wrong_mailbox": False,
                    "next_steps": "",
                    "attachment_names": [],
                },
            )
            plan_reply(ctx, case, reply, Thread(recipient=to, message_id="<q@example.jp>"), now)
    return case_id


def test_batch_arrives_byte_for_byte(tmp_path: Path, smtp_server: SmtpCapture) -> None:
    ctx = smtp_desk(tmp_path, smtp_server)
    plan(ctx, ["a@example.co.jp", "b@example.co.jp", "c@example.co.jp"])
    assert isinstance(make_sender(ctx), SmtpSender)
    sent, failed = flush_outbox(ctx, make_sender(ctx))
    assert (sent, failed) == (3, 0)
    got = smtp_server.messages
    assert [m.rcpt_tos for m in got] == [
        ["a@example.co.jp"],
        ["b@example.co.jp"],
        ["c@example.co.jp"],
    ]
    rows = outbox(ctx)
    for message, row in zip(got, rows, strict=True):
        assert message.data.replace(b"\r\n", b"\n") == row["raw"].replace(b"\r\n", b"\n")
        assert row["state"] == "sent"
    assert flush_outbox(ctx, make_sender(ctx)) == (0, 0)
    assert len(smtp_server.messages) == 3
    ctx.close()


def test_temporary_failure_retries_later(tmp_path: Path, smtp_server: SmtpCapture) -> None:
    ctx = smtp_desk(tmp_path, smtp_server)
    case_id = plan(ctx, ["a@example.co.jp"])
    smtp_server.fail_next("451 4.3.0 try again later")
    assert flush_outbox(ctx, make_sender(ctx)) == (0, 1)
    row = outbox(ctx)[0]
    assert row["state"] == "pending" and row["attempts"] == 1
    assert "451" in row["last_error"]
    assert flush_outbox(ctx, make_sender(ctx)) == (0, 0)  # not due before the backoff
    set_now(ctx, "2026-11-25T10:05")
    assert flush_outbox(ctx, make_sender(ctx)) == (1, 0)
    assert len(smtp_server.messages) == 1
    assert ctx.store.case(case_id)["status"] == Status.RECEIVED
    ctx.close()


def test_permanent_failure_is_recorded_on_the_case(tmp_path: Path, smtp_server: SmtpCapture):
    ctx = smtp_desk(tmp_path, smtp_server)
    case_id = plan(ctx, ["nobody@example.co.jp"])
    smtp_server.fail_next("550 5.1.1 no such user")
    assert flush_outbox(ctx, make_sender(ctx)) == (0, 1)
    assert outbox(ctx)[0]["state"] == "failed"
    failures = [e for e in ctx.store.events(case_id) if e["kind"] == "mail_failed"]
    assert failures and "550" in failures[0]["detail"]["error"]
    set_now(ctx, "2026-11-26T10:00")
    assert flush_outbox(ctx, make_sender(ctx)) == (1, 0)  # the staff notice, not a retry
    [told] = smtp_server.messages
    assert told.rcpt_tos == ["capacity-desk@occto.or.jp"]
    text = body_text(told.data)
    assert "nobody@example.co.jp" in text and "550" in text and "MB-0000" in text
    assert flush_outbox(ctx, make_sender(ctx)) == (0, 0)
    ctx.close()


def test_sender_classifies_codes(tmp_path: Path, smtp_server: SmtpCapture) -> None:
    ctx = smtp_desk(tmp_path, smtp_server)
    sender = make_sender(ctx)
    raw = b"From: code@occto.or.jp\r\nTo: a@example.jp\r\nSubject: x\r\n\r\nx\r\n"
    smtp_server.fail_next("452 4.2.2 mailbox full", "554 5.7.1 rejected")
    results: dict[int, object] = {}
    sender.send_many([("<1@x>", "a@example.jp", raw)] * 3, results.__setitem__)
    assert isinstance(results[0], TransientSendError) and results[0].code == 452
    assert isinstance(results[1], PermanentSendError) and results[1].code == 554
    assert results[2] is None
    ctx.close()


def test_unreachable_server_is_transient(tmp_path: Path, smtp_server: SmtpCapture) -> None:
    ctx = smtp_desk(tmp_path, smtp_server)
    plan(ctx, ["a@example.co.jp"])
    smtp_server.stop()
    assert flush_outbox(ctx, make_sender(ctx)) == (0, 1)
    assert outbox(ctx)[0]["state"] == "pending"
    ctx.close()
