"""Rules files are parsed once per change on disk."""

from __future__ import annotations

import os
from pathlib import Path

from mailbot.rulefile import reread_on_change


def test_parsed_again_only_when_the_file_changes(tmp_path: Path):
    calls = []

    @reread_on_change
    def load(path: Path) -> str:
        calls.append(path)
        return path.read_text(encoding="utf-8")

    path = tmp_path / "rules.toml"
    path.write_text("a = 1", encoding="utf-8")
    first = load(path)
    assert load(path) is first and len(calls) == 1
    path.write_text("a = 22", encoding="utf-8")
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert load(path) == "a = 22" and len(calls) == 2
