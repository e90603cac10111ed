"""The second core: a worker process parses the next batch's mails and opens their forms while
the main process checks, commits and sends the current one.

The worker only runs `prepare`, which is pure: it reads no store and writes nothing. Order and
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
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue

from mailbot.context import Context
from mailbot.forms.workbook import FORM_RULES, open_book
from mailbot.forms.workbook import Limits as WorkbookLimits
from mailbot.mail import Mail
from mailbot.mail.parse import parse
from mailbot.procedures.common import named_form, pick_form
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
    named = [a for names in form_names if (a := named_form(mail, names)) is not None]
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
    sender that goes along); a worker that dies or hangs is not replaced in that run."""

    def __init__(self, ctx: Context, start: bool = False) -> None:
        self.ctx = ctx
        self.max_bytes = ctx.config.limits.max_message_bytes
        self.limits = WorkbookLimits(max_bytes=ctx.config.limits.max_attachment_bytes)
        self.form_names = tuple(
            form.names for form in FORM_RULES.load(ctx.config.rules_dir).forms.values()
        )
        self.worker: BaseProcess | None = None
        self.requests: Queue | None = None
        self.results: Connection | None = None
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
        receive, send = fork.Pipe(duplex=False)
        requests = fork.Queue()
        worker = fork.Process(
            target=_work,
            args=(requests, send, os.getpid(), self.max_bytes, self.limits, self.form_names),
            name="read-ahead",
            daemon=True,
        )
        try:
            worker.start()
        except OSError as exc:
            log.warning("the read-ahead worker could not start (%s); mails are read in line", exc)
            self.enabled = False
            return False
        send.close()
        self.worker, self.requests, self.results = worker, requests, receive
        return True

    def _stop(self) -> None:
        """The worker is pure: whatever it was doing is simply dropped."""
        if self.worker is not None:
            self.worker.kill()
            self.worker.join()
            self.worker = None
        if self.requests is not None:
            self.requests.cancel_join_thread()
            self.requests.close()
            self.requests = None
        if self.results is not None:
            self.results.close()
            self.results = None

    def _submit(self, stored: StoredMessage) -> bool:
        if not self.enabled or (self.worker is None and not self._start()):
            return False
        assert self.requests is not None
        self.requests.put(stored.raw)
        return True

    def _collect(self, stored: StoredMessage) -> tuple[Mail | None, bool]:
        """The worker's next result, in submission order: (mail or None, whether the worker
        failed on this very mail: died or did not answer in time)."""
        if not self.enabled or self.results is None:
            return None, False
        started = time.monotonic()
        try:
            if self.results.poll(READ_AHEAD_TIMEOUT):
                return self.results.recv(), False
            why = f"did not finish in {time.monotonic() - started:.0f} s"
        except (EOFError, OSError, pickle.UnpicklingError):
            why = "stopped"
        log.warning(
            "the read-ahead worker %s on %s; the main process reads the mails", why, stored.key
        )
        self.enabled = False
        self._stop()
        return None, True

    def _ready(self, batch: list[StoredMessage], submitted: list[bool]) -> Iterator[Batch]:
        """The batch with what the worker prepared; a mail the worker failed on counts a start
        and goes alone, between the mails before it and those after it."""
        mails: list[Mail | None] = []
        for n, stored in enumerate(batch):
            mail, failed = self._collect(stored) if submitted[n] else (None, False)
            if failed:
                with self.ctx.store.transaction():
                    self.ctx.store.start_attempt(stored.id, +1)
                if mails:
                    yield batch[:n], mails
                yield [replace(stored, attempts=stored.attempts + 1)], [None]
                if batch[n + 1 :]:
                    yield batch[n + 1 :], []
                return
            mails.append(mail)
        yield batch, mails

    def batches(self, groups: Iterable[list[StoredMessage]]) -> Iterator[Batch]:
        """Each batch with its prepared mails, while the next batch is being prepared."""
        ahead: deque[tuple[list[StoredMessage], list[bool]]] = deque()
        for group in groups:
            ahead.append((group, [self._submit(stored) for stored in group]))
            if len(ahead) > 1:
                yield from self._ready(*ahead.popleft())
        while ahead:
            yield from self._ready(*ahead.popleft())


def _work(
    requests: Queue,
    results: Connection,
    parent: int,
    max_bytes: int,
    limits: WorkbookLimits,
    form_names: tuple[tuple[str, ...], ...],
) -> None:
    """The worker: prepares mails in the order they come until its parent is gone (Ctrl-C
    is for the parent, which kills the worker as it stops)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_with_parent(parent)
    while True:
        raw = requests.get()
        try:
            mail = prepare(raw, max_bytes, limits, form_names)
        except Exception:
            # The main process prepares it again, meets the same error and quarantines the
            # mail with its reason.
            mail = None
        try:
            results.send(mail)
        except (pickle.PicklingError, TypeError, AttributeError):
            results.send(None)


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
