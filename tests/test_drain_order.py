"""Issue 17, arrival → receipt while a backlog drains: mail stored after a drain began goes
ahead of the backlog, a few at a time between its batches, but never ahead of an earlier
waiting mail of its own sender (a correction after the application it corrects, a reply after
the mail it answers); mail whose sender cannot be read from the raw headers waits its turn.
Real SQLite; the mail "arriving" mid-drain is stored from the `committed` hook the run loop
calls after each batch (what `mailbot run`'s watcher threads do at that moment)."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from mailbot.context import Context
from mailbot.intake import runner
from mailbot.intake.pipeline import MAX_STARTS
from mailbot.intake.runner import WriteTurns, process_pending, receive
from mailbot.store import Store
from mailbot.store.sqlite import MIGRATIONS, _order_keys, answers_a_thread, order_key
from tests.support.desk import make_desk
from tests.support.jpmail import build
from tests.support.schema import database_before
from tests.test_trust import CODE, ROOT, application, store


def _key(raw: bytes) -> str:
    return f"t:{hashlib.sha256(raw).hexdigest()}"


def _backlog(ctx: Context, count: int) -> list[bytes]:
    raws = [application(sender=f"a{n}@corp.example.co.jp") for n in range(count)]
    store(ctx, *raws)
    return raws


def _arriving(ctx: Context, after_batch: int, *raws: bytes) -> Callable[[], None]:
    """The `committed` hook: stores `raws` once `after_batch` batches have committed."""
    batches = 0

    def committed() -> None:
        nonlocal batches
        batches += 1
        if batches == after_batch:
            store(ctx, *raws)

    return committed


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    monkeypatch.setattr(runner, "COMMIT_BATCH", 2)  # small batches, so a short backlog has many
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    yield ctx
    ctx.close()


def _every_mail_done_once(ctx: Context, results: list, count: int, set_aside: int = 0) -> None:
    assert len(results) == count
    assert len({r.key for r in results}) == count
    states = [r["state"] for r in ctx.store.execute("SELECT state FROM messages")]
    assert sorted(states) == ["done"] * (count - set_aside) + ["quarantined"] * set_aside
    assert len(ctx.store.cases()) == count


def test_mail_of_a_new_sender_goes_ahead_of_the_rest_of_the_backlog(desk: Context):
    backlog = _backlog(desk, 6)
    fresh = application(sender="new@probe.example.co.jp")
    results = process_pending(desk, committed=_arriving(desk, 1, fresh))
    order = [r.key for r in results]
    assert order == [_key(r) for r in backlog[:2]] + [_key(fresh)] + [_key(r) for r in backlog[2:]]
    _every_mail_done_once(desk, results, 7)


def test_mail_never_overtakes_an_earlier_waiting_mail_of_its_sender(desk: Context):
    """The sender's application waits in the backlog (the form lacks 事業者名略称); the
    corrected one that arrives while the backlog drains is processed after it, not before,
    while another sender's mail that arrives with it still goes ahead."""
    late = "a4@corp.example.co.jp"
    backlog = [application(sender=f"a{n}@corp.example.co.jp") for n in range(4)]
    backlog.append(application(sender=late, fields={"事業者名略称": ""}))
    store(desk, *backlog)
    correction = application(sender=late.upper())
    other = application(sender="new@probe.example.co.jp")
    results = process_pending(desk, committed=_arriving(desk, 1, correction, other))
    order = [r.key for r in results]
    assert order.index(_key(other)) == 2
    assert order.index(_key(correction)) > order.index(_key(backlog[4]))
    assert order[-1] == _key(correction)
    assert [r.outcome for r in results][order.index(_key(backlog[4]))] == "needs_correction"
    _every_mail_done_once(desk, results, 7)


def test_mail_whose_sender_cannot_be_read_keeps_its_place(desk: Context):
    backlog = _backlog(desk, 4)
    encoded = application(sender="x@probe.example.co.jp").replace(
        b"<x@probe.example.co.jp>", b"=?utf-8?b?eEBwcm9iZS5leGFtcGxlLmNvLmpw?="
    )
    assert order_key(encoded) is None
    results = process_pending(desk, committed=_arriving(desk, 1, encoded))
    assert [r.key for r in results] == [_key(r) for r in backlog] + [_key(encoded)]
    _every_mail_done_once(desk, results, 5)


def test_a_reply_keeps_its_place_and_holds_back_its_senders_later_mail(desk: Context):
    """A reply-all from a colleague may answer a mail still in the backlog: it is not taken
    ahead of it, and its sender's next mail waits behind it; a new sender still goes ahead."""
    backlog = _backlog(desk, 4)
    reply = application(
        sender="colleague@corp.example.co.jp", in_reply_to="<original@corp.example.co.jp>"
    )
    later = application(sender="colleague@corp.example.co.jp")
    other = application(sender="new@probe.example.co.jp")
    results = process_pending(desk, committed=_arriving(desk, 1, reply, later, other))
    order = [r.key for r in results]
    assert order == [_key(r) for r in [*backlog[:2], other, *backlog[2:], reply, later]]
    _every_mail_done_once(desk, results, 7)


def test_a_few_fresh_mails_go_between_two_batches_and_the_backlog_goes_on(
    desk: Context, monkeypatch: pytest.MonkeyPatch
):
    """A burst of fresh mail takes FRESH_BATCH places before each backlog batch, not all of
    them, so the backlog is not starved by a stream of new senders; the newest go first
    (in arrival order among themselves), as the mail that has just come is the one a
    mailbox still being fetched in bulk must not hold up."""
    monkeypatch.setattr(runner, "FRESH_BATCH", 2)
    backlog = _backlog(desk, 6)
    burst = [application(sender=f"new{n}@probe.example.co.jp") for n in range(5)]
    results = process_pending(desk, committed=_arriving(desk, 1, *burst))
    keys = {_key(r): f"b{n}" for n, r in enumerate(backlog)}
    keys.update({_key(r): f"f{n}" for n, r in enumerate(burst)})
    order = [keys[r.key] for r in results]
    assert order == ["b0", "b1", "f3", "f4", "b2", "b3", "f1", "f2", "b4", "b5", "f0"]
    _every_mail_done_once(desk, results, 11)


def test_a_fresh_mail_that_fails_is_quarantined_and_the_drain_goes_on(
    desk: Context, monkeypatch: pytest.MonkeyPatch
):
    backlog = _backlog(desk, 4)
    bad = build("件名", "本文", from_addr="bad@example.net")
    good = application(sender="new@probe.example.co.jp")
    real = desk.store.apply

    def failing(effect):
        planned = real(effect)
        if effect.message and effect.message.sender == "bad@example.net":
            raise ValueError("fails after its case was written")
        return planned

    monkeypatch.setattr(desk.store, "apply", failing)
    results = process_pending(desk, committed=_arriving(desk, 1, bad, good))
    outcome = {r.key: r.procedure for r in results}
    assert [r.key for r in results][2:4] == [_key(bad), _key(good)]
    assert outcome[_key(bad)] == "quarantined"
    assert [outcome[_key(r)] for r in [*backlog, good]] == ["operator_code_application"] * 5
    _every_mail_done_once(desk, results, 6, set_aside=1)


def test_a_fresh_mail_that_stopped_the_process_twice_is_set_aside_alone(
    desk: Context, monkeypatch: pytest.MonkeyPatch
):
    """The crash-loop breaker holds in the fresh lane: a mail whose processing started
    MAX_STARTS times goes alone and is set aside; the mail that came with it completes."""
    _backlog(desk, 4)
    crashing = application(sender="crash@probe.example.co.jp")
    good = application(sender="new@probe.example.co.jp")
    batches: list[int] = []
    real_batch = runner.process_batch

    def counting(ctx, mails, ready=()):
        batches.append(len(mails))
        return real_batch(ctx, mails, ready)

    def committed() -> None:
        if len(batches) == 1:
            store(desk, crashing, good)
            [row] = desk.store.execute("SELECT id FROM messages WHERE key = ?", (_key(crashing),))
            for _ in range(MAX_STARTS):
                with desk.store.transaction():
                    desk.store.start_attempt(row["id"], +1)

    monkeypatch.setattr(runner, "process_batch", counting)
    results = process_pending(desk, committed=committed)
    outcome = {r.key: r.procedure for r in results}
    assert outcome[_key(crashing)] == "quarantined"
    assert outcome[_key(good)] == "operator_code_application"
    assert batches[:3] == [2, 1, 1]
    _every_mail_done_once(desk, results, 6, set_aside=1)


def test_fresh_mail_and_the_read_ahead_worker_each_mail_done_once(
    desk: Context, monkeypatch: pytest.MonkeyPatch
):
    """With the worker preparing backlog batches ahead, fresh mail goes through the main
    process only; no mail is processed twice or skipped."""
    monkeypatch.setattr(runner, "READ_AHEAD_FROM", 4)
    backlog = _backlog(desk, 8)
    fresh = [application(sender=f"new{n}@probe.example.co.jp") for n in range(3)]
    fresh.append(application(sender="a7@corp.example.co.jp"))
    results = process_pending(desk, committed=_arriving(desk, 2, *fresh))
    order = [r.key for r in results]
    assert order.index(_key(fresh[0])) < order.index(_key(backlog[4]))
    assert order.index(_key(fresh[3])) > order.index(_key(backlog[7]))
    _every_mail_done_once(desk, results, 12)


def test_a_watcher_stores_between_two_batches_of_the_drain(
    desk: Context, monkeypatch: pytest.MonkeyPatch
):
    """`mailbot run`: mail that a watcher thread fetches while the backlog drains is stored
    after the batch in progress (each one here holds the write lock for 0.3 s, fault
    injection: a slow apply), not after the whole backlog, so it goes ahead of the rest."""
    from mailbot.intake.mailboxes.maildir import MaildirMailbox, deliver

    backlog = _backlog(desk, 12)
    real = desk.store.apply

    def slow(effect):
        time.sleep(0.15)
        return real(effect)

    monkeypatch.setattr(desk.store, "apply", slow)
    box = desk.config.mailboxes[0]
    assert box.path is not None
    fresh = application(sender="new@probe.example.co.jp")
    turns = WriteTurns()
    stored = threading.Event()

    def watcher() -> None:
        own = Store(desk.config.database)
        mailbox = MaildirMailbox(CODE, box.path, box.poll_interval)
        try:
            receive(own, mailbox, desk.now, turns)
        finally:
            mailbox.close()
            own.close()
        stored.set()

    def committed() -> None:
        if not deliver_once:
            deliver(box.path, fresh, "fresh.eml")
            deliver_once.append(threading.Thread(target=watcher))
            deliver_once[0].start()

    deliver_once: list[threading.Thread] = []
    results = process_pending(desk, committed=committed, turns=turns)
    deliver_once[0].join(timeout=30)
    assert stored.is_set()
    order = [r.key.split(":")[0] for r in results]
    assert order.index("maildir") <= 6  # after at most the batch in progress and the next
    assert len(results) == len(backlog) + 1
    assert [r["state"] for r in desk.store.execute("SELECT state FROM messages")] == ["done"] * 13


def test_write_turns_let_a_waiting_store_go_before_the_next_batch():
    turns = WriteTurns(patience=5.0)
    events: list[str] = []
    in_batch = threading.Event()

    def store_while_batch() -> None:
        in_batch.wait()
        with turns.storing():
            events.append("store")

    thread = threading.Thread(target=store_while_batch)
    thread.start()
    with turns.batch():
        in_batch.set()
        time.sleep(0.2)  # the store is waiting for this batch by now
        events.append("batch 1")
    time.sleep(0.05)
    with turns.batch():
        events.append("batch 2")
    thread.join()
    assert events == ["batch 1", "store", "batch 2"]


def test_write_turns_wait_no_longer_than_their_patience():
    """A store that never finishes does not stop the drain: the batch goes after `patience`
    and SQLite's own locking decides, as before."""
    turns = WriteTurns(patience=0.2)
    holding, release = threading.Event(), threading.Event()

    def stuck_store() -> None:
        with turns.storing():
            holding.set()
            release.wait()

    thread = threading.Thread(target=stuck_store)
    thread.start()
    holding.wait()
    started = time.monotonic()
    with turns.batch():
        waited = time.monotonic() - started
    release.set()
    thread.join()
    assert 0.15 <= waited < 2.0


@pytest.mark.parametrize(
    ("head", "key"),
    [
        (b"From: Taro@Example.CO.JP\r\n", "taro@example.co.jp"),
        (b'FROM : "Yamada, Taro" <Taro@Example.co.jp>\r\n', "taro@example.co.jp"),
        (b"From: =?ISO-2022-JP?B?GyRCOzNFRBsoQg==?=\r\n <t@x.co.jp>\r\n", "t@x.co.jp"),
        (b'From: "<a@evil.example>" <t@x.co.jp>\r\n', "t@x.co.jp"),
        (b"X-Original-From: a@b.jp\r\nFrom: c@d.jp\r\n", "c@d.jp"),
        (b"From: =?utf-8?b?dEB4LmNvLmpw?=\r\n", None),
        (b"From: a@b.jp, c@d.jp\r\n", None),
        (b"From: t\xc3\xa9@x.co.jp\r\n", None),
        (b"Subject: no sender\r\n", None),
    ],
)
def test_the_ordering_key_is_the_first_from_address_of_the_raw_headers(
    head: bytes, key: str | None
):
    assert order_key(head + b"Subject: x\r\n\r\nFrom: body@x.jp\r\n") == key


def test_a_from_line_in_the_body_is_no_ordering_key():
    assert order_key(b"Subject: x\r\n\r\nFrom: body@x.jp\r\n") is None


@pytest.mark.parametrize(
    ("head", "answers"),
    [
        (b"In-Reply-To: <a@b.jp>\r\n", True),
        (b"references:\r\n <a@b.jp>\r\n", True),
        (b"X-References: <a@b.jp>\r\n", False),
        (b"Subject: Re: x\r\n", False),
    ],
)
def test_a_mail_answers_a_thread_by_its_headers_only(head: bytes, answers: bool):
    raw = b"From: t@x.jp\r\n" + head + b"\r\nIn-Reply-To: <body@x.jp>\r\n"
    assert answers_a_thread(raw) is answers


def test_the_migration_gives_waiting_mail_its_ordering_key(tmp_path: Path):
    """A database from before the step: mails still waiting get their key from the raw mail
    when it opens; mails already done keep none (they are never ordered again)."""
    path = tmp_path / "m.db"
    database_before(path, _order_keys)
    conn = sqlite3.connect(path, isolation_level=None)
    waiting = application(sender="Wait@Example.co.jp")
    reply = application(sender="re@example.co.jp", in_reply_to="<x@example.co.jp>")
    done = application(sender="done@example.co.jp")
    for n, (raw, state) in enumerate([(waiting, "stored"), (reply, "stored"), (done, "done")]):
        conn.execute(
            "INSERT INTO messages (mailbox, key, sha256, size, raw, received_at, state)"
            " VALUES (?, ?, '', ?, ?, '2026-11-20T10:00:00+09:00', ?)",
            (CODE, f"k{n}", len(raw), raw, state),
        )
    conn.close()
    s = Store(path)
    assert s.schema_version == len(MIGRATIONS)
    keys = [
        tuple(r)
        for r in s.execute("SELECT key, order_key, answers_thread FROM messages ORDER BY id")
    ]
    assert keys == [("k0", "wait@example.co.jp", 0), ("k1", "re@example.co.jp", 1), ("k2", None, 0)]
    plan = " ".join(
        str(r[3])
        for r in s.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM messages WHERE state = 'stored'"
            " AND order_key = 'x' AND id < 5"
        )
    )
    assert "messages_waiting_by_key" in plan
    s.close()


DAEMON = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from mailbot.clock import Clock, parse_instant
    from mailbot.config import DEFAULT_CONFIG, parse_config
    from mailbot.context import Context
    from mailbot.intake.runner import run_forever
    from mailbot.store import Store

    real = Store.apply
    def slow(self, effect):
        time.sleep(0.02)  # fault injection: a desk whose every mail takes 20 ms more
        return real(self, effect)
    Store.apply = slow
    text = DEFAULT_CONFIG.replace(
        'path = "data/inbox/code"', 'path = "data/inbox/code"\\npoll_interval = 0.1'
    )
    config = parse_config(text, "<test>", Path(sys.argv[1]))
    run_forever(Context.open(config, Clock(parse_instant("2026-11-20T10:00"))), tick=1.0)
    """
)


def test_the_daemon_answers_new_mail_while_its_backlog_drains(tmp_path: Path):
    """`mailbot run` with 300 mails waiting: a mail from a new sender delivered once the
    drain is under way is stored by the watcher, processed and answered (its reply in the
    outgoing Maildir) while most of the backlog still waits."""
    from mailbot.intake.mailboxes.maildir import deliver

    inbox, sent = tmp_path / "data/inbox/code", tmp_path / "data/outbox"
    one = application(sender="a@corp.example.co.jp")
    for n in range(300):
        deliver(inbox, one.replace(b"a@corp.", f"a{n}@corp.".encode()), f"{n:04}.eml")
    proc = subprocess.Popen(
        [sys.executable, "-c", DAEMON, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    db = tmp_path / "data/mailbot.db"

    def count(state: str) -> int:
        with closing(sqlite3.connect(db, timeout=30)) as conn:
            if conn.execute("PRAGMA user_version").fetchone()[0] < len(MIGRATIONS):
                return 0  # the daemon is still creating its schema
            return conn.execute(
                "SELECT count(*) FROM messages WHERE state = ?", (state,)
            ).fetchone()[0]

    def answered(address: bytes) -> bool:
        return any(address in p.read_bytes() for p in (sent / "new").glob("*.eml"))

    try:
        deadline = time.monotonic() + 120
        while not (db.exists() and count("done")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert count("done") < 100, "the backlog drained before the test could mail"
        deliver(inbox, application(sender="new@probe.example.co.jp"), "fresh.eml")
        while not answered(b"new@probe.example.co.jp") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert answered(b"new@probe.example.co.jp")
        assert count("stored") >= 100
        while count("done") < 301 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert count("done") == 301, err.decode(errors="replace")[-2000:]
    assert count("stored") == 0
