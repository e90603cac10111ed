"""Files and folders only the desk's own user may read: every file mailbot creates is 0600 and
every folder 0700, whatever the umask.

The database holds every participant's mail and the staff's password and session hashes; the
outbox, backups and report workbooks hold the same mail. Under the usual umask 022 they were
0644 in a 0755 data/, readable by every account on the host. The modes are given at creation
(`os.open` with the mode, `mkdir` with the mode), then set exactly with chmod, since a umask
only takes bits away (umask 0277 would make a file its owner cannot write). SQLite creates a
database's -wal, -shm and -journal files with the database file's own mode, so a database
created here keeps its companions private too. Existing files of ours are narrowed
(`narrow`); existing folders are left as they are and `mailbot doctor` reports a wider one
(`too_open`), since a folder may be shared on purpose (a deployment folder, /srv).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Creates `path` and its missing parents, each 0700; returns `path`. A folder that
    exists is kept as it is. Raises OSError when one cannot be made, as `mkdir(parents=True)`
    does: FileExistsError when `path` is a file, NotADirectoryError when a parent is."""
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    if not current.is_dir() and not missing:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(current))
    if not current.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(missing[-1]))
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(folder, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Makes sure `path` exists as a file only its owner reads: an empty one is created 0600
    (its folder 0700 when missing), one that exists is narrowed (`narrow`). Returns `path`.
    Used before SQLite opens a database, so that the file and its -wal/-shm are private."""
    private_dir(path.parent)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        narrow(path)
        return path
    try:
        os.fchmod(handle, FILE_MODE)
    finally:
        os.close(handle)
    return path


def narrow(path: Path) -> None:
    """Takes the group and other bits off an existing file this process owns (a database,
    its -wal/-shm, made by an older version under umask 022); a missing file or one owned by
    someone else is left alone."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(found.st_mode):
        return
    if found.st_uid == os.geteuid() and stat.S_IMODE(found.st_mode) & 0o077:
        os.chmod(path, stat.S_IMODE(found.st_mode) & 0o700)


def _opener(path: str, flags: int) -> int:
    """os.open giving a new file FILE_MODE exactly; an existing file of ours becomes
    FILE_MODE too, one owned by another account is left as it is."""
    handle = os.open(path, flags, FILE_MODE)
    try:
        if os.fstat(handle).st_uid == os.geteuid():
            os.fchmod(handle, FILE_MODE)
    except OSError:
        os.close(handle)
        raise
    return handle


def open_private(path: Path, mode: str = "wb", **kwargs: Any) -> IO[Any]:
    """`open(path, mode)` for a file that is 0600 from its first byte (its folder created
    0700 when missing); an existing file of ours opened through it becomes 0600 too."""
    private_dir(path.parent)
    return open(path, mode, opener=_opener, **kwargs)


def write_private(path: Path, data: bytes) -> None:
    """Writes `data` to `path` as a 0600 file (replacing what was there)."""
    with open_private(path, "wb") as handle:
        handle.write(data)


def too_open(path: Path) -> str | None:
    """`path`'s mode when group or others may read, write or enter it (as `0644`), else
    None; None for a path that does not exist."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    return f"{mode:04o}" if mode & 0o077 else None
