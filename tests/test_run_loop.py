"""Issue 17, the run loop. Group commit: one transaction (one fsync) per batch of mails, each
mail still all-or-nothing in a savepoint of its own, and a process killed inside a batch loses
nothing and sets aside only the mail that killed it. Read-ahead: a worker process parses mails
and opens their workbooks on the second core; what it prepares decides nothing the main process
would not decide, and a worker that dies loses nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mailbot.context import Context
from mailbot.intake import readahead, runner
from mailbot.intake.pipeline import process_batch
from mailbot.intake.runner import COMMIT_BATCH, READ_AHEAD_FROM, process_pending
from mailbot.outbox.send import MaildirSender
from mailbot.store import Store
from tests.support.desk import make_desk, outbox
from tests.support.forms import operator_form, to_bytes
from tests.support.jpmail import XLSX, build
from tests.support.samples import TAKAHASHI
from tests.test_store import NOW
from tests.test_trust import CRASH, ROOT, application, store


def test_a_nested_transaction_that_raises_rolls_back_alone(tmp_path: Path):
    s = Store(tmp_path / "m.db")
    with s.transaction():
        kept = s.create_case(NOW, procedure="unrecognized", status="unrecognized")
        with pytest.raises(RuntimeError), s.transaction():
            gone = s.create_case(NOW, procedure="unrecognized", status="unrecognized")
            s.add_event(gone, NOW, "bot", "opened")
            raise RuntimeError("one mail fails")
        s.add_event(kept, NOW, "bot", "opened")
    assert [c["id"] for c in s.cases()] == [kept]
    assert [e["kind"] for e in s.events(kept)] == ["opened"]
    s.close()


def test_a_mail_that_raises_inside_a_batch_is_quarantined_and_its_batch_mates_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    raws = [application(sender=f"a{n}@corp.example.co.jp") for n in range(5)]
    raws[2] = build("件名", "本文", from_addr="bad@example.net", headers={"X-Fail": "1"})
    store(ctx, *raws)
    real = ctx.store.apply

    def failing(effect):
        planned = real(effect)
        if effect.message and effect.message.sender == "bad@example.net":
            raise ValueError("fails after its case was written")
        return planned

    monkeypatch.setattr(ctx.store, "apply", failing)
    results = process_pending(ctx)
    assert [r.procedure for r in results].count("quarantined") == 1
    assert results[2].procedure == "quarantined"
    statuses = [c["status"] for c in ctx.store.cases()]
    assert sorted(statuses) == ["complete"] * 4 + ["quarantined"]
    ctx.close()


def _run_crash(path: Path, script: str = CRASH) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_a_kill_inside_a_batch_sets_aside_only_the_mail_that_killed_it(tmp_path: Path):
    """The killer sits in the middle of a full batch: its batch-mates are rolled back with it;
    the next runs take them one at a time, so each ends done exactly once and only the killer,
    which then stops the process twice on its own, is quarantined."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    raws = [application(sender=f"a{n}@corp.example.co.jp") for n in range(COMMIT_BATCH + 3)]
    killer_at = COMMIT_BATCH // 2
    raws[killer_at] = build(
        "件名", "本文", from_addr="killer@example.net", headers={"X-Kill-Me": "1"}
    )
    store(ctx, *raws)
    ctx.close()
    for _ in range(3):  # in its batch, then twice alone
        assert _run_crash(tmp_path).returncode != 0
    fourth = _run_crash(tmp_path)
    assert fourth.returncode == 0, fourth.stderr[-2000:]
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    rows = ctx.store.execute("SELECT state, case_id FROM messages ORDER BY id").fetchall()
    assert [r["state"] for r in rows] == [
        "quarantined" if n == killer_at else "done" for n in range(len(raws))
    ]
    cases = ctx.store.cases()
    assert len(cases) == len(raws)
    assert len({r["case_id"] for r in rows}) == len(raws)
    ctx.close()


def _backlog(ctx: Context, count: int, odd_at: int | None = None, **headers: str) -> list[bytes]:
    raws = [application(sender=f"a{n}@corp.example.co.jp") for n in range(count)]
    for n in range(0, count, 7):
        raws[n] = application(sender=f"a{n}@corp.example.co.jp", fields={"事業者名略称": ""})
    if odd_at is not None:
        raws[odd_at] = build("件名", "本文", from_addr="odd@example.net", headers=headers)
    store(ctx, *raws)
    return raws


def _outcomes(ctx: Context) -> list[tuple]:
    return [
        (c["status"], c["procedure"], c["sender"], str(c["problems"]), str(c["data"]))
        for c in ctx.store.cases()
    ]


def test_mails_read_ahead_in_the_worker_end_exactly_as_mails_read_in_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    count = READ_AHEAD_FROM + 6
    ahead = make_desk(tmp_path / "ahead", "2026-11-20T10:00")
    _backlog(ahead, count)
    submitted = []
    real = readahead.ReadAhead._submit

    def submit(self, group):
        first = real(self, group)
        submitted.extend([first is not None] * len(group))
        return first

    monkeypatch.setattr(readahead.ReadAhead, "_submit", submit)
    assert len(process_pending(ahead)) == count
    assert submitted == [True] * count
    inline = make_desk(tmp_path / "inline", "2026-11-20T10:00")
    _backlog(inline, count)
    monkeypatch.setattr(runner, "READ_AHEAD_FROM", count + 1)
    process_pending(inline)
    assert _outcomes(ahead) == _outcomes(inline)
    statuses = {status for status, *_ in _outcomes(ahead)}
    assert statuses == {"complete", "needs_correction"}
    ahead.close()
    inline.close()


FAULTS = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import mailbot.intake.pipeline as pipeline
    import mailbot.intake.readahead as readahead
    from tests.support.desk import make_desk
    from mailbot.intake.runner import process_pending

    main_pid = os.getpid()
    real = readahead.parse
    def parse(raw):
        if os.getpid() == main_pid:
            if b"X-Kill-Me" in raw:
                os.abort()  # fault injection: what a reader's allocation failure does
        elif b"X-Kill-Worker" in raw or b"X-Kill-Me" in raw:
            os.abort()  # the worker dies on this mail
        elif b"X-Hang-Worker" in raw:
            time.sleep(3600)  # the worker never finishes this mail
        return real(raw)
    pipeline.parse = readahead.parse = parse
    readahead.READ_AHEAD_TIMEOUT = 2.0
    ctx = make_desk(Path(sys.argv[1]), "2026-11-20T10:00")
    print(len(process_pending(ctx)))
    """
)


def _starts(ctx: Context) -> list[int]:
    rows = ctx.store.execute(
        "SELECT coalesce((SELECT starts FROM processing_starts WHERE message = messages.id), 0)"
        " AS starts FROM messages ORDER BY id"
    ).fetchall()
    return [r["starts"] for r in rows]


@pytest.mark.parametrize(
    ("fault", "why"), [("X-Kill-Worker", "stopped"), ("X-Hang-Worker", "did not finish")]
)
def test_a_mail_the_worker_dies_or_hangs_on_counts_a_start_and_the_main_process_reads_it(
    tmp_path: Path, fault: str, why: str
):
    """Nothing is lost: the main process reads the mails the worker did not prepare. The mail
    the worker failed on counts one start, as if it had stopped the main process."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    count = READ_AHEAD_FROM + 10
    odd_at = COMMIT_BATCH + 3
    _backlog(ctx, count, odd_at=odd_at, **{fault: "1"})
    ctx.close()
    done = _run_crash(tmp_path, FAULTS)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"read-ahead worker {why}" in done.stderr
    assert done.stdout.split()[-1] == str(count)
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    rows = ctx.store.execute("SELECT state, case_id FROM messages ORDER BY id").fetchall()
    assert [r["state"] for r in rows] == ["done"] * count
    assert len({r["case_id"] for r in rows}) == count == len(ctx.store.cases())
    assert _starts(ctx)[odd_at] == 2  # the worker's, then its own start alone in the main process
    assert sum(_starts(ctx)) == 2
    ctx.close()


def test_a_mail_that_kills_worker_and_main_alike_is_set_aside_after_one_main_crash(
    tmp_path: Path,
):
    """The worker dying on a mail counts as the first of the two starts that set a mail
    aside: the main process then takes it alone, dies once, and the next run quarantines it."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    count = READ_AHEAD_FROM + 10
    killer_at = COMMIT_BATCH + 3
    _backlog(ctx, count, odd_at=killer_at, **{"X-Kill-Me": "1"})
    ctx.close()
    assert _run_crash(tmp_path, FAULTS).returncode != 0
    second = _run_crash(tmp_path, FAULTS)
    assert second.returncode == 0, second.stderr[-2000:]
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    rows = ctx.store.execute("SELECT state, case_id FROM messages ORDER BY id").fetchall()
    assert [r["state"] for r in rows] == [
        "quarantined" if n == killer_at else "done" for n in range(count)
    ]
    assert len({r["case_id"] for r in rows}) == count == len(ctx.store.cases())
    ctx.close()


def test_the_worker_opens_only_the_attachment_a_form_check_reads(tmp_path: Path):
    """pick_form takes the spreadsheet named like the form; the other workbook is carried
    as bytes and never opened by the worker."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    ahead = readahead.ReadAhead(ctx)
    ctx.close()
    form = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI))
    other = to_bytes(operator_form(licenses=("発電",)))
    raw = application(
        attachments=[("参考資料.xlsx", other, XLSX), ("事業者マスタ申込書.xlsx", form, XLSX)]
    )
    mail = readahead.prepare(raw, ahead.max_bytes, ahead.limits, ahead.form_names)
    assert mail is not None
    opened = {a.filename: a.opened is not None for a in mail.attachments}
    assert opened == {"参考資料.xlsx": False, "事業者マスタ申込書.xlsx": True}


def test_search_rows_are_written_at_commit_and_a_rolled_back_case_leaves_none(tmp_path: Path):
    s = Store(tmp_path / "m.db")
    with s.transaction():
        kept = s.create_case(
            NOW, procedure="unrecognized", status="unrecognized", subject="容量市場の申請"
        )
        with pytest.raises(RuntimeError), s.transaction():
            s.create_case(NOW, procedure="unrecognized", status="unrecognized", subject="取消予定")
            raise RuntimeError("this mail rolls back")
        s.update_case(kept, NOW, subject="容量市場の再申請")
    assert s.search_cases("再申請") == {kept}
    assert s.search_cases("取消予定") == set()
    with pytest.raises(RuntimeError), s.transaction():
        s.update_case(kept, NOW, subject="上書き")
        raise RuntimeError("rolled back whole")
    assert s.search_cases("再申請") == {kept}
    assert s.search_cases("上書き") == set()
    s.close()


class _Recording(MaildirSender):
    """The real maildir sender, noting in a file which process handed over each mail (the
    sender that goes along is a process of its own)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.log = path.parent / "handed.log"

    def send_many(self, items, done) -> None:
        with self.log.open("a") as log:
            log.writelines(f"{os.getpid()} {mid}\n" for mid, _, _ in items)
        super().send_many(items, done)

    def handed(self) -> list[tuple[int, str]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [(int(pid), mid) for pid, mid in (line.split(" ", 1) for line in lines)]


def test_a_backlog_is_answered_while_it_is_checked_and_each_reply_goes_once(tmp_path: Path):
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    count = READ_AHEAD_FROM + 40
    _backlog(ctx, count)
    sender = _Recording(tmp_path / "sent")
    summary = runner.run_once(ctx, sender)
    assert len(summary.results) == count
    replies = [r for r in outbox(ctx) if r["case_id"] is not None]
    assert len(replies) == count
    assert all(r["sent_at"] for r in replies)
    handed = [mid for _, mid in sender.handed()]
    assert len(handed) == len(set(handed)) == summary.sent
    assert {r["message_id"] for r in replies} <= set(handed)
    assert {pid for pid, _ in sender.handed()} - {os.getpid()}  # sent along, by its process
    ctx.close()


def test_a_batch_mate_stopped_once_more_on_its_own_is_still_read(tmp_path: Path):
    """A killed batch does not say which mail stopped the process: its mails go alone next
    time, and only starts made alone count towards setting a mail aside (two of them)."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    store(ctx, application(), application(sender="b@corp.example.co.jp"))
    first, second = (m.id for m in ctx.store.pending_messages())
    ctx.store.start_batch([first, second], +1)
    with ctx.store.transaction():
        ctx.store.start_attempt(first, +1)
    results = process_pending(ctx)
    assert [r.outcome for r in results] == ["complete", "complete"]
    store(ctx, application(sender="c@corp.example.co.jp"))
    [third] = [m.id for m in ctx.store.pending_messages()]
    ctx.store.start_batch([third], +1)
    for _ in range(2):
        with ctx.store.transaction():
            ctx.store.start_attempt(third, +1)
    [result] = process_pending(ctx)
    assert result.procedure == "quarantined"
    assert "started 2 times" in result.outcome
    ctx.close()


def _hold_write_lock(database: Path, seconds: float) -> threading.Thread:
    """Fault injection: another connection takes SQLite's write lock (what a long batch
    transaction does) and keeps it `seconds`, longer than the store's busy timeout."""
    import sqlite3

    taken = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        taken.set()
        threading.Event().wait(seconds)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=hold, name="lock-holder")
    holder.start()
    taken.wait()
    return holder


def test_a_send_the_server_accepted_is_recorded_after_a_long_lock_and_never_sent_twice(
    tmp_path: Path, smtp_server, monkeypatch: pytest.MonkeyPatch
):
    """The server answers 250 while a batch transaction holds the write lock past the busy
    timeout: the record waits for the lock instead of failing, so the next flush does not
    send the reply again."""
    import mailbot.store.sqlite as sqlite_store
    from mailbot.outbox.send import SmtpSender, flush_outbox, make_sender
    from tests.test_smtp_send import plan, smtp_desk

    monkeypatch.setattr(sqlite_store, "BUSY_SECONDS", 0.2)
    ctx = smtp_desk(tmp_path, smtp_server)
    plan(ctx, ["a@example.co.jp", "b@example.co.jp"])
    real = make_sender(ctx)
    assert isinstance(real, SmtpSender)
    holders = []

    class LockedAtAnswer(SmtpSender):
        def send_many(self, items, done) -> None:
            def answered(index, error) -> None:
                holders.append(_hold_write_lock(ctx.store.path, 1.0))
                done(index, error)

            super().send_many(items, answered)

    locked = LockedAtAnswer(real.config, real.envelope_from)
    assert flush_outbox(ctx, locked) == (2, 0)
    for holder in holders:
        holder.join()
    assert len(holders) == 2
    assert flush_outbox(ctx, real) == (0, 0)
    assert len(smtp_server.messages) == 2
    assert all(r["sent_at"] for r in outbox(ctx))
    ctx.close()


def test_a_watcher_waits_out_a_long_lock_and_stores_the_mail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """`mailbot run`'s watcher meets the write lock held past the busy timeout: it tries
    again (the mail is not acked until stored) instead of stopping the daemon."""
    import mailbot.store.sqlite as sqlite_store
    from mailbot.intake.mailboxes.maildir import deliver

    monkeypatch.setattr(sqlite_store, "BUSY_SECONDS", 0.2)
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    box = ctx.config.mailboxes[0]
    assert box.path is not None
    deliver(box.path, application(), "one.eml")
    holder = _hold_write_lock(ctx.store.path, 1.0)
    wake, stop = threading.Event(), threading.Event()
    watcher = runner._Watcher(ctx, box, wake, stop)
    watcher.start()
    try:
        assert wake.wait(timeout=30)
    finally:
        stop.set()
        watcher.join(timeout=30)
        holder.join()
    assert watcher.error is None
    assert ctx.store.count_pending() == 1
    ctx.close()


def test_a_batch_is_cut_to_about_batch_seconds_of_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Mails that each take 50 ms (fault injection: a slow apply) make the batches after the
    first short enough to stay near BATCH_SECONDS, so no batch holds the write lock for long;
    every mail still ends done once."""
    import time

    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    count = READ_AHEAD_FROM - 4
    _backlog(ctx, count)
    real = ctx.store.apply

    def slow(effect):
        time.sleep(0.05)
        return real(effect)

    monkeypatch.setattr(ctx.store, "apply", slow)
    monkeypatch.setattr(runner, "BATCH_SECONDS", 0.3)
    sizes = []
    real_batch = runner.process_batch

    def batch(ctx, mails, ready=()):
        sizes.append(len(mails))
        return real_batch(ctx, mails, ready)

    monkeypatch.setattr(runner, "process_batch", batch)
    assert len(process_pending(ctx)) == count
    assert sizes[0] == COMMIT_BATCH
    assert sum(sizes) == count
    assert max(sizes[1:]) <= 6  # 0.3 s at ≥ 50 ms a mail
    rows = ctx.store.execute("SELECT state FROM messages").fetchall()
    assert [r["state"] for r in rows] == ["done"] * count
    ctx.close()


def test_two_runs_at_once_process_each_mail_once(tmp_path: Path):
    """Two `run --once` overlap (a cron job and a staff member): both list the same waiting
    mail; the second to commit a batch finds it done and leaves it (before: 987 of 2,000
    senders got two cases and two replies)."""
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    other = make_desk(tmp_path, "2026-11-20T10:00")
    _backlog(ctx, 5)
    listed = list(ctx.store.pending_messages())
    assert len(process_pending(other)) == 5
    assert process_batch(ctx, listed) == []
    assert len(ctx.store.cases()) == 5
    assert len([r for r in outbox(ctx) if r["case_id"] is not None]) == 5
    other.close()
    ctx.close()
