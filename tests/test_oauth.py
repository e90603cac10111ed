"""OAuth2 logins against real servers: Dovecot with an oauth2 passdb asking the test's own
introspection endpoint, aiosmtpd taking XOAUTH2/OAUTHBEARER, and tokens from the test's own
endpoints — Microsoft's identity platform through msal (HTTPS with a private CA, as msal
requires), Google's token endpoint, and a token_command. Only the clock of the token cache
is injected."""

from __future__ import annotations

import base64
import shlex
import sys
import time
from pathlib import Path

import pytest

from mailbot.clock import Clock, parse_instant
from mailbot.config import Config, parse_config
from mailbot.context import Context
from mailbot.doctor import FAIL, OK, WARN, run_checks
from mailbot.errors import MailboxError
from mailbot.intake.mailboxes.imap import ImapMailbox
from mailbot.mailauth import (
    RENEW_AFTER_REFUSAL,
    RENEW_BEFORE,
    MicrosoftSource,
    TokenError,
    Tokens,
    make_source,
    server_answer,
    tokens_for,
)
from mailbot.outbox.send import flush_outbox, make_sender
from tests.support.desk import outbox
from tests.support.oauth import (
    CLIENT_SECRET,
    GOOGLE_CLIENT,
    GOOGLE_SECRET,
    REFRESH_TOKEN,
    SECRET_ENV,
    TestCA,
    TokenServer,
    app_certificate,
    microsoft,
    plan_one,
    service_account,
)
from tests.support.servers import Dovecot, SmtpCapture

NOW = "2026-11-25T10:00"


def imap_entry(dovecot: Dovecot, user: str, address: str, oauth2: str) -> str:
    return (
        f'[[mailboxes]]\naddress = "{address}"\nbackend = "imap"\nhost = "127.0.0.1"\n'
        f'port = {dovecot.port}\nsecurity = "none"\nusername = "{user}"\nauth = "oauth2"\n' + oauth2
    )


def smtp_entry(smtp: SmtpCapture, oauth2: str, username: str = "code@occto.or.jp") -> str:
    return (
        f'[outgoing]\nbackend = "smtp"\nhost = "127.0.0.1"\nport = {smtp.port}\n'
        f'security = "none"\ntimeout = 10\nusername = "{username}"\nauth = "oauth2"\n' + oauth2
    )


def desk(tmp_path: Path, *parts: str) -> Config:
    text = '[storage]\ndatabase = "data/mailbot.db"\n' + "\n".join(parts)
    return parse_config(
        text + '\n[staff]\naddresses = ["capacity-desk@occto.or.jp"]\n', "<t>", tmp_path
    )


def token_smtp(server: TokenServer) -> SmtpCapture:
    return SmtpCapture(check_token=lambda user, token: server.user_of(token, user) is not None)


@pytest.fixture(autouse=True)
def app_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)


def test_imap_and_smtp_log_in_over_xoauth2_with_a_token_the_microsoft_endpoint_issued(
    tmp_path: Path, token_server: TokenServer, oauth_dovecot: Dovecot, test_ca: TestCA
) -> None:
    smtp = token_smtp(token_server).start()
    try:
        config = desk(
            tmp_path,
            imap_entry(
                oauth_dovecot,
                "code",
                "code@occto.or.jp",
                microsoft(token_server, test_ca, "mailboxes.oauth2"),
            ),
            smtp_entry(smtp, microsoft(token_server, test_ca, "outgoing.oauth2")),
        )
        oauth_dovecot.deliver("code", b"Subject: hello\r\n\r\nbody\r\n")
        mailbox = ImapMailbox.from_config(config.mailboxes[0], attempts=1)
        try:
            assert [m.key for m in mailbox.fetch()] == [f"imap:{mailbox.uidvalidity}:1"]
        finally:
            mailbox.close()

        ctx = Context.open(config, Clock(parse_instant(NOW)))
        plan_one(ctx)
        assert flush_outbox(ctx, make_sender(ctx)) == (1, 0)
        ctx.close()
    finally:
        smtp.stop()
    [sent] = smtp.messages
    assert sent.login == "code@occto.or.jp"
    assert sent.mail_from == "code@occto.or.jp"
    # one client-credentials token for the app's scope, shared by the IMAP and SMTP logins
    grants = [r for r in token_server.requests if r["path"].endswith("/oauth2/v2.0/token")]
    assert len(grants) == 1
    assert grants[0]["grant_type"] == "client_credentials"
    assert grants[0]["scope"] == "https://outlook.office365.com/.default"
    assert grants[0]["client_secret"] == CLIENT_SECRET
    assert token_server.introspected == [next(iter(token_server.issued))]
    assert "method=XOAUTH2" in oauth_dovecot.log()


def expired_token_command(tmp_path: Path, server: TokenServer, user: str) -> str:
    """A token_command printing a token the server issued and then let expire; each run is
    counted in runs.txt."""
    token = server.issue(user)
    server.now += server.lifetime
    runs = tmp_path / "runs.txt"
    script = f"echo run >> {shlex.quote(str(runs))}; echo {token}"
    return (
        "[mailboxes.oauth2]\n" if user == "code" else "[outgoing.oauth2]\n"
    ) + f'provider = "command"\ntoken_command = ["/bin/sh", "-c", "{script}"]\n'


def test_an_expired_token_is_refused_in_one_line_naming_the_mailbox_after_one_renewal(
    tmp_path: Path, token_server: TokenServer, oauth_dovecot: Dovecot
) -> None:
    config = desk(
        tmp_path,
        imap_entry(
            oauth_dovecot,
            "code",
            "code@occto.or.jp",
            expired_token_command(tmp_path, token_server, "code"),
        ),
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    box = config.mailboxes[0]
    assert box.oauth2 is not None
    with pytest.raises(MailboxError):
        ImapMailbox.from_config(box, attempts=1).probe()
    # a token fetched seconds ago is not fetched again: the refusal stands
    assert (tmp_path / "runs.txt").read_text().count("run") == 1
    later = time.time() + RENEW_AFTER_REFUSAL + 1
    tokens_for(box.oauth2, "code").clock = lambda: later
    with pytest.raises(MailboxError) as refused:
        ImapMailbox.from_config(box, attempts=1).probe()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(
        f"mailbox code@occto.or.jp: imap 127.0.0.1:{oauth_dovecot.port} refused the OAuth2"
        " token for code (XOAUTH2): "
    )
    assert "status=401" in message  # the server's own answer: its error challenge
    assert "AUTHENTICATIONFAILED" in message
    assert (tmp_path / "runs.txt").read_text().count("run") == 2


def test_smtp_refuses_an_expired_token_in_one_line_and_the_reply_waits(
    tmp_path: Path, token_server: TokenServer
) -> None:
    smtp = token_smtp(token_server).start()
    try:
        config = desk(
            tmp_path,
            '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "maildir"\npath = "in"\n',
            smtp_entry(smtp, expired_token_command(tmp_path, token_server, "code@occto.or.jp")),
        )
        ctx = Context.open(config, Clock(parse_instant(NOW)))
        plan_one(ctx)
        assert flush_outbox(ctx, make_sender(ctx)) == (0, 1)
        [row] = outbox(ctx)
        ctx.close()
    finally:
        smtp.stop()
    assert smtp.messages == []
    assert smtp.handler.refusals == ["code@occto.or.jp"]  # just fetched: not fetched again
    # deferred, not failed for good: a refused login is the desk's configuration
    assert row["state"] == "pending"
    assert row["next_attempt_at"] is not None
    assert row["last_error"].startswith(
        f"outgoing: smtp 127.0.0.1:{smtp.port} refused the OAuth2 token for code@occto.or.jp"
        " (XOAUTH2): "
    )
    assert "status=401" in row["last_error"]
    assert "535 5.7.3 Authentication unsuccessful" in row["last_error"]
    assert "\n" not in row["last_error"]


def test_a_token_the_server_stopped_taking_is_renewed_once_and_the_login_goes_on(
    tmp_path: Path, token_server: TokenServer, oauth_dovecot: Dovecot, test_ca: TestCA
) -> None:
    oauth2 = microsoft(token_server, test_ca, "mailboxes.oauth2", scope="scope-renew-test")
    config = desk(
        tmp_path,
        imap_entry(oauth_dovecot, "code", "code@occto.or.jp", oauth2),
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    box = config.mailboxes[0]
    assert box.oauth2 is not None
    first = ImapMailbox.from_config(box, attempts=1)
    first.probe()
    first.close()
    token_server.revoke_all()
    later = time.time() + RENEW_AFTER_REFUSAL + 1
    tokens_for(box.oauth2, "code").clock = lambda: later
    again = ImapMailbox.from_config(config.mailboxes[0], attempts=1)
    assert again.probe().startswith("INBOX: 0 waiting")
    again.close()
    assert len(token_server.requests) == 2
    assert len(token_server.issued) == 2


def test_tokens_are_renewed_before_they_expire_by_the_injected_clock(
    tmp_path: Path, token_server: TokenServer, test_ca: TestCA
) -> None:
    config = desk(
        tmp_path,
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "imap"\nhost = "127.0.0.1"\n'
        'username = "code"\nauth = "oauth2"\n'
        + microsoft(token_server, test_ca, "mailboxes.oauth2"),
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    oauth2 = config.mailboxes[0].oauth2
    assert oauth2 is not None
    now = [5_000.0]
    tokens = Tokens(MicrosoftSource(oauth2), clock=lambda: now[0])
    first = tokens.get()
    now[0] += token_server.lifetime - RENEW_BEFORE - 1
    assert tokens.get() == first
    assert tokens.fetched == 1
    now[0] += 2  # inside the last RENEW_BEFORE seconds: a new token, before the old expires
    second = tokens.get()
    assert second != first
    assert tokens.fetched == 2
    assert tokens.renew() is None  # refused seconds after it was fetched: not fetched again
    now[0] += RENEW_AFTER_REFUSAL
    assert tokens.renew() not in (None, first, second)
    assert tokens.fetched == 3


def test_an_app_certificate_signs_the_client_assertion(
    tmp_path: Path, token_server: TokenServer, oauth_dovecot: Dovecot, test_ca: TestCA
) -> None:
    pem, public = app_certificate(tmp_path)
    token_server.app_key = public
    oauth2 = microsoft(
        token_server, test_ca, "mailboxes.oauth2", client_secret_env="", certificate_file=str(pem)
    )
    config = desk(
        tmp_path,
        imap_entry(oauth_dovecot, "code", "code@occto.or.jp", oauth2),
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    mailbox = ImapMailbox.from_config(config.mailboxes[0], attempts=1)
    assert mailbox.probe().startswith("INBOX:")
    mailbox.close()
    [grant] = token_server.requests
    assert "client_secret" not in grant
    assert grant["client_assertion_type"].endswith("jwt-bearer")


def test_google_refresh_token_and_service_account_with_domain_wide_delegation(
    tmp_path: Path,
    token_server: TokenServer,
    oauth_dovecot: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
    test_ca: TestCA,
) -> None:
    monkeypatch.setenv("MAILBOT_TEST_REFRESH", REFRESH_TOKEN)
    (tmp_path / "google-secret").write_text(GOOGLE_SECRET + "\n")
    key, public = service_account(tmp_path, token_server.google_token_uri)
    token_server.service_key = public
    refresh = (
        '[mailboxes.oauth2]\nprovider = "google"\n'
        f'client_id = "{GOOGLE_CLIENT}"\nclient_secret_file = "google-secret"\n'
        'refresh_token_env = "MAILBOT_TEST_REFRESH"\n'
        f'token_uri = "{token_server.google_token_uri}"\nca_file = "{test_ca.ca_file}"\n'
    )
    delegated = (
        '[mailboxes.oauth2]\nprovider = "google"\nmechanism = "oauthbearer"\n'
        f'service_account_file = "{key.name}"\nca_file = "{test_ca.ca_file}"\n'
    )
    config = desk(
        tmp_path,
        imap_entry(oauth_dovecot, "code", "code@occto.or.jp", refresh),
        imap_entry(oauth_dovecot, "youryou", "youryou_rikuase_long@occto.or.jp", delegated),
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    for box in config.mailboxes:
        mailbox = ImapMailbox.from_config(box, attempts=1)
        assert mailbox.probe().startswith("INBOX:")
        mailbox.close()
    by_grant = {r["grant_type"]: r for r in token_server.requests}
    assert by_grant["refresh_token"]["client_secret"] == GOOGLE_SECRET
    assert "urn:ietf:params:oauth:grant-type:jwt-bearer" in by_grant
    assert [i.user for i in token_server.issued.values()] == ["code", "youryou"]
    log = oauth_dovecot.log()
    assert "user=<code>, method=XOAUTH2" in log
    assert "user=<youryou>, method=OAUTHBEARER" in log


def test_a_token_endpoint_refusal_or_a_missing_secret_is_one_line(
    tmp_path: Path, token_server: TokenServer, test_ca: TestCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = desk(
        tmp_path,
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "imap"\nhost = "127.0.0.1"\n'
        'username = "code"\nauth = "oauth2"\n'
        + microsoft(token_server, test_ca, "mailboxes.oauth2"),
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    oauth2 = config.mailboxes[0].oauth2
    assert oauth2 is not None
    token_server.refuse_next = 1
    with pytest.raises(TokenError) as refused:
        Tokens(MicrosoftSource(oauth2)).get()
    assert str(refused.value) == (
        f"token endpoint of {token_server.authority} refused: invalid_client: AADSTS7000215: bad"
    )
    monkeypatch.delenv(SECRET_ENV)
    with pytest.raises(TokenError) as missing:
        Tokens(MicrosoftSource(oauth2)).get()
    assert str(missing.value) == f"client secret: environment variable {SECRET_ENV} is not set"


def test_oauthbearer_over_smtp_with_a_token_command_printing_json(
    tmp_path: Path, token_server: TokenServer
) -> None:
    token = token_server.issue("code@occto.or.jp")
    script = tmp_path / "token.py"
    script.write_text(f'print(\'{{"access_token": "{token}", "expires_in": 3599}}\')\n')
    smtp = token_smtp(token_server).start()
    try:
        config = desk(
            tmp_path,
            '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "maildir"\npath = "in"\n',
            smtp_entry(
                smtp,
                '[outgoing.oauth2]\nprovider = "command"\nmechanism = "oauthbearer"\n'
                f'token_command = ["{sys.executable}", "{script}"]\n',
            ),
        )
        ctx = Context.open(config, Clock(parse_instant(NOW)))
        plan_one(ctx)
        assert flush_outbox(ctx, make_sender(ctx)) == (1, 0)
        ctx.close()
    finally:
        smtp.stop()
    assert [m.login for m in smtp.messages] == ["code@occto.or.jp"]


def test_doctor_fetches_each_token_and_logs_in(
    tmp_path: Path, token_server: TokenServer, oauth_dovecot: Dovecot, test_ca: TestCA
) -> None:
    smtp = token_smtp(token_server).start()
    try:
        config = desk(
            tmp_path,
            imap_entry(
                oauth_dovecot,
                "code",
                "code@occto.or.jp",
                microsoft(token_server, test_ca, "mailboxes.oauth2", scope="doctor-scope"),
            ),
            smtp_entry(smtp, microsoft(token_server, test_ca, "outgoing.oauth2", scope="s2")),
        )
        now = parse_instant(NOW)
        rows = {c.name: c for c in run_checks(config, now)}
        assert rows["mailbox code@occto.or.jp"].status == OK
        assert "XOAUTH2 with a microsoft token" in rows["mailbox code@occto.or.jp"].detail
        assert rows["outgoing"].status == OK
        assert rows["outgoing"].detail == (
            f"smtp 127.0.0.1:{smtp.port}: connected and logged in XOAUTH2 as code@occto.or.jp"
        )
        token_server.grants = set()
        token_server.revoke_all()
        rows = {c.name: c for c in run_checks(config, now)}
    finally:
        smtp.stop()
    imap = rows["mailbox code@occto.or.jp"]
    assert imap.status == FAIL
    assert imap.detail.startswith(
        f"imap 127.0.0.1:{oauth_dovecot.port} refused the OAuth2 token for code (XOAUTH2): "
    )
    assert rows["outgoing"].status == FAIL
    assert rows["outgoing"].detail.startswith(
        f"smtp 127.0.0.1:{smtp.port} refused the OAuth2 token for code@occto.or.jp (XOAUTH2): "
    )


def test_a_token_endpoint_whose_certificate_is_not_trusted_says_so(
    tmp_path: Path, token_server: TokenServer, test_ca: TestCA
) -> None:
    config = desk(
        tmp_path,
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "imap"\nhost = "127.0.0.1"\n'
        'username = "code"\nauth = "oauth2"\n'
        + microsoft(token_server, test_ca, "mailboxes.oauth2", ca_file=""),
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    oauth2 = config.mailboxes[0].oauth2
    assert oauth2 is not None and oauth2.ca_file is None
    with pytest.raises(TokenError) as untrusted:
        Tokens(MicrosoftSource(oauth2)).get()
    assert str(untrusted.value) == (
        f"authority {token_server.authority}: certificate verify failed for the token endpoint"
        " (unable to get local issuer certificate) — set the oauth2 table's ca_file to the CA"
        " that signed the server's certificate"
    )


def test_doctor_checks_the_credential_files_offline(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("s\n")
    secret.chmod(0o644)
    config = desk(
        tmp_path,
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "imap"\nhost = "127.0.0.1"\n'
        'username = "code"\nauth = "oauth2"\nca_file = "ca.pem"\n[mailboxes.oauth2]\n'
        'provider = "microsoft"\ntenant = "t"\nclient_id = "c"\n'
        'client_secret_file = "client-secret"\n',
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    now = parse_instant(NOW)

    def row() -> tuple[str, str]:
        [check] = [
            c for c in run_checks(config, now, servers=False) if c.name == "credential files"
        ]
        return check.status, check.detail

    assert row() == (FAIL, f"not found: {tmp_path / 'ca.pem'}")
    (tmp_path / "ca.pem").write_text("")
    assert row() == (WARN, f"readable by group or others (chmod 600): {secret}")
    secret.chmod(0o600)
    assert row() == (OK, "2 found; secrets readable by their owner only")


def test_what_a_server_or_a_token_source_says_cannot_forge_lines_or_sasl_fields(
    tmp_path: Path,
) -> None:
    """Servers, token endpoints and token programs are outside the desk: their words go into
    one log line, and a token goes into the SASL exchange only as RFC 6750 allows."""
    forged = base64.b64encode(b'{"status":"401\\n2026-12-08 ERROR forged\\u001b[2J"}')
    assert server_answer(forged) == "status=401 2026-12-08 ERROR forged [2J"
    assert server_answer(b"NO\r\nA2 OK fake\x07") == "NO A2 OK fake"
    script = tmp_path / "token.sh"
    script.write_text("printf 'tok-1\\001user=admin\\001auth=Bearer tok-2'\n")
    config = desk(
        tmp_path,
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "imap"\nhost = "127.0.0.1"\n'
        'username = "code"\nauth = "oauth2"\n[mailboxes.oauth2]\nprovider = "command"\n'
        f'token_command = ["/bin/sh", "{script}"]\n',
        '[outgoing]\nbackend = "maildir"\npath = "out"\n',
    )
    oauth2 = config.mailboxes[0].oauth2
    assert oauth2 is not None
    with pytest.raises(TokenError, match=r"gave no bearer token \(RFC 6750 b64token\)"):
        Tokens(make_source(oauth2, "code")).get()
