"""The store on a real SQLite file: raw bytes kept once, migrations, transactions."""

import hashlib
from datetime import datetime
from pathlib import Path

import pytest

from mailbot.clock import TOKYO
from mailbot.store import MIGRATIONS, Store

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=TOKYO)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "m.db")
    yield s
    s.close()


def test_schema_is_at_the_latest_version_and_reopens(tmp_path):
    s = Store(tmp_path / "m.db")
    assert s.schema_version == len(MIGRATIONS)
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    s.close()
    again = Store(tmp_path / "m.db")
    assert again.schema_version == len(MIGRATIONS)
    again.close()


def test_raw_messages_are_stored_once_per_key(store):
    assert store.save_raw("code@x", [("k1", b"a"), ("k2", b"b")], NOW) == 2
    assert store.save_raw("code@x", [("k1", b"a"), ("k3", b"c")], NOW) == 1
    assert store.save_raw("other@x", [("k1", b"a")], NOW) == 1
    assert [m.key for m in store.pending_messages()] == ["k1", "k2", "k3", "k1"]


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.transaction():
        case_id = store.create_case(NOW, procedure="unrecognized", status="unrecognized")
        store.add_event(case_id, NOW, "bot", "opened")
        raise RuntimeError("boom")
    assert store.cases() == []
    assert store.execute("SELECT count(*) FROM events").fetchone()[0] == 0


def test_a_snapshot_reads_one_state_while_another_connection_writes(store, tmp_path):
    """The daily report is read in a snapshot, outside the write lock: its rows and its
    counts must come from one state of the database even when a case arrives meanwhile."""
    other = Store(tmp_path / "m.db")
    try:
        with store.snapshot():
            before = store.case_counts()
            with other.transaction():
                other.create_case(NOW, procedure="objection", status="received", sender="a@b")
            assert store.case_counts() == before
        assert store.case_counts() != before
    finally:
        other.close()


def test_a_write_inside_a_snapshot_is_refused_plainly(store):
    with (
        store.snapshot(),
        pytest.raises(RuntimeError, match="inside a snapshot"),
        store.transaction(),
    ):
        pass
    with store.transaction(), store.snapshot():
        store.create_case(NOW, procedure="objection", status="received", sender="a@b")
    assert store.case_counts()


def test_case_update_bumps_version_and_keeps_json(store):
    with store.transaction():
        case_id = store.create_case(
            NOW,
            procedure="operator_code_application",
            status="received",
            problems=[{"field": "事業者名略称", "message": "末尾に「_容」"}],
        )
        store.update_case(case_id, NOW, status="needs_correction")
    case = store.case(case_id)
    assert case["version"] == 2
    assert case["problems"][0]["field"] == "事業者名略称"


def test_thread_lookup_finds_our_outgoing_mail(store):
    with store.transaction():
        case_id = store.create_case(NOW, procedure="operator_code_application", status="received")
        store.plan_mail(
            case_id=case_id,
            kind="receipt",
            message_id="<mailbot.1.x@occto.or.jp>",
            recipient="a@b.jp",
            subject="s",
            raw=b"r",
            now=NOW,
            send_at=NOW,
        )
    assert store.find_thread(["<nope@x>", "<mailbot.1.x@occto.or.jp>"]) == (case_id, "receipt")
    assert store.find_thread(["<nope@x>"]) is None


def test_large_raw_mails_round_trip_through_incremental_blob_io(tmp_path: Path):
    store = Store(tmp_path / "m.db")
    big = bytes(range(256)) * (5 * 4096 + 7)
    assert store.save_raw("code@occto.or.jp", [("big", big), ("small", b"x")], NOW) == 2
    assert store.save_raw("code@occto.or.jp", [("big", big)], NOW) == 0
    loaded = {m.key: bytes(m.raw) for m in store.pending_messages()}
    assert loaded == {"big": big, "small": b"x"}
    row = store.execute("SELECT sha256, size FROM messages WHERE key = 'big'").fetchone()
    assert row["size"] == len(big) and row["sha256"] == hashlib.sha256(big).hexdigest()
    store.close()


@pytest.mark.parametrize(
    ("pragma", "said"),
    [("max_page_count", "full"), ("query_only", "readonly")],
    ids=["disk-full", "read-only"],
)
def test_a_full_or_read_only_database_ends_the_run_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, pragma, said
):
    """Real SQLite refusals (SQLITE_FULL via max_page_count, SQLITE_READONLY via query_only):
    the run stops with the database's own words, and the mail stays in the inbox."""
    from mailbot.cli import main
    from tests.support.samples import SAMPLES_DIR

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    sample = str(SAMPLES_DIR / "01_operator_code_complete.eml")
    assert main(["--now", "2026-11-25T10:00", "cases"]) == 0  # creates the database
    assert main(["deliver", sample]) == 0
    opened = Store.__init__

    def refusing(self, path):
        opened(self, path)
        if pragma == "max_page_count":
            pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
            self.conn.execute(f"PRAGMA max_page_count = {pages}")
        else:
            self.conn.execute("PRAGMA query_only = ON")

    monkeypatch.setattr(Store, "__init__", refusing)
    capsys.readouterr()
    assert main(["--now", "2026-11-25T10:00", "run", "--once"]) == 6  # the database refused
    assert said in capsys.readouterr().err
    inbox = list((tmp_path / "data" / "inbox" / "code" / "new").iterdir())
    assert len(inbox) == 1  # not acknowledged: it is fetched again next time
    monkeypatch.setattr(Store, "__init__", opened)
    assert main(["--now", "2026-11-25T10:05", "run", "--once"]) == 0
    assert "operator_code_application" in capsys.readouterr().out
