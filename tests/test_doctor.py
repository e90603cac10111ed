"""`mailbot doctor` and `mailbot backup` against real servers and a real database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailbot.cli import main
from tests.samples import SAMPLES_DIR
from tests.servers import Dovecot, SmtpCapture, write_desk_config


def config(tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture) -> str:
    return str(write_desk_config(tmp_path, dovecot, smtp))


def test_doctor_on_a_healthy_desk_and_with_the_smtp_server_down(
    tmp_path: Path, dovecot: Dovecot, smtp_server: SmtpCapture, capsys: pytest.CaptureFixture
):
    cfg = config(tmp_path, dovecot, smtp_server)
    dovecot.append("code", (SAMPLES_DIR / "05_question.eml").read_bytes())
    assert main(["--config", cfg, "doctor"]) == 0
    out = capsys.readouterr().out
    assert "mailbox code@occto.or.jp\tok\timap 127.0.0.1" in out and "1 waiting" in out
    assert "rules/market.toml\twarn\tEXAMPLE" in out
    assert "database integrity\tok" in out
    smtp_server.stop()
    assert main(["--config", cfg, "doctor"]) == 1
    assert "outgoing\tFAIL" in capsys.readouterr().out


def test_backup_is_a_consistent_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    files = sorted(str(p) for p in SAMPLES_DIR.glob("*.eml"))
    assert main(["--now", "2026-11-25T10:00", "ingest", *files]) == 0
    assert main(["backup", "copy.db"]) == 0
    assert "integrity ok" in capsys.readouterr().out
    original = sqlite3.connect(tmp_path / "data" / "mailbot.db")
    copy = sqlite3.connect(tmp_path / "copy.db")
    for table in ("cases", "messages", "outbox", "events"):
        query = f"SELECT count(*) FROM {table}"
        assert copy.execute(query).fetchone() == original.execute(query).fetchone()
    assert main(["backup", "copy.db"]) != 0  # never overwrites
