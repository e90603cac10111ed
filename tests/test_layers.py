"""The layering of SPEC's flow, enforced: an import runs only down the layers of
scripts/import-graph, and the README's architecture graph is the one the code has today."""

import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def graph():
    loader = importlib.machinery.SourceFileLoader(
        "import_graph", str(ROOT / "scripts/import-graph")
    )
    spec = importlib.util.spec_from_loader("import_graph", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_every_import_runs_down_the_layers(graph):
    assert graph.violations() == []


def test_an_upward_or_sideways_import_is_caught(graph, tmp_path, monkeypatch):
    for name, text in {
        "mailbot/__init__.py": "",
        "mailbot/store/__init__.py": "",
        "mailbot/store/sqlite.py": "from mailbot.outbox.send import flush_outbox\n",
        "mailbot/outbox/__init__.py": "",
        "mailbot/outbox/send.py": "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from mailbot.desk.jobs import run_due_jobs\n",
        "mailbot/desk/__init__.py": "",
        "mailbot/desk/jobs.py": "",
        "mailbot/outcome.py": "from mailbot.routing import Classification\n",
        "mailbot/routing.py": "",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(graph, "ROOT", tmp_path)
    monkeypatch.setattr(graph, "PACKAGE", tmp_path / "mailbot")
    found = graph.violations()
    assert len(found) == 2, found
    assert "mailbot/store/sqlite.py:1: mailbot.store.sqlite (store) imports" in found[1]
    assert "mailbot/outcome.py:1: mailbot.outcome (outcome) imports mailbot.routing" in found[0]


def test_readme_shows_the_import_graph_of_today(graph):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert graph.block() in readme, "run scripts/import-graph --write README.md"
