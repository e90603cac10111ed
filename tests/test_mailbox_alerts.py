"""A mailbox that cannot be read is told to staff (issue 24: "a wrong IMAP password logs a
warning every ~7 s forever and tells no one"): after `[monitoring] mailbox_alert_minutes`
(15 by default) one mail to `[staff] addresses`, then at most hourly while it lasts, and a
row in `mailbot doctor`. The real Dovecot refuses a wrong password; time is `--now`."""

from __future__ import annotations

import sqlite3
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

from mailbot.cli import main
from tests.support.jpmail import build
from tests.support.servers import LONG, STAFF, Dovecot, SmtpCapture

T0 = "2026-11-25T08:40:00+09:00"


def _at(minutes: int) -> str:
    hour, minute = divmod(40 + minutes, 60)
    return f"2026-11-25T{8 + hour:02d}:{minute:02d}:00+09:00"


def _config(root: Path, dovecot: Dovecot, smtp: SmtpCapture, password: str) -> Path:
    path = root / "config.toml"
    path.write_text(
        f'[storage]\ndatabase = "{root / "mailbot.db"}"\n\n'
        + dovecot.mailbox_config("code", "code@occto.or.jp", password=password)
        + "\n"
        + dovecot.mailbox_config("youryou", LONG)
        + "\n"
        + smtp.outgoing_config()
        + f'\n[staff]\naddresses = ["{STAFF}"]\n',
        encoding="utf-8",
    )
    return path


def _alerts(smtp: SmtpCapture) -> list[str]:
    subjects = []
    for received in smtp.messages:
        subject = str(make_header(decode_header(message_from_bytes(received.data)["Subject"])))
        if "メールボックスを読み取れません" in subject:
            assert received.rcpt_tos == [STAFF]
            subjects.append(subject)
    return subjects


def _status(root: Path) -> sqlite3.Row:
    conn = sqlite3.connect(root / "mailbot.db")
    conn.row_factory = sqlite3.Row
    return conn.execute(
        "SELECT * FROM mailbox_status WHERE mailbox = 'code@occto.or.jp'"
    ).fetchone()


def test_a_refused_login_is_mailed_to_staff_after_15_minutes_then_hourly(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture, capsys
):
    wrong = str(_config(tmp_path, dovecot, smtp_server, "wrong password"))
    dovecot.append(
        "youryou",
        build("お問い合わせ", "質問です。", from_addr="a@example.co.jp", to=LONG),
    )

    assert main(["--config", wrong, "--now", T0, "run", "--once"]) == 6
    assert "login refused" in capsys.readouterr().err
    status = _status(tmp_path)
    assert status["failing_since"][:16] == T0[:16] and status["failure_kind"] == "auth"
    # the other mailbox was read and answered all the same
    assert [m.rcpt_tos for m in smtp_server.messages if STAFF not in m.rcpt_tos] == [
        ["a@example.co.jp"]
    ]

    assert main(["--config", wrong, "--now", _at(14), "run", "--once"]) == 6
    assert _alerts(smtp_server) == []
    assert main(["--config", wrong, "--now", _at(14), "doctor", "--offline"]) == 0
    assert "reading code@occto.or.jp\twarn\tunreadable since" in capsys.readouterr().out

    # 16: the clock of each run advances while it works (a refused login takes Dovecot a
    # moment), so the 15 minutes are passed with a minute to spare
    assert main(["--config", wrong, "--now", _at(16), "run", "--once"]) == 6
    assert _alerts(smtp_server) == ["【mailbot】メールボックスを読み取れません（code@occto.or.jp）"]
    body = message_from_bytes(smtp_server.messages[-1].data).get_payload(decode=True)
    assert "ログインが拒否されました" in body.decode("utf-8")
    assert main(["--config", wrong, "--now", _at(17), "doctor", "--offline"]) == 1
    out = capsys.readouterr().out
    assert "reading code@occto.or.jp\tFAIL\tunreadable since " + T0[:16] in out
    assert "auth" in out and "staff told at" in out

    for minutes in (20, 45, 75):
        assert main(["--config", wrong, "--now", _at(minutes), "run", "--once"]) == 6
    assert len(_alerts(smtp_server)) == 1
    assert main(["--config", wrong, "--now", _at(77), "run", "--once"]) == 6
    assert len(_alerts(smtp_server)) == 2

    right = str(_config(tmp_path, dovecot, smtp_server, "secret"))
    assert main(["--config", right, "--now", _at(80), "run", "--once"]) == 0
    status = _status(tmp_path)
    assert status["failing_since"] is None and status["last_ok_at"][:16] == _at(80)[:16]
    assert main(["--config", right, "--now", _at(200), "run", "--once"]) == 0
    assert len(_alerts(smtp_server)) == 2


def test_the_watcher_backs_off_to_five_minutes_and_logs_each_change_once(tmp_path: Path, caplog):
    """Failures injected as the exceptions the libraries raise; the store is real."""
    import socket
    import ssl
    from datetime import datetime

    from mailbot.clock import TOKYO
    from mailbot.errors import MailboxError
    from mailbot.intake.reading import ReadingState
    from mailbot.store import Store

    store = Store(tmp_path / "mailbot.db")
    state = ReadingState("code@occto.or.jp", store, lambda: datetime(2026, 11, 25, 9, tzinfo=TOKYO))
    refused = MailboxError("ImapMailbox(code@imap.example.jp:993/INBOX): login refused: NO")
    with caplog.at_level("WARNING", logger="mailbot.intake.reading"):
        delays = [state.failed(refused) for _ in range(9)]
        assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300]
        assert [r.getMessage().split(":")[0] for r in caplog.records] == [
            "mailbox code@occto.or.jp unreadable (auth)"
        ]
        for exc, kind in (
            (socket.gaierror(-2, "Name or service not known"), "dns"),
            (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls"),
            (ConnectionRefusedError(111, "Connection refused"), "connection"),
            (TimeoutError("timed out"), "connection"),
        ):
            wrapped = MailboxError("cannot connect")
            wrapped.__cause__ = exc
            state.failed(wrapped)
            assert store.mailbox_statuses()["code@occto.or.jp"].failure_kind == kind
        state.ok()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 + 3 + 1  # the first, each change of kind, the recovery
    assert messages[-1].startswith("mailbox code@occto.or.jp: read again after")
    status = store.mailbox_statuses()["code@occto.or.jp"]
    assert status.failing_since is None and status.last_ok_at is not None
    assert state.failed(refused) == 5  # a new failure starts the backoff again
    store.close()


def test_mailbot_run_itself_mails_staff_when_a_mailbox_stays_unreadable(tmp_path: Path):
    """The daemon: code@ on a port nothing listens on, a threshold of 3 seconds."""
    from email.parser import BytesParser

    from tests.support.servers import free_port
    from tests.test_e2e import start_run, wait_for_log
    from tests.test_shutdown import _stop_within

    config = tmp_path / "config.toml"
    config.write_text(
        f'[storage]\ndatabase = "{tmp_path / "mailbot.db"}"\n\n'
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "imap"\nhost = "127.0.0.1"\n'
        f'port = {free_port()}\nsecurity = "none"\nusername = "code"\npassword = "x"\n\n'
        f'[[mailboxes]]\naddress = "{LONG}"\nbackend = "maildir"\n'
        f'path = "{tmp_path / "inbox"}"\n\n'
        f'[outgoing]\nbackend = "maildir"\npath = "{tmp_path / "outbox"}"\n\n'
        f'[staff]\naddresses = ["{STAFF}"]\n\n[monitoring]\nmailbox_alert_minutes = 0.05\n',
        encoding="utf-8",
    )
    log = tmp_path / "run.log"
    proc = start_run(config, log, now=T0)
    try:
        wait_for_log(log, "mailbox code@occto.or.jp unreadable since")
        assert _stop_within(proc, 2.0, log) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    mails = [
        BytesParser().parsebytes(p.read_bytes()) for p in (tmp_path / "outbox" / "new").iterdir()
    ]
    subjects = [str(make_header(decode_header(m["Subject"]))) for m in mails]
    assert subjects.count("【mailbot】メールボックスを読み取れません（code@occto.or.jp）") == 1
