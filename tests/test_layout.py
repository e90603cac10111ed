"""The repository's top level as the project card names it ("top-level: mailbot/, templates/,
rules/, data/, tests/, config.example.toml, pyproject.toml"): the rules and templates live once,
at the top, and the package reaches them through links, so the wheel ships that one copy
(scripts/wheel-check runs `mailbot init` and a whole cycle from the installed wheel)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.config import RULES_DIR, TEMPLATES_DIR

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("name", "used"), [("rules", RULES_DIR), ("templates", TEMPLATES_DIR)])
def test_rules_and_templates_live_once_at_the_top_level(name: str, used: Path) -> None:
    top = ROOT / name
    assert top.is_dir() and not top.is_symlink()
    link = ROOT / "mailbot" / name
    assert link.is_symlink() and link.resolve() == top
    assert used.resolve() == top
    assert any(top.rglob("*.toml" if name == "rules" else "*.j2"))


def test_the_project_card_s_top_level_is_there() -> None:
    for name in ("mailbot", "templates", "rules", "data", "tests"):
        assert (ROOT / name).is_dir(), name
    for name in ("config.example.toml", "pyproject.toml"):
        assert (ROOT / name).is_file(), name
