"""SIGTERM ends `mailbot run` within 2 s even while its servers cannot be reached (issue 24:
"SIGTERM took 15–22 s while IMAP was down"). The daemon runs as a real process against a
port nothing listens on, or a blackhole (a server that takes the connection and never says a
word, so a client waits for its greeting until its socket timeout), with a reply due to an
SMTP blackhole. The 2 s bound is the failure-detection timeout of `wait`, not a measurement."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from mailbot.cli import main
from tests.support.samples import SAMPLES_DIR
from tests.support.servers import STAFF, Blackhole, free_port
from tests.test_e2e import logged, start_run, wait_for_log

NOW = "2026-11-25T10:00:00+09:00"
LATER = "2026-11-25T10:10:00+09:00"


def _config(root: Path, imap_port: int, smtp_port: int) -> Path:
    boxes = ""
    for address, user in (("code@occto.or.jp", "code"), ("youryou_rikuase_long@occto.or.jp", "y")):
        boxes += (
            f'[[mailboxes]]\naddress = "{address}"\nbackend = "imap"\nhost = "127.0.0.1"\n'
            f'port = {imap_port}\nsecurity = "none"\nusername = "{user}"\n'
            'password = "secret"\npoll_interval = 1\n\n'
        )
    path = root / "config.toml"
    path.write_text(
        f'[storage]\ndatabase = "{root / "mailbot.db"}"\n\n{boxes}'
        f'[outgoing]\nbackend = "smtp"\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        f'security = "none"\ntimeout = 30\n\n[staff]\naddresses = ["{STAFF}"]\n',
        encoding="utf-8",
    )
    return path


def _reply_due(root: Path) -> None:
    """A receipt planned and deferred once (the SMTP port refused it), due again at LATER."""
    config = _config(root, free_port(), free_port())
    sample = str(SAMPLES_DIR / "05_question.eml")
    assert main(["--config", str(config), "--now", NOW, "ingest", sample]) == 0


def _stop_within(proc: subprocess.Popen, seconds: float, log: Path) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(
            f"still running {seconds} s after SIGTERM:\n{log.read_text()[-3000:]}"
        ) from None


@pytest.mark.parametrize("imap", ["closed port", "blackhole"])
def test_sigterm_ends_the_daemon_within_two_seconds_while_servers_are_unreachable(
    tmp_path: Path, imap: str
):
    _reply_due(tmp_path)
    smtp = Blackhole()
    imap_hole = Blackhole() if imap == "blackhole" else None
    imap_port = imap_hole.port if imap_hole else free_port()
    config = _config(tmp_path, imap_port, smtp.port)
    log = tmp_path / "run.log"
    proc = start_run(config, log, now=LATER)
    try:
        wait_for_log(log, "running on 2 mailbox(es)")
        assert smtp.wait_for(1, timeout=20), log.read_text()[-3000:]  # the sender is connecting
        if imap_hole is not None:  # both watchers wait for a greeting that never comes
            assert imap_hole.wait_for(2, timeout=20), log.read_text()[-3000:]
        else:  # both watchers have failed once and are backing off
            wait_for_log(log, "code@occto.or.jp unreadable (connection)")
            wait_for_log(log, "youryou_rikuase_long@occto.or.jp unreadable (connection)")
        assert _stop_within(proc, 2.0, log) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        smtp.close()
        if imap_hole is not None:
            imap_hole.close()


def test_a_refused_connection_is_logged_once_not_at_every_retry(tmp_path: Path):
    """Issue 24: "a wrong IMAP password logs a warning every ~7 s forever". The watcher backs
    off (5 s, doubling to 5 minutes) and logs a failure once when it starts; the retries of
    the first seconds leave no further warning."""
    config = _config(tmp_path, free_port(), free_port())
    log = tmp_path / "run.log"
    proc = start_run(config, log, now=LATER)
    try:
        wait_for_log(log, "code@occto.or.jp unreadable (connection)")
        assert logged(log, "code@occto.or.jp: retrying in", 30, times=2), log.read_text()
        assert _stop_within(proc, 2.0, log) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert text.count("code@occto.or.jp unreadable") == 1, text
