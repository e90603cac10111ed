"""Rules files (`rules/*.toml`) are consulted for every mail; each is parsed again only when it
changes on disk, so staff can edit rules while `mailbot run` runs and a deadline-day backlog
does not re-read TOML a thousand times (it was a tenth of the processing time). Each file is
one `RulesFile` beside its parser; `doctor.rules_files()` lists them all."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

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


@functools.lru_cache(maxsize=64)
def _joined(rules_dir: Path, name: str) -> Path:
    """One Path per file: a new one each time (several a mail) had its string and hash made
    again before the file could even be stat'ed."""
    return rules_dir / name


@dataclass(frozen=True)
class RulesFile(Generic[T]):
    """One file of `rules/`: its name is spelled here and nowhere else, and every reader goes
    through `load`, which parses it again only when it changed on disk. `fallback` is the
    folder whose copy is read when a deployment's rules folder has none; `has_defaults` says
    the parser itself answers for a missing file."""

    name: str
    parse: Callable[[Path], T]
    fallback: Path | None = None
    has_defaults: bool = False
    _cached: Callable[[Path], T] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cached", reread_on_change(self.parse))

    def path(self, rules_dir: Path) -> Path:
        path = _joined(rules_dir, self.name)
        if self.fallback is not None and not path.exists():
            return self.fallback / self.name
        return path

    def may_be_missing(self) -> bool:
        return self.fallback is not None or self.has_defaults

    def load(self, rules_dir: Path) -> T:
        return self._cached(self.path(rules_dir))
