"""The demo, as `scripts/demo` runs it: the committed sample mails delivered into the embedded
default's Maildir inboxes and taken through `mailbot run --once` from the CLI, on a real SQLite
file. Each sample must end as the case tests/support/samples.py says, answered as it says; a second run
adds nothing."""

from __future__ import annotations

import sqlite3
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from mailbot.cli import main
from tests.support.desk import body_text
from tests.support.samples import SAMPLES_DIR, samples

NOW = "2026-11-25T13:30:00+09:00"
SAMPLES = samples()


def _cli(*args: str) -> int:
    return main(["--now", NOW, *args])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert _cli("operators", "import", str(SAMPLES_DIR / "operators.csv")) == 0
        files = sorted(str(p) for p in SAMPLES_DIR.glob("*.eml"))
        assert _cli("deliver", *files) == 0
        assert _cli("run", "--once") == 0
    return root


def _db(root: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(root / "data" / "mailbot.db")
    conn.row_factory = sqlite3.Row
    return conn


def _replies_to(root: Path, message_id: str) -> list[tuple[str, bytes]]:
    rows = _db(root).execute("SELECT kind, raw FROM outbox ORDER BY id").fetchall()
    return [
        (row["kind"], row["raw"])
        for row in rows
        if message_from_bytes(row["raw"])["In-Reply-To"] == message_id
    ]


def test_the_committed_samples_are_the_generated_set():
    on_disk = sorted(p.name for p in SAMPLES_DIR.glob("*.eml"))
    assert on_disk == sorted(s.name for s in SAMPLES)
    for sample in SAMPLES:
        headers = message_from_bytes((SAMPLES_DIR / sample.name).read_bytes())
        assert headers["Message-ID"] == message_from_bytes(sample.raw)["Message-ID"]


@pytest.mark.parametrize("sample", SAMPLES, ids=[s.name for s in SAMPLES])
def test_each_sample_ends_as_its_case_with_its_answer(demo: Path, sample):
    message_id = message_from_bytes(sample.raw)["Message-ID"]
    row = (
        _db(demo)
        .execute(
            "SELECT m.state, m.outcome, c.procedure, c.status FROM messages m"
            " JOIN cases c ON c.id = m.case_id WHERE m.message_id = ?",
            (message_id,),
        )
        .fetchone()
    )
    assert row is not None, f"{sample.name} was not stored with a case"
    assert row["state"] == "done"
    assert row["procedure"] == sample.procedure
    outcome = row["outcome"] if not row["outcome"].startswith("not answered") else row["status"]
    assert outcome == sample.status
    replies = _replies_to(demo, message_id)
    assert tuple(kind for kind, _ in replies) == sample.replies
    for _kind, raw in replies:
        reply = message_from_bytes(raw)
        assert reply["Auto-Submitted"] == "auto-replied"
        assert str(make_header(decode_header(reply["Subject"])))
        opening = body_text(raw).split("\r\n\r\n", 1)[0]
        assert opening.endswith(("様", "御中")) and not ("様" in opening and "御中" in opening)
        assert "MB-0000" in body_text(raw)


def test_mail_sent_to_the_other_address_is_told_where_to_send(demo: Path):
    [(_, raw)] = _replies_to(demo, "<sample04.20261125@kita-dr.example.jp>")
    assert "本手続きの送付先は code@occto.or.jp です" in body_text(raw)


def test_the_flawed_application_is_told_every_problem_and_the_resubmission_joins_its_case(
    demo: Path,
):
    [(_, raw)] = _replies_to(demo, "<sample02.20261125@minato-energy.jp>")
    text = body_text(raw)
    for label in ("【参加区分】", "【事業者名略称】"):
        assert label in text
    assert "【連絡者メール】" not in text, "a domain other than ドメイン名 is not a seed rule"
    cases = {
        r["message_id"]: r["case_id"]
        for r in _db(demo).execute("SELECT message_id, case_id FROM messages").fetchall()
    }
    assert (
        cases["<sample02.20261125@minato-energy.jp>"]
        == cases["<sample10.20261125@minato-energy.jp>"]
    )


def test_the_broken_mail_keeps_what_was_wrong_with_it(demo: Path):
    case_id = (
        _db(demo)
        .execute(
            "SELECT case_id FROM messages WHERE message_id = '<broken.1@broken-client.example.jp>'"
        )
        .fetchone()[0]
    )
    detail = (
        _db(demo)
        .execute(
            "SELECT detail FROM events WHERE case_id = ? AND kind = 'mail_received'", (case_id,)
        )
        .fetchone()[0]
    )
    assert "CloseBoundaryNotFoundDefect" in detail


def test_every_reply_was_delivered_to_the_outbox_maildir(demo: Path):
    planned = _db(demo).execute("SELECT state, message_id FROM outbox").fetchall()
    assert planned and all(row["state"] == "sent" for row in planned)
    delivered = list((demo / "data" / "outbox" / "new").iterdir())
    assert len(delivered) == len(planned)


def test_running_the_demo_again_changes_nothing(demo: Path, monkeypatch: pytest.MonkeyPatch):
    before = _db(demo).execute("SELECT count(*) FROM cases").fetchone()[0]
    sent_before = _db(demo).execute("SELECT count(*) FROM outbox").fetchone()[0]
    monkeypatch.chdir(demo)
    files = sorted(str(p) for p in SAMPLES_DIR.glob("*.eml"))
    assert _cli("deliver", *files) == 0
    assert _cli("run", "--once") == 0
    assert _db(demo).execute("SELECT count(*) FROM cases").fetchone()[0] == before
    assert _db(demo).execute("SELECT count(*) FROM outbox").fetchone()[0] == sent_before
