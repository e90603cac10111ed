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
from mailbot.intake import runner
from mailbot.intake.runner import COMMIT_BATCH, READ_AHEAD_FROM, process_pending
from mailbot.outbox.send import MaildirSender
from mailbot.store import Store
from tests.support.desk import make_desk, outbox
from tests.support.jpmail import build
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
    used = []
    real = runner.ReadAhead._pool
    monkeypatch.setattr(runner.ReadAhead, "_pool", lambda self: used.append(1) or real(self))
    assert len(process_pending(ahead)) == count
    assert len(used) == count
    inline = make_desk(tmp_path / "inline", "2026-11-20T10:00")
    _backlog(inline, count)
    monkeypatch.setattr(runner, "READ_AHEAD_FROM", count + 1)
    process_pending(inline)
    assert _outcomes(ahead) == _outcomes(inline)
    statuses = {status for status, *_ in _outcomes(ahead)}
    assert statuses == {"complete", "needs_correction"}
    ahead.close()
    inline.close()


WORKER_DIES = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import mailbot.intake.pipeline as pipeline
    from tests.support.desk import make_desk
    from mailbot.intake.runner import process_pending

    main_pid = os.getpid()
    real = pipeline.parse
    def parse(raw):
        if b"X-Kill-Worker" in raw and os.getpid() != main_pid:
            os.abort()  # fault injection: the worker alone dies on this mail
        return real(raw)
    pipeline.parse = parse
    ctx = make_desk(Path(sys.argv[1]), "2026-11-20T10:00")
    print(len(process_pending(ctx)))
    """
)


def test_a_worker_that_dies_loses_nothing_the_main_process_reads_those_mails(tmp_path: Path):
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    count = READ_AHEAD_FROM + 10
    _backlog(ctx, count, odd_at=COMMIT_BATCH + 3, **{"X-Kill-Worker": "1"})
    ctx.close()
    done = _run_crash(tmp_path, WORKER_DIES)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "read-ahead worker stopped" in done.stderr
    assert done.stdout.split()[-1] == str(count)
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    rows = ctx.store.execute("SELECT state, case_id FROM messages ORDER BY id").fetchall()
    assert [r["state"] for r in rows] == ["done"] * count
    assert len({r["case_id"] for r in rows}) == count == len(ctx.store.cases())
    ctx.close()


def test_a_mail_that_kills_worker_and_main_alike_is_set_aside_alone(tmp_path: Path):
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    count = READ_AHEAD_FROM + 10
    killer_at = COMMIT_BATCH + 3
    _backlog(ctx, count, odd_at=killer_at, **{"X-Kill-Me": "1"})
    ctx.close()
    for _ in range(3):  # in its batch, then twice alone
        assert _run_crash(tmp_path).returncode != 0
    fourth = _run_crash(tmp_path)
    assert fourth.returncode == 0, fourth.stderr[-2000:]
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    rows = ctx.store.execute("SELECT state, case_id FROM messages ORDER BY id").fetchall()
    assert [r["state"] for r in rows] == [
        "quarantined" if n == killer_at else "done" for n in range(count)
    ]
    assert len({r["case_id"] for r in rows}) == count == len(ctx.store.cases())
    ctx.close()


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
    """The real maildir sender, remembering which thread handed over each mail."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.handed: list[tuple[str, str]] = []

    def send_many(self, items, done) -> None:
        self.handed += [(mid, threading.current_thread().name) for mid, _, _ in items]
        super().send_many(items, done)


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
    handed = [mid for mid, _ in sender.handed]
    assert len(handed) == len(set(handed)) == summary.sent
    assert {r["message_id"] for r in replies} <= set(handed)
    assert "send-along" in {name for _, name in sender.handed}
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
