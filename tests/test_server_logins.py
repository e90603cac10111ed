"""Each mailbox sends as itself (`[mailboxes.outgoing]`), and TLS is verified against the
server's `ca_file`: aiosmtpd records the login of every message; Dovecot and aiosmtpd serve
TLS with a certificate from a CA the test makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.clock import Clock, parse_instant
from mailbot.config import Config, parse_config
from mailbot.context import Context
from mailbot.doctor import FAIL, OK, run_checks
from mailbot.errors import MailboxError
from mailbot.intake.mailboxes.imap import ImapMailbox
from mailbot.outbox.send import flush_outbox, make_sender
from tests.support.desk import outbox
from tests.support.oauth import (
    CLIENT_SECRET,
    SECRET_ENV,
    TestCA,
    TokenServer,
    microsoft,
    plan_one,
)
from tests.support.servers import PASSWORD, Dovecot, SmtpCapture

CODE = "code@occto.or.jp"
LONG = "youryou_rikuase_long@occto.or.jp"
NOW = "2026-11-25T10:00"


def config_of(tmp_path: Path, text: str) -> Config:
    return parse_config(
        '[storage]\ndatabase = "data/mailbot.db"\n'
        + text
        + '\n[staff]\naddresses = ["capacity-desk@occto.or.jp"]\n',
        "<t>",
        tmp_path,
    )


def two_mailboxes(smtp: SmtpCapture, long_outgoing: str, outgoing_login: str) -> str:
    return (
        f'[[mailboxes]]\naddress = "{CODE}"\nbackend = "maildir"\npath = "in/code"\n\n'
        f'[[mailboxes]]\naddress = "{LONG}"\nbackend = "maildir"\npath = "in/long"\n'
        + long_outgoing
        + f'\n[outgoing]\nbackend = "smtp"\nhost = "127.0.0.1"\nport = {smtp.port}\n'
        'security = "none"\ntimeout = 10\n' + outgoing_login
    )


def send_one_from_each(tmp_path: Path, config: Config) -> tuple[int, int]:
    ctx = Context.open(config, Clock(parse_instant(NOW)))
    try:
        plan_one(ctx, CODE)
        plan_one(ctx, LONG)
        return flush_outbox(ctx, make_sender(ctx))
    finally:
        ctx.close()


def test_each_mailbox_sends_as_itself_through_its_own_smtp_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILBOT_SMTP_PASSWORD", "pw-code")
    monkeypatch.setenv("MAILBOT_SMTP_PASSWORD_LONG", "pw-long")
    smtp = SmtpCapture(passwords={CODE: "pw-code", LONG: "pw-long"}).start()
    try:
        config = config_of(
            tmp_path,
            two_mailboxes(
                smtp,
                '[mailboxes.outgoing]\npassword_env = "MAILBOT_SMTP_PASSWORD_LONG"\n',
                f'username = "{CODE}"\npassword_env = "MAILBOT_SMTP_PASSWORD"\n',
            ),
        )
        assert send_one_from_each(tmp_path, config) == (2, 0)
        doctor = {c.name: c for c in run_checks(config, parse_instant(NOW))}
    finally:
        smtp.stop()
    assert doctor["outgoing"].detail.endswith(f"connected and logged in as {CODE}")
    assert doctor[f"outgoing for {LONG}"].status == OK
    assert doctor[f"outgoing for {LONG}"].detail.endswith(f"connected and logged in as {LONG}")
    got = {m.login: m.mail_from for m in smtp.messages}
    # before: both went through code@'s login, with code@ as envelope sender
    assert got == {CODE: CODE, LONG: LONG}


def test_one_app_token_serves_every_mailbox_that_sends_as_itself(
    tmp_path: Path, token_server: TokenServer, test_ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    token_server.grants = {"code", "youryou_rikuase_long"}
    smtp = SmtpCapture(
        check_token=lambda user, token: token_server.user_of(token, user) is not None
    ).start()
    try:
        config = config_of(
            tmp_path,
            two_mailboxes(
                smtp,
                '[mailboxes.outgoing]\nauth = "oauth2"\n',
                f'username = "{CODE}"\nauth = "oauth2"\n'
                + microsoft(token_server, test_ca, "outgoing.oauth2", scope="shared-scope"),
            ),
        )
        assert config.mailboxes[1].outgoing is not None
        assert config.mailboxes[1].outgoing.oauth2 == config.outgoing.oauth2
        assert send_one_from_each(tmp_path, config) == (2, 0)
    finally:
        smtp.stop()
    assert {m.login: m.mail_from for m in smtp.messages} == {CODE: CODE, LONG: LONG}
    assert len(token_server.requests) == 1


def test_a_mailbox_whose_login_is_refused_waits_and_the_other_still_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILBOT_SMTP_PASSWORD", "pw-code")
    monkeypatch.setenv("MAILBOT_SMTP_PASSWORD_LONG", "wrong")
    smtp = SmtpCapture(passwords={CODE: "pw-code", LONG: "pw-long"}).start()
    try:
        config = config_of(
            tmp_path,
            two_mailboxes(
                smtp,
                '[mailboxes.outgoing]\npassword_env = "MAILBOT_SMTP_PASSWORD_LONG"\n',
                f'username = "{CODE}"\npassword_env = "MAILBOT_SMTP_PASSWORD"\n',
            ),
        )
        assert send_one_from_each(tmp_path, config) == (1, 1)
        ctx = Context.open(config, Clock(parse_instant(NOW)))
        rows = outbox(ctx)
        ctx.close()
    finally:
        smtp.stop()
    assert [m.login for m in smtp.messages] == [CODE]
    assert [r["state"] for r in rows] == ["sent", "pending"]
    assert rows[1]["last_error"].startswith(f"mailboxes {LONG} outgoing: smtp 127.0.0.1:")
    assert "535" in rows[1]["last_error"]


@pytest.fixture
def tls_dovecot(test_ca: TestCA) -> Dovecot:
    from tests.conftest import _require_dovecot

    _require_dovecot()
    server = Dovecot(tls=(test_ca.cert_file, test_ca.key_file)).start()
    yield server
    server.close()


def imap_box(dovecot: Dovecot, port: int, security: str, ca: TestCA | None) -> ImapMailbox:
    return ImapMailbox(
        address=CODE,
        host="127.0.0.1",
        port=port,
        security=security,
        username="code",
        password=PASSWORD,
        ca_file=ca.ca_file if ca else None,
        attempts=1,
    )


def test_imap_tls_is_verified_against_ca_file_and_a_certificate_failure_says_so(
    tls_dovecot: Dovecot, test_ca: TestCA, tmp_path: Path
) -> None:
    for port, security in ((tls_dovecot.tls_port, "ssl"), (tls_dovecot.port, "starttls")):
        box = imap_box(tls_dovecot, port, security, test_ca)
        assert box.probe().startswith("INBOX: 0 waiting")
        box.close()
        with pytest.raises(MailboxError) as untrusted:
            imap_box(tls_dovecot, port, security, None).probe()
        assert str(untrusted.value) == (
            f"mailbox {CODE}: certificate verify failed for imap 127.0.0.1:{port} (unable to get"
            " local issuer certificate) — set ca_file to the CA that signed the server's"
            " certificate"
        )
    other = TestCA(tmp_path / "other", name="another CA")
    with pytest.raises(MailboxError, match="certificate verify failed for imap"):
        imap_box(tls_dovecot, tls_dovecot.tls_port, "ssl", other).probe()

    config = config_of(
        tmp_path,
        f'[[mailboxes]]\naddress = "{CODE}"\nbackend = "imap"\nhost = "127.0.0.1"\n'
        f'port = {tls_dovecot.tls_port}\nusername = "code"\npassword = "{PASSWORD}"\n'
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    [row] = [c for c in run_checks(config, parse_instant(NOW)) if c.name == f"mailbox {CODE}"]
    assert row.status == FAIL
    assert row.detail.startswith(
        f"certificate verify failed for imap 127.0.0.1:{tls_dovecot.tls_port} ("
    )


def test_smtp_tls_is_verified_against_ca_file_and_a_certificate_failure_waits_with_why(
    tmp_path: Path, test_ca: TestCA
) -> None:
    smtp = SmtpCapture(ssl_context=test_ca.server_context()).start()
    outgoing = (
        f'[outgoing]\nbackend = "smtp"\nhost = "127.0.0.1"\nport = {smtp.port}\n'
        'security = "ssl"\ntimeout = 10\n'
    )
    mailbox = f'[[mailboxes]]\naddress = "{CODE}"\nbackend = "maildir"\npath = "in"\n'
    try:
        untrusted = config_of(tmp_path / "a", mailbox + outgoing)
        ctx = Context.open(untrusted, Clock(parse_instant(NOW)))
        plan_one(ctx)
        assert flush_outbox(ctx, make_sender(ctx)) == (0, 1)
        [row] = outbox(ctx)
        ctx.close()
        assert row["state"] == "pending"
        assert row["last_error"].startswith(
            f"outgoing: certificate verify failed for smtp 127.0.0.1:{smtp.port} ("
        )
        assert row["last_error"].endswith(
            "— set ca_file to the CA that signed the server's certificate"
        )
        doctor = {c.name: c for c in run_checks(untrusted, parse_instant(NOW))}
        assert doctor["outgoing"].status == FAIL
        assert doctor["outgoing"].detail.startswith("certificate verify failed for smtp")

        trusted = config_of(tmp_path / "b", mailbox + outgoing + f'ca_file = "{test_ca.ca_file}"\n')
        ctx = Context.open(trusted, Clock(parse_instant(NOW)))
        plan_one(ctx)
        assert flush_outbox(ctx, make_sender(ctx)) == (1, 0)
        ctx.close()
        doctor = {c.name: c for c in run_checks(trusted, parse_instant(NOW))}
        assert doctor["outgoing"].status == OK
    finally:
        smtp.stop()
    assert [m.rcpt_tos for m in smtp.messages] == [["a@example.co.jp"]]
