"""Who else on the host can read the desk's files (issue 25, point 3). Run under the usual
umask 022, every file mailbot creates — the database and its -wal/-shm, the send journal and
its lock, backups, outgoing .eml files, report workbooks, a deployment's config — is 0600 and
every folder 0700; older files are narrowed when the database opens; doctor warns on wider
modes; the systemd unit sets UMask=0077."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.clock import Clock, parse_instant
from mailbot.config import load_config
from mailbot.context import Context
from mailbot.private import private_dir, private_file, write_private
from mailbot.store.journal import SendJournal
from tests.support.samples import SAMPLES_DIR

NOW = "2026-11-25T09:00"


@pytest.fixture
def umask_022() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def context() -> Context:
    return Context.open(load_config(None), Clock(parse_instant(NOW)))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def modes_under(folder: Path) -> dict[str, int]:
    found = {".": mode(folder)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = mode(path)
    return found


def wrong(found: dict[str, int], root: Path) -> dict[str, str]:
    return {
        name: f"{m:04o}"
        for name, m in found.items()
        if m != (0o700 if (root / name).is_dir() else 0o600)
    }


def doctor_row(capsys, name: str) -> tuple[str, str]:
    assert main(["doctor", "--offline"]) in (0, 1)
    for line in capsys.readouterr().out.splitlines():
        cells = line.split("\t")
        if cells[0] == name:
            return cells[1], cells[2]
    raise AssertionError(f"no {name} row")


def test_everything_the_desk_writes_is_its_own_under_umask_022(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, umask_022
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    files = [str(p) for p in sorted(SAMPLES_DIR.glob("*.eml"))]
    assert main(["--now", NOW, "deliver", *files]) == 0
    assert main(["--now", NOW, "run", "--once"]) == 0
    assert main(["--now", NOW, "report", "--xlsx", "out/queue.xlsx", "--html", "out/q.html"]) == 0
    assert main(["--now", NOW, "backup"]) == 0
    data = tmp_path / "data"
    # the -wal and -shm files exist while a connection is open (the last close removes them)
    with context() as ctx, SendJournal(ctx.store.path):
        ctx.store.case(1)
        found = modes_under(data)
    for name in (
        "mailbot.db",
        "mailbot.db-wal",
        "mailbot.db-shm",
        "mailbot.db.sends",
        "mailbot.db.send-lock",
    ):
        assert name in found, sorted(found)
    assert any(n.startswith("mailbot-backup-") for n in found)
    assert any(n.startswith("outbox/new/") and n.endswith(".eml") for n in found)
    assert wrong(found, data) == {}
    out = tmp_path / "out"
    assert wrong(modes_under(out), out) == {}
    capsys.readouterr()
    status, detail = doctor_row(capsys, "file modes")
    assert status == "ok", detail


def test_doctor_warns_on_wider_modes_and_opening_the_database_narrows_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, umask_022
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    assert main(["--now", NOW, "cases"]) == 0
    db = tmp_path / "data" / "mailbot.db"
    db.chmod(0o644)
    db.parent.chmod(0o755)
    capsys.readouterr()
    status, detail = doctor_row(capsys, "file modes")
    assert status == "warn"
    assert f"{db} 0644" in detail and f"{db.parent} 0755" in detail
    assert mode(db) == 0o644  # doctor changes nothing
    assert main(["--now", NOW, "cases"]) == 0
    assert mode(db) == 0o600
    assert mode(db.parent) == 0o755  # a folder that exists is the operator's to change
    capsys.readouterr()
    status, detail = doctor_row(capsys, "file modes")
    assert status == "warn" and str(db) not in detail.replace(f"{db.parent} ", "")


def test_a_database_an_older_version_left_readable_is_narrowed_with_its_wal_and_shm(
    tmp_path: Path, umask_022
):
    """Made the old way (sqlite3.connect under umask 022, WAL, a reader keeping -wal and
    -shm): all three 0644. Opening it as a Store narrows each."""
    from mailbot.store import Store

    db = tmp_path / "data" / "mailbot.db"
    db.parent.mkdir()
    old = sqlite3.connect(db)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE t (x)")
    old.execute("INSERT INTO t VALUES (1)")
    old.commit()
    companions = [db, db.with_name("mailbot.db-wal"), db.with_name("mailbot.db-shm")]
    assert [mode(p) for p in companions] == [0o644] * 3
    store = Store(db)
    try:
        assert [mode(p) for p in companions] == [0o600] * 3
    finally:
        store.close()
        old.close()


def test_mailbot_init_writes_a_private_deployment(tmp_path: Path, umask_022):
    target = tmp_path / "desk"
    assert main(["init", str(target)]) == 0
    assert wrong(modes_under(target), target) == {}


def test_the_helpers_give_exact_modes_whatever_the_umask(tmp_path: Path):
    """umask 0277 would leave a file its owner cannot write, 0 one anyone can."""
    for umask in (0o000, 0o022, 0o277):
        before = os.umask(umask)
        try:
            base = tmp_path / f"u{umask:o}"
            folder = private_dir(base / "a" / "b")
            write_private(folder / "f", b"x")
            private_file(folder / "db")
            found = modes_under(base)
        finally:
            os.umask(before)
        assert wrong(found, base) == {}, umask


def test_the_service_units_init_writes_set_a_private_umask(tmp_path: Path):
    assert main(["init", str(tmp_path / "desk")]) == 0
    units = sorted((tmp_path / "desk" / "deploy").glob("*.service"))
    assert units
    for unit in units:
        assert "\nUMask=0077\n" in unit.read_text(encoding="utf-8"), unit.name
