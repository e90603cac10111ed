"""The second core: a one-process pool parses the next batch's mails and opens their workbooks
while the main process checks, commits and sends the current one.

The worker only runs `pipeline.prepare`, which is pure: it reads no store and writes nothing.
Order and exactly-once stay with the main process's commits, and every mail sent to the worker
is already committed raw, so a worker that dies (a reader's allocation failure aborts it) loses
nothing: the main process prepares those mails itself, as it did before there was a worker.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from mailbot.context import Context
from mailbot.forms.workbook import Limits as WorkbookLimits
from mailbot.intake.pipeline import prepare
from mailbot.mail import Mail
from mailbot.store import StoredMessage

log = logging.getLogger(__name__)


class ReadAhead:
    """`start` forks the worker at once, before the caller starts threads of its own (the
    sender that goes along); a worker that dies is not replaced while such threads run."""

    def __init__(self, ctx: Context, start: bool = False) -> None:
        self.max_bytes = ctx.config.limits.max_message_bytes
        self.limits = WorkbookLimits(max_bytes=ctx.config.limits.max_attachment_bytes)
        self.pool: ProcessPoolExecutor | None = None
        # Only while the process has one thread (`run --once`, `retry`): a forked child would
        # inherit locks that `run`'s watcher threads hold, so there mails are prepared in line.
        self.enabled = threading.active_count() == 1
        if self.enabled and start:
            try:
                self._pool().submit(int).result()
            except (OSError, BrokenProcessPool):
                self._broken()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def _pool(self) -> ProcessPoolExecutor:
        """A forked worker runs the very code the main process would, loaded already."""
        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_exit_with_parent,
                initargs=(os.getpid(),),
            )
        return self.pool

    def _broken(self) -> None:
        if self.pool is not None:
            log.warning("the read-ahead worker stopped; the main process reads the mails")
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None
            self.enabled = False

    def _submit(self, stored: StoredMessage) -> Future | None:
        if not self.enabled:
            return None
        try:
            return self._pool().submit(prepare, stored.raw, self.max_bytes, self.limits)
        except (BrokenProcessPool, RuntimeError):
            self._broken()
            return None

    def _collect(self, future: Future | None) -> Mail | None:
        if future is None:
            return None
        try:
            return future.result()
        except BrokenProcessPool:
            self._broken()
            return None
        except Exception:
            # The main process prepares it again, meets the same error and quarantines the
            # mail with its reason.
            return None

    def batches(
        self, groups: Iterable[list[StoredMessage]]
    ) -> Iterator[tuple[list[StoredMessage], list[Mail | None]]]:
        """Each batch with its prepared mails, while the next batch is being prepared."""
        if not self.enabled:
            yield from ((group, []) for group in groups)
            return
        ahead: deque[tuple[list[StoredMessage], list[Future | None]]] = deque()
        for group in groups:
            ahead.append((group, [self._submit(stored) for stored in group]))
            if len(ahead) > 1:
                batch, futures = ahead.popleft()
                yield batch, [self._collect(f) for f in futures]
        while ahead:
            batch, futures = ahead.popleft()
            yield batch, [self._collect(f) for f in futures]


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: leave when the main process is gone (killed), so that no orphan
    lingers holding its pipes."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
