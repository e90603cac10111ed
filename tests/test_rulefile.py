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


def test_every_shipped_rules_file_has_one_loader_in_the_registry():
    from mailbot.config import RULES_DIR
    from mailbot.doctor import rules_files

    names = [f.name for f in rules_files()]
    assert len(names) == len(set(names))
    assert sorted(names) == sorted(p.name for p in RULES_DIR.glob("*.toml"))


def test_no_module_spells_a_rules_file_name_outside_its_registry_entry():
    """A file name is written once, in its RulesFile; readers go through `.load(rules_dir)`."""
    import ast

    import mailbot
    from mailbot.doctor import rules_files

    names = {f.name for f in rules_files()}
    spelled = []
    for path in Path(mailbot.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {
            id(call.args[0])
            for call in ast.walk(tree)
            if isinstance(call, ast.Call)
            and getattr(call.func, "id", "") == "RulesFile"
            and call.args
        }
        spelled += [
            f"{path.name}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names and id(node) not in defined
        ]
    assert spelled == []


def test_a_deployment_without_its_own_copy_reads_the_fallback(tmp_path: Path):
    from mailbot.rulefile import RulesFile

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    (shipped / "x.toml").write_text("shipped", encoding="utf-8")
    own = tmp_path / "own"
    own.mkdir()
    rules = RulesFile("x.toml", lambda p: p.read_text(encoding="utf-8"), fallback=shipped)
    assert rules.load(own) == "shipped"
    (own / "x.toml").write_text("own", encoding="utf-8")
    assert rules.load(own) == "own"
