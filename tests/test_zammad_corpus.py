"""Zammad's parser test mails (a helpdesk's real-world corpus), field by field.

The corpus is not ours to commit: fetch Zammad's `test/data/mail` into a cache folder and point
`MAILBOT_ZAMMAD_CORPUS` at it (see bench/zammad_corpus.py). Every mismatch must be one of the
deliberate differences in tests/data/zammad_differences.toml, with its reason.
"""

from __future__ import annotations

import pytest

from bench.zammad_corpus import FIELDS, corpus_dir, deliberate, run

CORPUS = corpus_dir()
pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(),
    reason=f"Zammad's mail corpus is not at {CORPUS} (set MAILBOT_ZAMMAD_CORPUS to its test/data/mail)",
)


@pytest.fixture(scope="module")
def rows():
    pytest.importorskip("yaml", reason="PyYAML (the test extra) reads the corpus's .yml files")
    found = run(CORPUS)
    assert len(found) >= 100, f"only {len(found)} mails in {CORPUS}"
    return found


def test_every_difference_from_zammad_is_a_documented_one(rows) -> None:
    known = deliberate()
    unexplained = [
        (row.mail, name, row.ours[name], row.zammad[name])
        for row in rows
        for name in FIELDS
        if not row.matches[name] and name not in known.get(row.mail, {})
    ]
    assert unexplained == []


def test_the_table_of_differences_is_current(rows) -> None:
    by_mail = {row.mail: row for row in rows}
    stale = [
        (mail, name)
        for mail, fields in deliberate().items()
        for name in fields
        if mail not in by_mail or by_mail[mail].matches[name]
    ]
    assert stale == []


def test_no_replacement_character_where_zammad_has_none(rows) -> None:
    assert [r.mail for r in rows if r.replacement_chars and not r.zammad_replacement_chars] == []


def test_a_sender_wherever_zammad_found_one(rows) -> None:
    """Except where the From field names no single well-formed address (documented per mail)."""
    known = deliberate()
    assert [
        r.mail
        for r in rows
        if r.zammad["sender"] and not r.ours["sender"] and "sender" not in known.get(r.mail, {})
    ] == []
