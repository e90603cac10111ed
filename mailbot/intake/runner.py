"""The loops of a run: receive → process → send, once or for good.

`run_once` is what `mailbot run --once` and the tests drive. `run_forever` gives each mailbox
its own thread (IMAP IDLE or polling) that only stores raw bytes through its own database
connection, while the main thread processes, sends and runs the scheduled jobs.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from mailbot.config import MailboxConfig
from mailbot.console import counter
from mailbot.context import Context
from mailbot.errors import ConfigError, MailbotError, MailboxError, StoreBusy, StoreError
from mailbot.intake.mailboxes import Mailbox
from mailbot.intake.mailboxes.maildir import MaildirMailbox
from mailbot.intake.pipeline import Result, process_batch
from mailbot.intake.readahead import ReadAhead, exit_with_parent
from mailbot.intake.reading import ReadingState, alert_unreadable, record_read
from mailbot.outbox.send import Sender, flush_outbox, fold_journal, make_sender, settle_journal
from mailbot.store import Store, StoredMessage
from mailbot.store.journal import SendJournal

log = logging.getLogger(__name__)

STORE_BATCH = 100
BATCH_BYTES = 16 * 1024 * 1024
COMMIT_BATCH = 32  # mails applied per transaction (one fsync), each in its own savepoint
# A batch's transaction holds SQLite's write lock: the sender's records and the watchers' stores
# wait for it (up to the store's BUSY_SECONDS), so a batch is also cut to about this much work.
BATCH_SECONDS = 5.0
READ_AHEAD_FROM = 2 * COMMIT_BATCH  # a backlog this long is parsed ahead on the second core
FRESH_BATCH = 4  # mails that arrived during a drain, taken ahead of its next batch at most
PUSH_SLICE = 30.0  # IDLE is renewed (and the box re-checked) this often even when nothing comes
STOP_SECONDS = 0.5  # how long a stopping daemon waits for its watchers


def open_mailbox(box: MailboxConfig, stop: threading.Event | None = None) -> Mailbox:
    """The mailbox of a `[[mailboxes]]` entry; `stop` cuts its reconnect backoff short."""
    if box.backend == "maildir":
        assert box.path is not None
        return MaildirMailbox(box.address, box.path, box.poll_interval)
    from mailbot.intake.mailboxes.imap import ImapMailbox

    return ImapMailbox.from_config(box, stop=stop)


class WriteTurns:
    """Who writes next while `mailbot run` drains a backlog: a watcher that has mail to store
    goes between two batches instead of waiting out SQLite's busy timeout, which the main
    thread, starting each batch's transaction the moment the last one commits, would
    otherwise win again and again (fresh mail would be stored only once the backlog is done).
    Only an order of turns: each wait is bounded, and then the write goes to SQLite's own
    locking as before (busy timeout, `StoreBusy`)."""

    def __init__(self, patience: float = 2 * BATCH_SECONDS) -> None:
        self.patience = patience
        self._turns = threading.Condition()
        self._storing = 0
        self._in_batch = False

    @contextmanager
    def storing(self) -> Iterator[None]:
        """A watcher's store: after the batch in progress, before the next one."""
        with self._turns:
            self._storing += 1
            self._turns.wait_for(lambda: not self._in_batch, timeout=self.patience)
        try:
            yield
        finally:
            with self._turns:
                self._storing -= 1
                self._turns.notify_all()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """A batch of the drain: after the stores that are waiting."""
        with self._turns:
            self._turns.wait_for(lambda: not self._storing, timeout=self.patience)
            self._in_batch = True
        try:
            yield
        finally:
            with self._turns:
                self._in_batch = False
                self._turns.notify_all()


def receive(
    store: Store, mailbox: Mailbox, now_fn: Callable, turns: WriteTurns | None = None
) -> int:
    """Store every waiting message, committing each batch before acking it."""
    new = 0
    batch: list[tuple[str, bytes, datetime | None]] = []

    def commit() -> None:
        nonlocal new
        if batch:
            with turns.storing() if turns else nullcontext():
                new += store.save_raw(mailbox.address, batch, now_fn())
            mailbox.ack([key for key, _, _ in batch])
            batch.clear()

    size = 0
    for message in mailbox.fetch():
        batch.append((message.key, message.data, message.arrived_at))
        size += len(message.data)
        if len(batch) >= STORE_BATCH or size >= BATCH_BYTES:
            commit()
            size = 0
    commit()
    return new


class Pace:
    """How many mails the next batch takes so that its transaction lasts about BATCH_SECONDS:
    from the time a mail took in the batches before, quick to follow a slow batch and slow to
    forget it (one slow batch may be the start of a run of large forms)."""

    def __init__(self) -> None:
        self.per_mail = 0.0

    def took(self, mails: int, seconds: float) -> None:
        self.per_mail = max(seconds / max(mails, 1), self.per_mail / 2)

    def size(self) -> int:
        if self.per_mail <= 0:
            return COMMIT_BATCH
        return max(1, min(COMMIT_BATCH, int(BATCH_SECONDS / self.per_mail)))


def batches(
    messages: Iterable[StoredMessage], size: Callable[[], int]
) -> Iterator[list[StoredMessage]]:
    """Group-commit batches in arrival order, at most `size()` mails (asked as each batch
    begins; `Pace`) or BATCH_BYTES of raw mail (large mails neither sit in memory together nor
    hold the write lock long). A mail whose processing started before without finishing (a
    past run stopped inside its batch) goes alone, committed on its own, so the one that stops
    the process again is told apart from its batch-mates."""
    batch: list[StoredMessage] = []
    held = 0
    for stored in messages:
        if stored.attempts or stored.batched:
            if batch:
                yield batch
                batch, held = [], 0
            yield [stored]
            continue
        if not batch:
            limit = size()
        batch.append(stored)
        held += len(stored.raw)
        if len(batch) >= limit or held >= BATCH_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def process_pending(
    ctx: Context,
    ahead: ReadAhead | None = None,
    committed: Callable[[], None] | None = None,
    turns: WriteTurns | None = None,
    stop: threading.Event | None = None,
) -> list[Result]:
    """Process every stored message; a backlog (first run on a full mailbox) shows progress.
    `committed` is called after each batch's commit (the sender that goes along wakes);
    `stop` (the daemon's SIGTERM) ends the drain after the batch in hand.

    The backlog is what was waiting when the drain began, taken in arrival order. Mail stored
    while it drains (the watchers of `mailbot run` keep storing) is fresh: before each backlog
    batch, a few fresh mails go first as a batch of their own (`_fresh_first`), so new mail
    is answered at about the pace of one batch rather than after the whole backlog. Fresh
    mail never overtakes an earlier waiting mail of its own sender (`Store.fresh_messages`);
    the rest of it is the next backlog, once this one is done. `turns` lets the watchers
    store between batches (`WriteTurns`). What a killed run's sender left in the send journal
    is settled first."""
    settle_journal(ctx)
    results: list[Result] = []
    waiting = ctx.store.count_pending()
    pace = Pace()
    horizon = ctx.store.newest_pending_id()
    with (
        counter(waiting if waiting > 200 else 0, "processing mail") as tick,
        ahead or ReadAhead(ctx) as ahead,
        ctx.store.deferred_sync(),
    ):
        while True:
            done = len(results)
            groups = batches(_up_to(ctx.store.pending_messages(limit=200), horizon), pace.size)
            if waiting >= READ_AHEAD_FROM:
                prepared = ahead.batches(groups)
            else:
                prepared = ((batch, []) for batch in groups)
            for batch, ready in prepared:
                if stop is not None and stop.is_set():
                    return results
                results.extend(_fresh_first(ctx, horizon, committed, turns))
                started = time.monotonic()
                with turns.batch() if turns else nullcontext():
                    results.extend(process_batch(ctx, batch, ready))
                pace.took(len(batch), time.monotonic() - started)
                if committed is not None:
                    committed()
                for _ in batch:
                    tick()
            if len(results) == done:
                newest = ctx.store.newest_pending_id()
                if newest <= horizon:
                    return results
                horizon = newest


def _up_to(messages: Iterable[StoredMessage], horizon: int) -> Iterator[StoredMessage]:
    """The backlog's part of the waiting mail (in id order, so the first one past the horizon
    ends it)."""
    for stored in messages:
        if stored.id > horizon:
            return
        yield stored


def _fresh_first(
    ctx: Context,
    horizon: int,
    committed: Callable[[], None] | None,
    turns: WriteTurns | None,
) -> list[Result]:
    """Up to FRESH_BATCH mails stored after the backlog (id past `horizon`) that may go ahead
    of it, processed and committed now by this process (never handed to the read-ahead
    worker, which holds backlog mail only), and their replies woken at once."""
    fresh = list(ctx.store.fresh_messages(after=horizon, limit=FRESH_BATCH))
    results: list[Result] = []
    for batch in batches(fresh, lambda: FRESH_BATCH):
        with turns.batch() if turns else nullcontext():
            results.extend(process_batch(ctx, batch))
        if committed is not None:
            committed()
    return results


@dataclass
class RunSummary:
    received: int = 0
    results: list[Result] = field(default_factory=list)
    sent: int = 0
    deferred: int = 0
    jobs: list[str] = field(default_factory=list)


def run_jobs(ctx: Context) -> list[str]:
    """Scheduled work that is due at the run's clock (reminders, the daily report)."""
    from mailbot.desk.jobs import run_due_jobs

    return run_due_jobs(ctx)


def run_once(ctx: Context, sender: Sender | None = None) -> RunSummary:
    """Reads every mailbox, processes, runs the due jobs, sends. A mailbox that cannot be
    read is recorded (and, once unreadable long enough, told to staff) while the others and
    the rest of the run go on; its error is raised at the end."""
    summary = RunSummary()
    unreadable: MailbotError | None = None
    for box_config in ctx.config.mailboxes:
        try:
            mailbox = open_mailbox(box_config)
            try:
                summary.received += receive(ctx.store, mailbox, ctx.now)
            finally:
                mailbox.close()
        except StoreError:
            raise
        except (MailbotError, OSError) as exc:
            record_read(ctx, box_config.address, exc)
            if isinstance(exc, ConfigError):
                raise
            unreadable = unreadable or (
                exc
                if isinstance(exc, MailbotError)
                else MailboxError(f"{box_config.address}: {exc}")
            )
            continue
        record_read(ctx, box_config.address, None)
    alert_unreadable(ctx)
    sender = sender or make_sender(ctx)
    stopped: BaseException | None = None
    if ctx.store.count_pending() >= READ_AHEAD_FROM:
        with ReadAhead(ctx, start=True) as ahead, SendAlong(ctx, sender) as along:
            summary.results = process_pending(ctx, ahead, along.wake)
            summary.jobs = run_jobs(ctx)
        summary.sent, summary.deferred = along.sent, along.deferred
        stopped = along.stopped
    else:
        summary.results = process_pending(ctx)
        summary.jobs = run_jobs(ctx)
    sent, deferred = flush_outbox(ctx, sender)
    summary.sent += sent
    summary.deferred += deferred
    if stopped is not None:
        raise stopped
    if unreadable is not None:
        raise unreadable
    return summary


class SendAlong:
    """`run --once` on a backlog: the replies of each committed batch are sent while the next
    batch is checked, by a process of its own (forked before any thread starts) with its own
    database connection, instead of all at the end. It is the only sender until it is joined
    (the final flush comes after), and it sends only committed outbox rows, each recorded the
    moment the server answers. A process, not a thread: its waits on the SMTP server never
    queue behind the checking thread for the GIL. It records in the send journal
    (mailbot/store/journal.py), not in the database, whose write lock the batches hold; this
    process folds the journal into the database after each batch (`wake`), and the run's last
    flush folds what the sender recorded after the last one."""

    def __init__(self, ctx: Context, sender: Sender) -> None:
        self.ctx, self.sender = ctx, sender
        self.sent = self.deferred = 0
        self.stopped: BaseException | None = None
        self.journal: SendJournal | None = None
        fork = multiprocessing.get_context("fork")
        self._wakes, self._waker = fork.Pipe(duplex=False)
        self._reports, self._reporter = fork.Pipe(duplex=False)
        self.process = fork.Process(
            target=_send_along,
            args=(ctx, sender, self._wakes, self._reporter, os.getpid()),
            name="send-along",
            daemon=True,
        )

    def __enter__(self) -> SendAlong:
        self.journal = SendJournal(self.ctx.store.path)
        self.process.start()
        self._wakes.close()
        self._reporter.close()
        return self

    def wake(self) -> None:
        """A batch was committed: the replies sent so far join their cases, in a commit that
        makes the batch durable, and the sender may send every reply up to the newest outbox
        row that commit covers."""
        assert self.journal is not None
        durable = fold_journal(self.ctx, self.journal)
        with suppress(OSError):  # it has stopped: its report says why, at the end
            self._waker.send(durable)

    def __exit__(self, *exc: object) -> None:
        """The journal is left to the run's last flush, which settles it first; what stopped
        the sender (`stopped`) is raised by the caller after that flush, so the replies it
        left still go."""
        with suppress(OSError):  # it has stopped already: its report says why
            self._waker.send(None)
        self.process.join()
        try:
            report = self._reports.recv()
        except EOFError:
            report = MailbotError(f"the sender that goes along exited with {self.process.exitcode}")
        finally:
            self._waker.close()
            self._reports.close()
            if self.journal is not None:
                self.journal.close()
        if isinstance(report, BaseException):
            self.stopped = report
            return
        self.sent, self.deferred = report


def _send_along(
    ctx: Context, sender: Sender, wakes: Connection, reports: Connection, parent: int
) -> None:
    """The forked sender: at each wake, flushes the outbox up to the durable row the wake
    names, until told to stop (None), then reports (sent, deferred) or the error that stopped
    it. It never uses the parent's connection."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent)
    sent = deferred = 0
    try:
        with (
            Context(ctx.config, Store(ctx.config.database), ctx.clock) as own,
            SendJournal(own.store.path) as journal,
        ):
            durable = wakes.recv()
            while durable is not None:
                stop = False
                while wakes.poll():
                    newer = wakes.recv()
                    stop = stop or newer is None
                    durable = max(durable, newer or 0)
                done = flush_outbox(own, sender, journal=journal, upto=durable)
                sent, deferred = sent + done[0], deferred + done[1]
                if stop:
                    break
                durable = wakes.recv()
        report: object = (sent, deferred)
    except BaseException as exc:  # handed to the main process, which raises it
        report = exc
    try:
        reports.send(report)
    except (pickle.PicklingError, TypeError, AttributeError):
        reports.send(MailbotError(f"the sender that goes along stopped: {report!r}"))


class _Watcher(threading.Thread):
    """Keeps one mailbox drained into the store; wakes the main loop when mail was stored."""

    def __init__(
        self,
        ctx: Context,
        box: MailboxConfig,
        wake: threading.Event,
        stop: threading.Event,
        turns: WriteTurns | None = None,
    ) -> None:
        super().__init__(name=f"mailbox-{box.local_part}", daemon=True)
        self.ctx, self.box, self.wake, self.stop_event = ctx, box, wake, stop
        self.turns = turns
        self.error: BaseException | None = None

    def run(self) -> None:
        store = Store(self.ctx.config.database)
        reading = ReadingState(self.box.address, store, self.ctx.now)
        mailbox: Mailbox | None = None
        try:
            while not self.stop_event.is_set():
                try:
                    if mailbox is None:
                        mailbox = open_mailbox(self.box, self.stop_event)
                    if receive(store, mailbox, self.ctx.now, self.turns):
                        self.wake.set()
                    reading.ok()
                    if mailbox.pushes:
                        mailbox.wait(timeout=PUSH_SLICE, stop=self.stop_event)
                    else:
                        self.stop_event.wait(self.box.poll_interval)
                except StoreBusy as exc:
                    log.warning("mailbox %s: %s; trying again", self.box.address, exc)
                except StoreError as exc:
                    self.error = exc
                    self.stop_event.set()
                    self.wake.set()
                    return
                except (MailbotError, OSError) as exc:
                    if mailbox is not None:
                        mailbox.close()
                        mailbox = None
                    if self.stop_event.is_set():
                        return
                    delay = reading.failed(exc)
                    self.wake.set()  # the main loop looks at the alert that may now be due
                    self.stop_event.wait(delay)
        finally:
            if mailbox is not None:
                mailbox.close()
            store.close()


def _join(watchers: list[_Watcher], seconds: float) -> None:
    """Waits up to `seconds` in all for the watchers to end. One still blocked in a socket
    call (a server that accepts and never answers holds a read until its timeout) is left
    behind: it is a daemon thread, so it ends with the process, and what it was doing is
    safe to cut (mail is acknowledged only after it is committed)."""
    deadline = time.monotonic() + seconds
    for watcher in watchers:
        watcher.join(timeout=max(0.0, deadline - time.monotonic()))
        if watcher.is_alive():
            log.info("mailbox %s: still waiting on its server; left behind", watcher.box.address)


def start_scheduler(ctx: Context, wake: threading.Event, tick: float) -> BackgroundScheduler:
    """APScheduler only wakes the main loop at each job's time (and every `tick` for the outbox
    and retries); the main thread does the work and SQLite decides what is due, so a job fired
    twice or late changes nothing."""
    from mailbot.desk.jobs import SCHEDULE_RULES

    scheduler = BackgroundScheduler(timezone=ctx.calendar.tz)
    for spec in SCHEDULE_RULES.load(ctx.config.rules_dir):
        scheduler.add_job(
            wake.set,
            CronTrigger(hour=spec.at.hour, minute=spec.at.minute, timezone=ctx.calendar.tz),
            id=spec.name,
            misfire_grace_time=None,
            coalesce=True,
        )
    scheduler.add_job(wake.set, IntervalTrigger(seconds=tick), id="outbox", coalesce=True)
    scheduler.start()
    return scheduler


def run_forever(ctx: Context, sender: Sender | None = None, tick: float = 30.0) -> int:
    """The daemon. The replies of each committed batch go at once, not after the whole
    backlog, through a database connection of their own: a recorded send is a FULL commit,
    which the drain's deferred-sync commits on the main connection are not."""
    wake, stop = threading.Event(), threading.Event()
    sender = sender or make_sender(ctx, stop=stop)

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping after the current step", signum)
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    turns = WriteTurns()
    watchers = [_Watcher(ctx, box, wake, stop, turns) for box in ctx.config.mailboxes]
    for watcher in watchers:
        watcher.start()
    scheduler = start_scheduler(ctx, wake, tick)
    log.info("running on %d mailbox(es)", len(watchers))
    try:
        with Context(ctx.config, Store(ctx.config.database), ctx.clock) as sending:
            while not stop.is_set():
                wake.clear()
                process_pending(
                    ctx, committed=lambda: flush_outbox(sending, sender), turns=turns, stop=stop
                )
                if stop.is_set():
                    break
                run_jobs(ctx)
                alert_unreadable(ctx)
                flush_outbox(ctx, sender)
                wake.wait(timeout=tick)
    finally:
        scheduler.shutdown(wait=False)
    _join(watchers, STOP_SECONDS)
    failed = [w.error for w in watchers if w.error]
    if failed:
        raise failed[0]
    return 0
