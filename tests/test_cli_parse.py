"""`mailbot parse FILE.eml [--json]` (SPEC §9): what the pipeline reads from one mail, stored
nowhere."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mailbot.cli import main
from tests.support.jpmail import XLSX, build

SUBJECT = "【容量市場向け事業者コード申請】株式会社髙橋電力①"
BODY = "容量市場向け事業者コードを申請します。\n㈱髙橋電力\n"
NAME = "事業者マスタ_髙橋.xlsx"
FORM = b"PK\x03\x04" + bytes(range(256))


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded default config, run from an empty directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    return tmp_path


def parse_json(path: Path, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert main(["--now", "2026-11-25T10:00", "parse", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_parse_prints_every_field_and_stores_nothing(desk: Path, capsys) -> None:
    eml = desk / "application.eml"
    eml.write_bytes(build(SUBJECT, BODY, attachments=[(NAME, FORM, XLSX)], message_id="<a1@x.jp>"))
    found = parse_json(eml, capsys)
    assert {k: found[k] for k in ("subject", "from", "from_name", "to", "message_id")} == {
        "subject": SUBJECT,
        "from": "taro@example.co.jp",
        "from_name": "山田 太郎",
        "to": ["code@occto.or.jp"],
        "message_id": "<a1@x.jp>",
    }
    assert found["body"].strip() == BODY.strip()
    assert found["attachments"] == [{"name": NAME, "size": len(FORM), "content_type": XLSX}]
    assert found["procedure"] == "operator_code_application"
    assert found["date"].startswith("20")
    assert not (desk / "data").exists()


def test_parse_classifies_a_reply_by_its_thread_as_the_pipeline_does(desk: Path, capsys) -> None:
    first = desk / "application.eml"
    first.write_bytes(build(SUBJECT, BODY, message_id="<a1@x.jp>"))
    assert main(["--now", "2026-11-25T10:00", "ingest", str(first)]) == 0
    reply = desk / "reply.eml"
    reply.write_bytes(build("追加の質問です", "よろしくお願いします。\n", in_reply_to="<a1@x.jp>"))
    database = desk / "data" / "mailbot.db"
    count = "SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM events)"
    before = sqlite3.connect(database).execute(count).fetchone()
    found = parse_json(reply, capsys)
    assert (found["procedure"], found["case_id"]) == ("operator_code_application", 1)
    assert sqlite3.connect(database).execute(count).fetchone() == before


def test_parse_as_text_for_a_terminal(desk: Path, capsys) -> None:
    eml = desk / "question.eml"
    eml.write_bytes(build("ご質問", "容量市場について教えてください。\n"))
    assert main(["parse", str(eml)]) == 0
    out = capsys.readouterr().out
    assert "subject: ご質問\n" in out
    assert "procedure: unrecognized\n" in out
    assert out.rstrip().endswith("容量市場について教えてください。")
