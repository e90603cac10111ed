"""Issue 17, the sender that goes along: it records each reply the server took in the send
journal (a file of its own beside the database), because the database's write lock belongs to
the batch being checked; the main process folds the journal into the database. A reply goes
once, whoever stops where, and every sent reply joins its case's history once."""

from __future__ import annotations

import multiprocessing
import os
import signal
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

import mailbot.store.sqlite as sqlite_store
from mailbot.errors import StoreError
from mailbot.intake import runner
from mailbot.intake.runner import READ_AHEAD_FROM
from mailbot.outbox.send import MaildirSender, flush_outbox, fold_journal, make_sender
from mailbot.store.journal import SendJournal, journal_path
from tests.support.desk import make_desk, outbox
from tests.test_run_loop import _backlog, _hold_write_lock, _Recording
from tests.test_smtp_send import plan, smtp_desk
from tests.test_trust import run_script

SENT_AT = datetime.fromisoformat("2026-11-25T09:58:00+09:00")


def _sent_events(ctx, case_id: int) -> list[dict]:
    return [e for e in ctx.store.events(case_id) if e["kind"] == "mail_sent"]


def test_a_journal_a_stopped_sender_left_is_settled_before_anything_is_sent_again(
    tmp_path: Path, smtp_server
):
    """A sender that went along was killed after the server took two replies and the journal
    recorded them, before the main process folded them: the next flush sends only the third,
    records the two as sent when they were sent, and empties the journal."""
    ctx = smtp_desk(tmp_path, smtp_server)
    case_id = plan(ctx, ["a@example.co.jp", "b@example.co.jp", "c@example.co.jp"])
    first, second, third = outbox(ctx)
    with SendJournal(ctx.store.path) as journal:
        journal.record(first["id"], first["message_id"], SENT_AT)
        journal.record(second["id"], second["message_id"], SENT_AT)
    assert flush_outbox(ctx, make_sender(ctx)) == (1, 0)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["c@example.co.jp"]]
    rows = {r["id"]: r for r in outbox(ctx)}
    assert all(r["state"] == "sent" for r in rows.values())
    assert rows[first["id"]]["sent_at"] == rows[second["id"]]["sent_at"] == SENT_AT.isoformat()
    assert sorted(e["detail"]["to"] for e in _sent_events(ctx, case_id)) == [
        "a@example.co.jp",
        "b@example.co.jp",
        "c@example.co.jp",
    ]
    assert SendJournal(ctx.store.path).entries() == []
    assert flush_outbox(ctx, make_sender(ctx)) == (0, 0)
    assert rows[third["id"]]["sent_at"] != SENT_AT.isoformat()
    ctx.close()


def test_folding_again_or_beside_another_folder_records_each_send_once(tmp_path: Path, smtp_server):
    """Two processes fold one journal (a run's main process and a staff command's flush):
    each send joins its case once, however the folds interleave."""
    ctx = smtp_desk(tmp_path, smtp_server)
    other = smtp_desk(tmp_path, smtp_server)
    case_id = plan(ctx, ["a@example.co.jp", "b@example.co.jp"])
    first, _ = outbox(ctx)
    with SendJournal(ctx.store.path) as journal, SendJournal(ctx.store.path) as others:
        journal.record(first["id"], first["message_id"], SENT_AT)
        journal.record(first["id"], first["message_id"], SENT_AT)  # a repeat adds no record
        fold_journal(ctx, journal)
        assert journal.entries() == []
        # the other process read the entry before that fold cleared it, and folds it after
        others.record(first["id"], first["message_id"], SENT_AT)
        fold_journal(other, others)
    assert len(_sent_events(ctx, case_id)) == 1
    assert [r["state"] for r in outbox(ctx)] == ["sent", "pending"]
    other.close()
    ctx.close()


def test_an_entry_that_names_another_reply_marks_nothing_sent(
    tmp_path: Path, smtp_server, caplog: pytest.LogCaptureFixture
):
    """A database restored from a backup may give a journalled row id to another reply: the
    entry's Message-ID must match, or nothing is marked sent and staff see a warning."""
    ctx = smtp_desk(tmp_path, smtp_server)
    plan(ctx, ["a@example.co.jp"])
    [row] = outbox(ctx)
    with SendJournal(ctx.store.path) as journal:
        journal.record(row["id"], "<mailbot.0.restored@occto.or.jp>", SENT_AT)
        journal.record(row["id"] + 1, row["message_id"], SENT_AT)
        fold_journal(ctx, journal)
        assert journal.entries() == []
    assert [r["state"] for r in outbox(ctx)] == ["pending"]
    assert "<mailbot.0.restored@occto.or.jp>" in caplog.text
    assert flush_outbox(ctx, make_sender(ctx)) == (1, 0)
    ctx.close()


def test_a_sender_takes_no_reply_another_sender_journalled(tmp_path: Path, smtp_server):
    """Two runs at once, each with a sender going along: the journal names what either sent
    until it is folded, and neither sender takes such a reply as due (before: each skipped
    only its own, and 3 replies went out 6 times)."""
    ctx = smtp_desk(tmp_path, smtp_server)
    plan(ctx, ["a@example.co.jp", "b@example.co.jp", "c@example.co.jp"])
    first, second, _ = outbox(ctx)
    with SendJournal(ctx.store.path) as theirs, SendJournal(ctx.store.path) as mine:
        theirs.record(first["id"], first["message_id"], SENT_AT)
        theirs.record(second["id"], second["message_id"], SENT_AT)
        assert flush_outbox(ctx, make_sender(ctx), journal=mine) == (1, 0)
    assert [m.rcpt_tos for m in smtp_server.messages] == [["c@example.co.jp"]]
    ctx.close()


def test_the_sender_that_goes_along_sends_only_rows_a_synced_commit_covers(
    tmp_path: Path, smtp_server
):
    """The batches are committed without a sync of their own: a reply may go only once the
    commit that made its batch durable (the fold after the batch) has named it, so that a
    power cut cannot take back a case whose reply went."""
    ctx = smtp_desk(tmp_path, smtp_server)
    plan(ctx, ["a@example.co.jp"])
    [durable] = outbox(ctx)
    with SendJournal(ctx.store.path) as journal:
        upto = fold_journal(ctx, journal)
        assert upto == durable["id"]
        plan(ctx, ["b@example.co.jp"])
        assert flush_outbox(ctx, make_sender(ctx), journal=journal, upto=upto) == (1, 0)
        assert flush_outbox(ctx, make_sender(ctx), journal=journal, upto=upto) == (0, 0)
        later = fold_journal(ctx, journal)
        assert flush_outbox(ctx, make_sender(ctx), journal=journal, upto=later) == (1, 0)
    assert [m.rcpt_tos for m in smtp_server.messages] == [
        ["a@example.co.jp"],
        ["b@example.co.jp"],
    ]
    assert ctx.store.execute("SELECT folds FROM journal_folds").fetchone()[0] == 2
    ctx.close()


def test_each_wake_folds_the_journal_before_the_next_batch(tmp_path: Path, smtp_server):
    """The drain's replies join their cases batch by batch, not only at the end of the run."""
    ctx = smtp_desk(tmp_path, smtp_server)
    case_id = plan(ctx, ["a@example.co.jp"])
    [row] = outbox(ctx)
    with runner.SendAlong(ctx, make_sender(ctx)) as along:
        with SendJournal(ctx.store.path) as journal:
            journal.record(row["id"], row["message_id"], SENT_AT)
        along.wake()
        assert [r["state"] for r in outbox(ctx)] == ["sent"]
        assert len(_sent_events(ctx, case_id)) == 1
    assert smtp_server.messages == []  # it was sent (by the journal's word), not sent again
    ctx.close()


def test_a_journal_that_cannot_be_opened_leaves_no_sender_behind(tmp_path: Path, smtp_server):
    ctx = smtp_desk(tmp_path, smtp_server)
    journal_path(ctx.store.path).mkdir()
    with pytest.raises(StoreError, match="send journal"), runner.SendAlong(ctx, make_sender(ctx)):
        pass
    assert multiprocessing.active_children() == []
    ctx.close()


def test_the_sender_that_goes_along_never_waits_for_the_batches_write_lock(
    tmp_path: Path, smtp_server, monkeypatch: pytest.MonkeyPatch
):
    """Before: each record waited for the database's write lock, held by the batch being
    checked, so most replies waited for the end of the drain. Now a long-held lock does not
    stop a journalled flush: it is done while the lock is still held."""
    monkeypatch.setattr(sqlite_store, "BUSY_SECONDS", 0.2)
    ctx = smtp_desk(tmp_path, smtp_server)
    plan(ctx, ["a@example.co.jp", "b@example.co.jp"])
    holder = _hold_write_lock(ctx.store.path, 5.0)
    with SendJournal(ctx.store.path) as journal:
        assert flush_outbox(ctx, make_sender(ctx), journal=journal) == (2, 0)
        assert holder.is_alive()
        assert flush_outbox(ctx, make_sender(ctx), journal=journal) == (0, 0)
        assert len(journal.entries()) == 2
    holder.join()
    assert len(smtp_server.messages) == 2
    ctx.close()


def test_a_backlog_s_replies_join_their_cases_once_and_the_journal_is_emptied(tmp_path: Path):
    """Before the journal the forked sender waited out a batch per record and left a third
    of the replies for the end; that is measured in bench/, this pins what it answers."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    count = READ_AHEAD_FROM + 40
    _backlog(ctx, count)
    sender = _Recording(tmp_path / "sent")
    summary = runner.run_once(ctx, sender)
    replies = [r for r in outbox(ctx) if r["case_id"] is not None]
    assert len(replies) == count
    assert summary.sent == len(outbox(ctx))  # the replies and the staff report
    assert {pid for pid, _ in sender.handed()} - {os.getpid()}  # sent along, by its process
    for reply in replies:
        [event] = _sent_events(ctx, reply["case_id"])
        assert event["detail"]["message_id"] == reply["message_id"]
    assert SendJournal(ctx.store.path).entries() == []
    ctx.close()


class _Delivered(MaildirSender):
    """The real maildir sender, noting each mail in a log the moment it is delivered (a file
    in the folder would not show a second delivery: it overwrites the first); `kill_after`
    deliveries in all, it kills its run (main process first) right after the record."""

    def __init__(self, path: Path, kill_after: int = 0) -> None:
        super().__init__(path)
        self.log, self.kill_after = path.parent / "delivered.log", kill_after

    def send_many(self, items, done) -> None:
        def answered(index, error) -> None:
            if error is None:
                with self.log.open("a") as log:
                    log.write(f"{items[index][0]}\n")
            done(index, error)
            if self.kill_after and len(self.delivered()) >= self.kill_after:
                os.kill(os.getppid(), signal.SIGKILL)
                os.kill(os.getpid(), signal.SIGKILL)

        super().send_many(items, answered)

    def delivered(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


KILLED_ALONG = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from mailbot.intake import runner
    from tests.support.desk import make_desk
    from tests.test_send_journal import _Delivered

    root = Path(sys.argv[1])
    runner.run_once(make_desk(root, "2026-11-20T10:00"), _Delivered(root / "sent", 25))
    """
)


def test_a_run_killed_while_its_sender_goes_along_sends_no_reply_twice(tmp_path: Path):
    """SIGKILL lands on the main process and its sender right after the journal took a
    reply, before the main process could fold it: the next run folds what the journal holds
    and sends only what was never sent."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    count = READ_AHEAD_FROM + 40
    _backlog(ctx, count)
    ctx.close()
    killed = run_script(KILLED_ALONG, tmp_path, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert journal_path(tmp_path / "data" / "mailbot.db").exists()
    # restarted minutes later: the killed run's clock ran on, so it planned replies after 10:00
    ctx = make_desk(tmp_path, "2026-11-20T10:10")
    assert SendJournal(ctx.store.path).entries()  # what the killed run's sender left
    sender = _Delivered(tmp_path / "sent")
    runner.run_once(ctx, sender)
    delivered = sender.delivered()
    assert len(delivered) == len(set(delivered))  # none delivered twice, across both runs
    replies = [r for r in outbox(ctx) if r["case_id"] is not None]
    assert len(replies) == count
    assert all(r["state"] == "sent" for r in replies)
    assert {r["message_id"] for r in outbox(ctx)} == set(delivered)
    for reply in replies:
        assert len(_sent_events(ctx, reply["case_id"])) == 1
    assert SendJournal(ctx.store.path).entries() == []
    ctx.close()


def test_a_maildir_sender_records_in_the_journal_too(tmp_path: Path):
    """The embedded default (Maildir out) goes along the same way; the next flush settles."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    _backlog(ctx, 3)
    runner.process_pending(ctx)
    with SendJournal(ctx.store.path) as journal:
        sent, _ = flush_outbox(ctx, MaildirSender(tmp_path / "out"), journal=journal)
        assert sent == len(journal.entries()) == 3
    assert all(r["state"] == "pending" for r in outbox(ctx))
    flush_outbox(ctx, MaildirSender(tmp_path / "out"))
    assert all(r["state"] == "sent" for r in outbox(ctx))
    assert len(list((tmp_path / "out" / "new").iterdir())) == 3
    ctx.close()


def test_the_sender_that_goes_along_sends_no_row_newer_than_its_wake_names(
    tmp_path: Path, smtp_server, monkeypatch: pytest.MonkeyPatch
):
    """End to end through the forked sender: the wake's synced fold covered only the first
    row (the second was committed after it), so the second waits for the run's last flush."""
    ctx = smtp_desk(tmp_path, smtp_server)
    plan(ctx, ["a@example.co.jp", "b@example.co.jp"])
    first, _ = outbox(ctx)
    monkeypatch.setattr(runner, "fold_journal", lambda ctx, journal: first["id"])
    with runner.SendAlong(ctx, make_sender(ctx)) as along:
        along.wake()
    assert along.sent == 1
    assert [m.rcpt_tos for m in smtp_server.messages] == [["a@example.co.jp"]]
    assert flush_outbox(ctx, make_sender(ctx)) == (1, 0)
    assert [r["state"] for r in outbox(ctx)] == ["sent", "sent"]
    ctx.close()


def test_a_fold_is_a_synced_commit_even_inside_a_drain(
    tmp_path: Path, smtp_server, monkeypatch: pytest.MonkeyPatch
):
    """The drain commits its batches at synchronous=NORMAL; the fold that lets their replies
    go is FULL (2), which syncs the whole WAL, and the drain goes on at NORMAL (1) after it."""
    ctx = smtp_desk(tmp_path, smtp_server)
    levels = []
    real = ctx.store.note_journal_fold

    def noting(now):
        levels.append(ctx.store.conn.execute("PRAGMA synchronous").fetchone()[0])
        real(now)

    monkeypatch.setattr(ctx.store, "note_journal_fold", noting)
    with ctx.store.deferred_sync(), SendJournal(ctx.store.path) as journal:
        fold_journal(ctx, journal)
        after = ctx.store.conn.execute("PRAGMA synchronous").fetchone()[0]
    assert levels == [2] and after == 1
    ctx.close()


def test_a_flush_without_a_journal_syncs_the_batches_before_the_first_reply(
    tmp_path: Path, smtp_server
):
    """The daemon and staff commands flush after batches committed without a sync: the
    first reply goes only after a synced commit (the fold) covers its case."""
    ctx = smtp_desk(tmp_path, smtp_server)
    with ctx.store.deferred_sync():
        plan(ctx, ["a@example.co.jp"])
    folds_at_send = []

    class Noting(MaildirSender):
        def send_many(self, items, done) -> None:
            row = ctx.store.execute("SELECT folds FROM journal_folds").fetchone()
            folds_at_send.append(row[0] if row else 0)
            super().send_many(items, done)

    assert flush_outbox(ctx, Noting(tmp_path / "out")) == (1, 0)
    assert folds_at_send == [1]
    assert flush_outbox(ctx, Noting(tmp_path / "out")) == (0, 0)
    assert folds_at_send == [1]  # nothing due: no sync, no fold
    ctx.close()


def test_mail_processing_starts_with_what_a_killed_sender_left(tmp_path: Path):
    """A delivery report about a reply that only the journal knows was sent must find it
    sent: the journal is settled before any mail is processed."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    _backlog(ctx, 2)
    runner.process_pending(ctx)
    first = outbox(ctx)[0]
    with SendJournal(ctx.store.path) as journal:
        journal.record(first["id"], first["message_id"], SENT_AT)
    assert runner.process_pending(ctx) == []
    assert outbox(ctx)[0]["state"] == "sent"
    assert SendJournal(ctx.store.path).entries() == []
    ctx.close()


def test_a_sender_that_stopped_leaves_its_replies_to_the_last_flush_then_the_run_fails(
    tmp_path: Path,
):
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    count = READ_AHEAD_FROM + 8
    _backlog(ctx, count)
    parent = os.getpid()

    class BrokenAlong(MaildirSender):
        def send_many(self, items, done) -> None:
            if os.getpid() != parent:
                raise RuntimeError("the sender's server connection broke")
            super().send_many(items, done)

    with pytest.raises(RuntimeError, match="connection broke"):
        runner.run_once(ctx, BrokenAlong(tmp_path / "out"))
    assert all(r["state"] == "sent" for r in outbox(ctx))
    assert len([r for r in outbox(ctx) if r["case_id"] is not None]) == count
    ctx.close()
