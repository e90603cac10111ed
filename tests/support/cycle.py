"""A desk driven only through the CLI, the same way on the embedded default (Maildir in and out)
and on real servers (Dovecot + aiosmtpd): the full-cycle tests are written once against it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from mailbot.cli import main
from tests.support.servers import Dovecot, SmtpCapture, user_for, write_desk_config


def subject(raw: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(raw)["Subject"])))


@dataclass
class Desk:
    """How mail reaches mailbot and how its replies are seen, for one backend."""

    config: list[str]
    send: Callable[[bytes], None]
    replies: Callable[[], list[bytes]]
    capsys: pytest.CaptureFixture

    def cli(self, now: str, *args: str) -> int:
        return main([*self.config, "--now", now, *args])

    def out(self, now: str, *args: str) -> str:
        """Run a command and return what it printed."""
        self.capsys.readouterr()
        assert self.cli(now, *args) == 0
        return self.capsys.readouterr().out

    def assess_supply_start(self, now: str, changed_on: str, *extra: str) -> str:
        """`assess supply-start` of the sample source L0000000001 for FY2027–2030, whose
        supply start was changed on `changed_on`: what it printed. The command only queues the
        notice; `run --once` at the same moment sends it, as the daemon would."""
        printed = self.out(
            now,
            "assess",
            "supply-start",
            "L0000000001",
            "--from-fy",
            "2027",
            "--to-fy",
            "2030",
            "--changed-on",
            changed_on,
            *extra,
        )
        self.run(now)
        return printed

    def run(self, now: str) -> None:
        assert self.cli(now, "run", "--once") == 0

    def cases(self, now: str) -> list[dict]:
        return json.loads(self.out(now, "cases", "--json"))

    def reply_to(self, message_id: str) -> bytes:
        found = [r for r in self.replies() if message_from_bytes(r)["In-Reply-To"] == message_id]
        assert len(found) == 1, f"{len(found)} replies to {message_id}"
        return found[0]

    def mails(self, text: str) -> list[bytes]:
        """Every mail sent so far whose subject contains `text`."""
        return [r for r in self.replies() if text in subject(r)]


def maildir_desk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Desk:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    counter = iter(range(100000))

    def send(raw: bytes) -> None:
        path = tmp_path / f"in{next(counter)}.eml"
        path.write_bytes(raw)
        assert main(["deliver", str(path)]) == 0

    def replies() -> list[bytes]:
        folder = tmp_path / "data" / "outbox" / "new"
        if not folder.exists():
            return []
        return [
            p.read_bytes() for p in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        ]

    return Desk([], send, replies, capsys)


def server_desk(
    tmp_path: Path, dovecot: Dovecot, smtp: SmtpCapture, capsys: pytest.CaptureFixture
) -> Desk:
    config = write_desk_config(tmp_path, dovecot, smtp)

    def send(raw: bytes) -> None:
        dovecot.append(user_for(raw), raw)

    return Desk(["--config", str(config)], send, lambda: [m.data for m in smtp.messages], capsys)
