"""Fixtures for the real servers. Without Dovecot the IMAP tests skip with the reason; under
CI=true a missing Dovecot is a failure, so CI can never pass by skipping them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.servers import Dovecot, SmtpCapture, dovecot_available


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
