"""Rules files (`rules/*.toml`) are consulted for every mail; each is parsed again only when it
changes on disk, so staff can edit rules while `mailbot run` runs and a deadline-day backlog
does not re-read TOML a thousand times (it was a tenth of the processing time)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def reread_on_change(loader: Callable[[Path], T]) -> Callable[[Path], T]:
    cache: dict[Path, tuple[tuple[int, int], T]] = {}
    lock = threading.Lock()

    @functools.wraps(loader)
    def load(path: Path) -> T:
        try:
            info = path.stat()
        except OSError:
            return loader(path)
        stamp = (info.st_mtime_ns, info.st_size)
        with lock:
            hit = cache.get(path)
            if hit is not None and hit[0] == stamp:
                return hit[1]
        value = loader(path)
        with lock:
            cache[path] = (stamp, value)
        return value

    return load
