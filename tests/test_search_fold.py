"""The search folding of issue 26: 異体字 from the ja-itaiji table, half-width kana and case,
the same function over the index and the query; the index of an older database refolded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailbot.store.searchfold import case_number, fold, variant_table
from mailbot.store.sqlite import Store, _fold_search_index
from tests.support.schema import database_before


@pytest.mark.parametrize(
    ("variant", "standard"),
    [
        # issue 26: "folding 異体字 (髙/高, 﨑/崎, 德/徳 …)"
        ("髙橋", "高橋"),
        ("宮﨑", "宮崎"),
        ("德永", "徳永"),
        # and the rest of the table, not a hand list: old and variant forms of names
        ("渡邊", "渡辺"),
        ("渡邉", "渡辺"),
        ("齋藤", "斎藤"),
        ("澤田", "沢田"),
        ("濱田", "浜田"),
        ("廣瀬", "広瀬"),
        ("栁田", "柳田"),
        ("ｴﾅｼﾞｰ", "エナジー"),
        ("ＡＢＣ電力", "abc電力"),
    ],
)
def test_variants_fold_to_the_standard_form(variant, standard):
    assert fold(variant) == fold(standard) == standard


def test_standard_kanji_stay_apart_and_the_table_is_the_library_s():
    assert fold("埼玉") != fold("崎玉")  # two standard kanji are two characters
    assert fold("途中") == "途中" and fold("岸") == "岸"
    assert len(variant_table()) > 5000


@pytest.mark.parametrize(
    ("term", "number"),
    [("mb-000082", 82), ("82", 82), ("mb82", 82), ("mb-0", None), ("高橋", None)],
)
def test_a_term_names_a_case_by_its_number(term, number):
    assert case_number(fold(term)) == number


def test_an_older_index_is_folded_by_its_schema_step(tmp_path: Path):
    path = tmp_path / "old.db"
    database_before(path, _fold_search_index)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO cases (id, procedure, status, received_at, updated_at)"
        " VALUES (1, 'unrecognized', 'unrecognized', '2026-11-25T09:00:00+09:00',"
        " '2026-11-25T09:00:00+09:00')"
    )
    conn.execute(
        "INSERT INTO case_search (rowid, subject, sender, company, body, attachments)"
        " VALUES (1, '髙橋電力のご相談', 'ﾀｶﾊｼ@EXAMPLE.JP', '', '', '')"
    )
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        assert store.search_cases("高橋電力") == {1}
        assert store.search_cases("たかはし") == set()
        assert store.search_cases("タカハシ@example") == {1}
    finally:
        store.close()
