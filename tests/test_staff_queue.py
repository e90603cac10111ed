"""Staff commands only queue; `mailbot run` sends (issue 24: 「`mailbot decide` needs the SMTP
password in the staff member's shell, and without it exits 3 *after* the decision was applied (a
retry is refused: 完了では選べません)」). The SMTP server is a real aiosmtpd that demands AUTH."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from mailbot.cli import main
from mailbot.errors import StoreError
from mailbot.store.sqlite import Store
from tests.support.cycle import subject
from tests.support.desk import SOURCES_CSV
from tests.support.samples import SAMPLES_DIR
from tests.support.servers import Received, free_port

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

PASSWORD_ENV = "MAILBOT_TEST_SMTP_PASSWORD"
PASSWORD = "staff-never-see-this"


class _AuthHandler:
    def __init__(self) -> None:
        self.messages: list[Received] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        )
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = auth_data.login == b"code@occto.or.jp" and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture
def auth_smtp() -> Iterator[tuple[_AuthHandler, int]]:
    handler = _AuthHandler()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_require_tls=False,
        auth_required=True,
    )
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth_smtp) -> tuple[Path, _AuthHandler]:
    """A desk reading a Maildir and sending over SMTP with a login whose password comes from
    `password_env`, as a production desk does."""
    handler, port = auth_smtp
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    (tmp_path / "config.toml").write_text(
        '[storage]\ndatabase = "data/mailbot.db"\n\n'
        '[[mailboxes]]\naddress = "code@occto.or.jp"\nbackend = "maildir"\n'
        'path = "data/inbox/code"\n\n'
        '[[mailboxes]]\naddress = "youryou_rikuase_long@occto.or.jp"\nbackend = "maildir"\n'
        'path = "data/inbox/youryou_rikuase_long"\n\n'
        f'[outgoing]\nbackend = "smtp"\nhost = "127.0.0.1"\nport = {port}\n'
        'security = "none"\nusername = "code@occto.or.jp"\n'
        f'password_env = "{PASSWORD_ENV}"\ntimeout = 10\n',
        encoding="utf-8",
    )
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert main(["deliver", str(SAMPLES_DIR / "01_operator_code_complete.eml")]) == 0
    assert main(["--now", "2026-11-25T10:00", "run", "--once"]) == 0
    assert [subject(m.data) for m in handler.messages] == [
        "【受付番号 MB-000001】受付のお知らせ（容量市場向け事業者コード申請）"
    ]
    monkeypatch.delenv(PASSWORD_ENV)
    return tmp_path, handler


def _outbox(root: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(root / "data" / "mailbot.db") as db:
        return db.execute("SELECT kind, state FROM outbox ORDER BY id").fetchall()


def test_decide_without_the_smtp_password_queues_and_run_sends_it_once(
    desk, monkeypatch: pytest.MonkeyPatch, capsys
):
    root, smtp = desk
    capsys.readouterr()
    assert main(["--now", "2026-11-26T10:00", "decide", "MB-000001", "issue-code"]) == 0
    out = capsys.readouterr().out
    assert "→ 完了。事業者コード" in out
    assert "参加者へのメールは送信待ちです（`mailbot run` が送信します）" in out
    assert len(smtp.messages) == 1
    assert _outbox(root)[-1][1] == "pending"

    assert main(["--now", "2026-11-26T10:01", "run", "--once"]) == 3  # still no password
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    assert main(["--now", "2026-11-26T10:01", "run", "--once"]) == 0
    assert main(["--now", "2026-11-26T10:02", "run", "--once"]) == 0
    notices = [m for m in smtp.messages if "事業者コードのお知らせ" in subject(m.data)]
    assert len(notices) == 1
    receipt = smtp.messages[0].data
    assert message_from_bytes(notices[0].data)["To"] == message_from_bytes(receipt)["To"]
    assert all(state == "sent" for _, state in _outbox(root))


def test_inquiry_without_the_smtp_password_queues(desk, capsys):
    """`inquiry mismatch` (like `campaign` and `assess`) plans its mail and leaves it to run."""
    root, smtp = desk
    sources = root / "sources.csv"
    sources.write_text(SOURCES_CSV, encoding="utf-8-sig")
    assert main(["--now", "2026-11-26T08:00", "sources", "import", str(sources)]) == 0
    capsys.readouterr()
    args = ["inquiry", "mismatch", "L0000000002", "--text", "燃料種が一致しません。"]
    assert main(["--now", "2026-11-26T10:00", *args]) == 0
    assert "mismatch inquiry planned; the mail waits in the outbox" in capsys.readouterr().out
    assert len(smtp.messages) == 1
    assert _outbox(root)[-1] == ("mismatch_inquiry", "pending")


def test_a_decide_that_fails_midway_leaves_the_case_as_it_was(
    desk, monkeypatch: pytest.MonkeyPatch, capsys
):
    """Failure injection: the store fails after the decision's writes, before the commit."""
    root, _smtp = desk
    db = root / "data" / "mailbot.db"

    def snapshot() -> tuple:
        with sqlite3.connect(db) as conn:
            return (
                conn.execute("SELECT status, version, operator_code, data FROM cases").fetchall(),
                conn.execute("SELECT count(*) FROM events").fetchone(),
                conn.execute("SELECT count(*) FROM outbox").fetchone(),
                conn.execute("SELECT count(*) FROM operators").fetchone(),
            )

    before = snapshot()
    real_apply = Store.apply

    def failing_apply(self: Store, effect):
        real_apply(self, effect)
        raise StoreError("disk I/O error (injected)")

    monkeypatch.setattr(Store, "apply", failing_apply)
    assert main(["--now", "2026-11-26T10:00", "decide", "MB-000001", "issue-code"]) == 6
    assert "disk I/O error (injected)" in capsys.readouterr().err
    assert snapshot() == before

    monkeypatch.setattr(Store, "apply", real_apply)
    assert main(["--now", "2026-11-26T10:05", "decide", "MB-000001", "issue-code"]) == 0
    assert "→ 完了" in capsys.readouterr().out
