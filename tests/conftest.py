"""Fixtures for the real servers. Without Dovecot the IMAP tests skip with the reason; under
CI=true a missing Dovecot is a failure, so CI can never pass by skipping them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cycle import Desk, maildir_desk, server_desk
from tests.support.oauth import TestCA, TokenServer
from tests.support.servers import Dovecot, SmtpCapture, dovecot_available


def _require_dovecot() -> None:
    if dovecot_available():
        return
    why = "Dovecot is not installed (apt-get install dovecot-imapd); IMAP tests need a real server"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} — and CI=true, so this is an error, not a skip")
    pytest.skip(why)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    _require_dovecot()
    server = Dovecot().start()
    yield server
    server.close()


@pytest.fixture
def dovecot_no_idle() -> Iterator[Dovecot]:
    _require_dovecot()
    server = Dovecot(idle=False).start()
    yield server
    server.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpCapture]:
    server = SmtpCapture().start()
    yield server
    server.stop()


@pytest.fixture(params=["maildir", "servers"])
def cli_desk(request: pytest.FixtureRequest, tmp_path: Path, capsys) -> Iterator[Desk]:
    """The same cycle on the embedded default and on Dovecot + aiosmtpd."""
    if request.param == "maildir":
        yield maildir_desk(tmp_path, request.getfixturevalue("monkeypatch"), capsys)
        return
    dovecot = request.getfixturevalue("dovecot")
    smtp = request.getfixturevalue("smtp_server")
    yield server_desk(tmp_path, dovecot, smtp, capsys)


@pytest.fixture
def test_ca(tmp_path: Path) -> TestCA:
    """A private CA made for this test, with a certificate for 127.0.0.1."""
    return TestCA(tmp_path / "ca")


@pytest.fixture
def token_server(test_ca: TestCA) -> Iterator[TokenServer]:
    """The test's own token endpoints (Microsoft, Google; HTTPS by test_ca) and the
    introspection endpoint Dovecot asks."""
    server = TokenServer(test_ca)
    yield server
    server.close()


@pytest.fixture
def oauth_dovecot(token_server: TokenServer, test_ca: TestCA) -> Iterator[Dovecot]:
    """Dovecot taking XOAUTH2/OAUTHBEARER tokens checked at token_server, and serving IMAPS
    (on `tls_port`) with test_ca's certificate."""
    _require_dovecot()
    server = Dovecot(
        introspection_url=token_server.introspection_url,
        tls=(test_ca.cert_file, test_ca.key_file),
    ).start()
    yield server
    server.close()
