"""Mails that are no procedure of seed 004 but ask for something the seed says is done another
way: evidence of the supply start sent before the desk asked for it (§2 注2), and a change of
the 供給力提供開始時期 asked for by mail (§2.1.1). Recognised by words (`rules/longterm_topics.toml`)
so that the sender is told what the seed says instead of the generic guidance.

A mail that names a procedure of seed 004 (`procedure_words`: an objection, a roadmap answer)
raises no topic: it is that procedure's mail under a wrong subject, and the generic guidance,
which lists the subjects, is what serves it.

Pure: takes the subject and the sender's own text, returns the topics they raise.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mailbot.config import RULES_DIR
from mailbot.errors import ConfigError
from mailbot.rulefile import RulesFile
from mailbot.text import nfkc

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Topic:
    """`all_of`: groups of words; the mail raises the topic when it has one word of each."""

    id: str
    name: str
    seed: str
    all_of: tuple[tuple[str, ...], ...]

    def raised_by(self, text: str) -> bool:
        return all(any(_fold(word) in text for word in group) for group in self.all_of)


def _fold(text: str) -> str:
    return _SPACE.sub("", nfkc(text))


@dataclass(frozen=True)
class TopicRules:
    topics: tuple[Topic, ...]
    procedure_words: tuple[str, ...]


def _word_groups(value: object) -> tuple[tuple[str, ...], ...]:
    """`all_of` as written: a list of word lists. A flat list of words would make each word a
    group of its characters, and an empty word would be in every mail: both would match
    mails that raise nothing."""
    if not isinstance(value, list) or not all(isinstance(group, list) for group in value):
        raise TypeError('all_of is a list of word lists: all_of = [["証憑"], ["提出"]]')
    groups = tuple(tuple(str(w) for w in group) for group in value)
    if any(not _fold(w) for group in groups for w in group):
        raise ValueError("all_of has an empty word, which every mail holds")
    return groups


def load_topics(path: Path) -> TopicRules:
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
        words = d.get("procedure_words", [])
        if not isinstance(words, list):
            raise TypeError("procedure_words is a list of words")
        procedure_words = tuple(str(w) for w in words)
        topics = tuple(
            Topic(
                id=str(t["id"]),
                name=str(t["name"]),
                seed=str(t.get("seed", "")),
                all_of=_word_groups(t["all_of"]),
            )
            for t in d.get("topics", [])
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(str(path), f"not valid topics: {exc}") from exc
    for topic in topics:
        if not re.fullmatch(r"[a-z0-9_]+", topic.id):
            raise ConfigError(str(path), f"topic id {topic.id!r}: use a-z, 0-9 and _ only")
        if not topic.all_of or not all(topic.all_of):
            raise ConfigError(str(path), f"topic {topic.id}: all_of needs non-empty word groups")
    return TopicRules(topics, procedure_words)


def topics_raised(rules: TopicRules, subject: str, own_text: str) -> list[Topic]:
    """The topics the mail raises, in the file's order; none when it names a procedure
    (`procedure_words`). Quoted text is not the sender's own and is left out by the caller
    (`own_text`)."""
    text = _fold(f"{subject}\n{own_text}")
    if any(_fold(word) in text for word in rules.procedure_words):
        return []
    return [topic for topic in rules.topics if topic.raised_by(text)]


# A deployment whose rules/ predates this file reads the shipped one (`mailbot init DIR` again
# adds its own copy, keeping every file staff edited).
TOPIC_RULES = RulesFile("longterm_topics.toml", load_topics, fallback=RULES_DIR)
