"""The README is a contract: every command its command table names runs (`mailbot … --help`
exits 0 and knows each option the row names), and every decision action it names — in the
decisions text, as `decide` examples anywhere, with its Japanese label — is one of
`mailbot/states.py`. Issue 23 found `roadmap-correction` named there, which the CLI refuses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.states import ACTIONS

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
_WORD = re.compile(r"[a-z][a-z-]*")
_OPTION = re.compile(r"--[a-z][a-z-]*")


def _table_rows() -> list[str]:
    table = README.split("| command | what it does |")[1].split("\n\n")[0]
    return [line for line in table.splitlines()[2:] if line.startswith("| `")]


def _commands() -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(command words, options) of each backticked command in the first cell of each row:
    `mailbot staff add LOGIN --name …` → (("staff", "add"), ("--name", …)); the words
    stop at the first placeholder (CASE, FILE.eml), option or bracket."""
    found = []
    for row in _table_rows():
        cell = row.split(" | ")[0]
        for span in re.findall(r"`([^`]+)`", cell):
            tokens = span.removeprefix("mailbot ").split()
            words: list[str] = []
            for token in tokens:
                if not _WORD.fullmatch(token):
                    break
                words.append(token)
            if words:
                found.append((tuple(words), tuple(_OPTION.findall(span))))
    return found


COMMANDS = _commands()


def test_the_table_was_read():
    names = {" ".join(words) for words, _ in COMMANDS}
    assert {
        "run",
        "decide",
        "decisions apply",
        "staff add",
        "staff list",
        "assess roadmap",
    } <= names


@pytest.mark.parametrize(("words", "options"), COMMANDS, ids=[" ".join(w) for w, _ in COMMANDS])
def test_every_command_the_readme_names_exists(words, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*words, "--help"])
    assert exit_.value.code == 0, words
    usage = capsys.readouterr().out
    for option in options:
        assert option in usage, (words, option)


def _decision_text() -> str:
    return README.split("Actions have Japanese labels")[1].split("`decide` answers")[0]


def test_every_action_in_the_decisions_text_is_an_action_with_that_label():
    """「`issue-code` コード発番・通知, `reject` お断り（理由を通知）, …」: each id named is one
    `decide` takes, followed by its own label, and every action is named."""
    named = dict(re.findall(r"`([a-z][a-z-]*)`\s+(\S+?)(?:,|\s\(|$)", _decision_text()))
    assert set(named) == set(ACTIONS), named
    for action, label in named.items():
        assert label == ACTIONS[action][0], (action, label)


def test_every_decide_example_names_an_action():
    examples = re.findall(r"mailbot decide MB-\d+ ([^\s`]+)", README)
    assert examples
    for action in examples:
        assert action in ACTIONS or any(action == a[0] for a in ACTIONS.values()), action
