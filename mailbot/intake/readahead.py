"""The second core: worker processes parse the next batch's mails and open their forms while
the main process checks, commits and sends the current one.

A worker only runs `prepare`, which is pure: it reads no store and writes nothing. Order and
exactly-once stay with the main process's commits, and every mail sent to the worker is already
committed raw, so a worker that dies or hangs loses nothing: the main process prepares those
mails itself, as it did before there was a worker. The worker's work is bounded: a mail it has
not prepared after READ_AHEAD_TIMEOUT seconds, or one it died on, counts one start of its own
(the crash-loop breaker's count, `pipeline.MAX_STARTS`) and goes through the main process
alone, as a mail that stopped the main process would.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from mailbot.context import Context
from mailbot.forms.workbook import FORM_RULES, open_book
from mailbot.forms.workbook import Limits as WorkbookLimits
from mailbot.mail import Mail
from mailbot.mail.parse import parse
from mailbot.procedures.common import named_forms, pick_form
from mailbot.store import StoredMessage

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
READ_AHEAD_TIMEOUT = 30.0  # seconds the main process waits for the worker on one mail

Batch = tuple[list[StoredMessage], list[Mail | None]]


def prepare(
    raw: bytes, max_bytes: int, limits: WorkbookLimits, form_names: tuple[tuple[str, ...], ...]
) -> Mail | None:
    """The pure stage of one mail: parsed, and the attachment a form check reads opened
    (inspected and read into grids): each spreadsheet named like a form, else the one
    `pick_form` falls back to. No other attachment is opened (a check that picks another
    opens it itself). None when the mail is over the size limit (the main process quarantines
    it with the reason)."""
    if len(raw) > max_bytes:
        return None
    mail = parse(raw)
    if any(d.startswith("unparseable:") for d in mail.defects):
        return mail
    named = [a for names in form_names for a in named_forms(mail, names)]
    fallback = pick_form(mail, ())
    picked = {id(a) for a in named or ([fallback] if fallback is not None else [])}
    if not picked:
        return mail
    return replace(
        mail,
        attachments=tuple(
            replace(a, opened=open_book(a.data, a.filename, limits)) if id(a) in picked else a
            for a in mail.attachments
        ),
    )


class ReadAhead:
    """`start` forks the worker at once, before the caller starts threads of its own (the
    sender that goes along); a worker that dies or hangs is not replaced in that run.

    One message each way per batch, sent and read by the main thread itself: batch N's
    results are read before batch N+1 is sent, so neither side ever waits on a full pipe,
    and no feeder thread has to win the GIL from the checking thread once per mail. The
    worker marks which mail it is on in shared memory (`on`), which is how a death or a hang
    is pinned on one mail."""

    def __init__(self, ctx: Context, start: bool = False) -> None:
        self.ctx = ctx
        self.max_bytes = ctx.config.limits.max_message_bytes
        self.limits = WorkbookLimits(max_bytes=ctx.config.limits.max_attachment_bytes)
        self.form_names = tuple(
            form.names for form in FORM_RULES.load(ctx.config.rules_dir).forms.values()
        )
        self.worker: BaseProcess | None = None
        self.conn: Connection | None = None
        self.on: ctypes.c_longlong | None = None
        self.sent = 0
        # Only while the process has one thread (`run --once`, `retry`): a forked child would
        # inherit locks that `run`'s watcher threads hold, so there mails are prepared in line.
        self.enabled = threading.active_count() == 1
        if self.enabled and start:
            self._start()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _start(self) -> bool:
        """A forked worker runs the very code the main process would, loaded already."""
        fork = multiprocessing.get_context("fork")
        here, there = fork.Pipe(duplex=True)
        on = fork.Value("q", -1, lock=False)
        worker = fork.Process(
            target=_work,
            args=(there, on, os.getpid(), self.max_bytes, self.limits, self.form_names),
            name="read-ahead",
            daemon=True,
        )
        try:
            worker.start()
        except OSError as exc:
            log.warning("the read-ahead worker could not start (%s); mails are read in line", exc)
            self.enabled = False
            return False
        there.close()
        self.worker, self.conn, self.on = worker, here, on
        return True

    def _stop(self) -> None:
        """The worker is pure: whatever it was doing is simply dropped."""
        if self.worker is not None:
            self.worker.kill()
            self.worker.join()
            self.worker = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _submit(self, group: list[StoredMessage]) -> int | None:
        """Hands the batch to the worker; returns the number of its first mail (None: the
        main process prepares the batch)."""
        if not self.enabled or (self.worker is None and not self._start()):
            return None
        assert self.conn is not None
        first = self.sent
        try:
            self.conn.send([(first + n, stored.raw) for n, stored in enumerate(group)])
        except OSError:
            self._failed(group, first, "stopped")
            return None
        self.sent += len(group)
        return first

    def _collect(self, group: list[StoredMessage], first: int) -> list[Mail | None] | int:
        """The batch's prepared mails, or the index in the batch of the mail the worker died
        on or did not finish in READ_AHEAD_TIMEOUT seconds."""
        assert self.conn is not None and self.on is not None
        on, since = self.on.value, time.monotonic()
        try:
            while not self.conn.poll(1.0):
                if self.on.value != on:
                    on, since = self.on.value, time.monotonic()
                elif time.monotonic() - since > READ_AHEAD_TIMEOUT:
                    return self._failed(
                        group, first, f"did not finish in {READ_AHEAD_TIMEOUT:.0f} s"
                    )
            return self.conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError):
            return self._failed(group, first, "stopped")

    def _failed(self, group: list[StoredMessage], first: int, why: str) -> int:
        """The worker is stopped for the rest of the run; returns the mail it was on."""
        assert self.on is not None
        at = min(max(self.on.value - first, 0), len(group) - 1)
        log.warning(
            "the read-ahead worker %s on %s; the main process reads the mails", why, group[at].key
        )
        self.enabled = False
        self._stop()
        return at

    def _ready(self, batch: list[StoredMessage], first: int | None) -> Iterator[Batch]:
        """The batch with what the worker prepared; a mail the worker failed on counts a start
        and goes alone, between the mails before it and those after it."""
        if first is None or not self.enabled:
            yield batch, []
            return
        mails = self._collect(batch, first)
        if not isinstance(mails, int):
            yield batch, mails
            return
        culprit = batch[mails]
        with self.ctx.store.transaction():
            self.ctx.store.start_attempt(culprit.id, +1)
        if mails:
            yield batch[:mails], []
        yield [replace(culprit, attempts=culprit.attempts + 1)], [None]
        if batch[mails + 1 :]:
            yield batch[mails + 1 :], []

    def batches(self, groups: Iterable[list[StoredMessage]]) -> Iterator[Batch]:
        """Each batch with its prepared mails, while the worker prepares the next batch."""
        ahead: tuple[list[StoredMessage], int | None] | None = None
        for group in groups:
            ready = list(self._ready(*ahead)) if ahead is not None else []
            ahead = (group, self._submit(group))
            yield from ready
        if ahead is not None:
            yield from self._ready(*ahead)


def _work(
    conn: Connection,
    on: ctypes.c_longlong,
    parent: int,
    max_bytes: int,
    limits: WorkbookLimits,
    form_names: tuple[tuple[str, ...], ...],
) -> None:
    """The worker: prepares each batch it is given, mail by mail, marking the mail it is on,
    until its parent is gone (Ctrl-C is for the parent, which kills the worker as it stops)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent)
    while True:
        mails: list[Mail | None] = []
        for number, raw in conn.recv():
            on.value = number
            try:
                mails.append(prepare(raw, max_bytes, limits, form_names))
            except Exception:
                # The main process prepares it again, meets the same error and quarantines
                # the mail with its reason.
                mails.append(None)
        try:
            conn.send(mails)
        except (pickle.PicklingError, TypeError, AttributeError):
            conn.send([None] * len(mails))


def exit_with_parent(parent: int) -> None:
    """In a forked helper: leave the moment the main process is gone (killed), so that no
    orphan lingers holding its pipes or sends beside the next run. Linux kills the helper
    with its parent (PR_SET_PDEATHSIG); elsewhere a thread watches the parent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0 and os.getppid() == parent:
            return
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
