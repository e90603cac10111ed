"""A case page and `mailbot case` read what was kept when each mail was processed, never the
raw mail again (issue 25, point 7: eight 20 MB mails on one thread made every view of that
case parse 160 MB, 3.5 s and 249 MB).

The proof needs no timing: after processing, each stored raw mail is replaced (failure
injection) by a different mail. A view that parsed raw mail would show the replacement."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.desk.mailview import received_mails
from mailbot.desk.web.app import SHOWN_TEXT_CHARS
from tests import test_web
from tests.support.jpmail import build
from tests.test_queries import plans
from tests.test_web import HOSTILE, client, get, login

desk = test_web.desk

REPLACEMENT = build("差し替えた件名", "RAW-WAS-PARSED-AGAIN", from_addr="other@example.jp")


def database(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "data" / "mailbot.db")


def replace_raw(tmp_path: Path) -> None:
    with database(tmp_path) as db:
        db.execute("UPDATE messages SET raw = ?", (REPLACEMENT,))


def test_the_case_page_and_mailbot_case_show_what_was_kept(desk: Path, capsys):
    replace_raw(desk)
    c = login(client(), "sato")
    page = get(c, "/cases/4").text
    assert "RAW-WAS-PARSED-AGAIN" not in page and "差し替えた件名" not in page
    assert "本文です。" in page and "mallory@example.jp" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.xlsx" in page  # the kept file name, escaped
    assert "（14 バイト）" in page  # b"not a workbook"
    assert HOSTILE not in page
    capsys.readouterr()
    assert main(["--now", test_web.NOW, "case", "MB-000004"]) == 0
    text = capsys.readouterr().out
    assert "RAW-WAS-PARSED-AGAIN" not in text
    assert "本文です。" in text and "mallory@example.jp" in text
    assert f"添付: {HOSTILE}.xlsx (14 bytes, application/octet-stream)" in text


def test_a_mail_processed_before_step_19_is_parsed_once_then_kept(desk: Path):
    with database(desk) as db:
        db.execute("DELETE FROM mail_views WHERE case_id = 4")
    c = login(client(), "sato")
    first = get(c, "/cases/4").text
    assert "本文です。" in first
    with database(desk) as db:
        kept = db.execute("SELECT shown FROM mail_views WHERE case_id = 4").fetchone()[0]
    assert kept is not None and "mallory@example.jp" in kept
    replace_raw(desk)
    again = get(c, "/cases/4").text
    assert "本文です。" in again and "RAW-WAS-PARSED-AGAIN" not in again


def test_a_long_body_is_shown_cut_on_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    long = tmp_path / "long.eml"
    body = "あ" * (SHOWN_TEXT_CHARS + 10) + "おわり"
    long.write_bytes(build("ご相談", body, from_addr="long@example.jp", charset="utf-8"))
    assert main(["--now", test_web.NOW, "ingest", str(long)]) == 0
    ctx = test_web.context()
    try:
        from mailbot.desk.staff import add_staff

        add_staff(ctx, "sato", "佐藤", test_web.PASSWORDS["sato"])
    finally:
        ctx.close()
    page = get(login(client(), "sato"), "/cases/1").text
    assert "おわり" not in page
    assert f"先頭の {SHOWN_TEXT_CHARS:,} 文字のみ表示" in page


def test_a_view_reads_no_column_stored_after_a_raw_mail(desk: Path):
    """Every column of `messages` after `raw` is reached by walking the raw mail's overflow
    pages (reading `state` of eight 26 MB mails took 0.3 s): a view reads `mail_views`, and
    of `messages` only an index (which mails lack a view) and `mailbox`, stored before raw."""
    ctx = test_web.context()
    try:
        ran = plans(ctx, lambda: received_mails(ctx, 4))
    finally:
        ctx.close()
    touching = {sql: plan for sql, plan in ran.items() if "messages" in sql}
    assert len(touching) == 2, touching
    for sql, plan in touching.items():
        if "mail_views v JOIN messages m" in sql:
            assert "m.mailbox" in sql and "SEARCH m USING INTEGER PRIMARY KEY" in plan
        else:
            assert "SEARCH messages USING COVERING INDEX messages_by_case" in plan, plan
