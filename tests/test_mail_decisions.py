"""Decisions by mail: staff answer the morning report mail with the filled workbook attached.
Applied only from `[staff] addresses`, only with dmarc=pass from our MTA, only in the report's
thread; the per-row result comes back by mail; nothing is applied twice."""

from __future__ import annotations

import io
import json
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mailbot.cli import main
from mailbot.config import DEFAULT_CONFIG
from tests.support.cycle import subject
from tests.support.jpmail import build
from tests.support.samples import SAMPLES_DIR

STAFF = "capacity-desk@occto.or.jp"
PASS = "mx.occto.or.jp; spf=pass smtp.mailfrom=occto.or.jp; dkim=pass; dmarc=pass header.from=occto.or.jp"
FAIL = "mx.occto.or.jp; spf=fail smtp.mailfrom=occto.or.jp; dkim=none; dmarc=fail header.from=occto.or.jp"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def cli(now: str, *args: str) -> int:
    return main(["--now", now, *args])


def sent(root: Path) -> list:
    folder = root / "data" / "outbox" / "new"
    return [
        message_from_bytes(p.read_bytes(), policy=policy.default)
        for p in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    ]


@pytest.fixture
def report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, bytes]:
    """The morning's mail in and the 08:30 report out: (root, report Message-ID, filled book)
    with issue-code chosen for MB-000001."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    (tmp_path / "config.toml").write_text(
        DEFAULT_CONFIG + '\n[trust]\nauthserv_ids = ["mx.occto.or.jp"]\n', encoding="utf-8"
    )
    names = ("01_operator_code_complete.eml", "02_operator_code_flawed.eml")
    assert cli("2026-11-25T08:40", "deliver", *(str(SAMPLES_DIR / n) for n in names)) == 0
    assert cli("2026-11-25T08:45", "run", "--once") == 0
    mail = next(m for m in sent(tmp_path) if "未処理案件レポート" in subject(m.as_bytes()))
    part = next(p for p in mail.iter_attachments())
    book = load_workbook(io.BytesIO(part.get_payload(decode=True)))
    ws = book["未処理案件"]
    header = [c.value for c in ws[1]]
    for row in ws.iter_rows(min_row=2):
        if row[header.index("受付番号")].value == "MB-000001":
            row[header.index("判断")].value = "issue-code"
    out = io.BytesIO()
    book.save(out)
    return tmp_path, mail["Message-ID"], out.getvalue()


def answer(
    root: Path, report_id: str | None, book: bytes, *, sender: str = STAFF, auth: str = PASS
) -> None:
    raw = build(
        "RE: 【mailbot】未処理案件レポート（2026/11/25）",
        "判断欄に記入しました。反映をお願いします。",
        from_addr=sender,
        from_name="受付窓口 佐藤",
        to="code@occto.or.jp",
        in_reply_to=report_id,
        references=(report_id,) if report_id else (),
        attachments=[("未処理案件_20261125.xlsx", book, XLSX)],
        headers={"Authentication-Results": auth},
    )
    path = root / f"answer-{len(list(root.glob('answer-*')))}.eml"
    path.write_bytes(raw)
    assert cli("2026-11-25T10:00", "deliver", str(path)) == 0
    assert cli("2026-11-25T10:01", "run", "--once") == 0


def status_of(capsys: pytest.CaptureFixture, case_id: int) -> str:
    capsys.readouterr()
    assert cli("2026-11-25T10:02", "cases", "--json") == 0
    return next(c for c in json.loads(capsys.readouterr().out) if c["id"] == case_id)["status"]


def test_a_staff_reply_with_the_filled_report_is_applied_and_answered(report, capsys):
    root, report_id, book = report
    answer(root, report_id, book)
    assert status_of(capsys, 1) in ("decided", "closed")
    notices = [m for m in sent(root) if "事業者コードのお知らせ" in subject(m.as_bytes())]
    assert [m["To"] for m in notices] == ["ichiro@takahashi-denryoku.co.jp"]
    results = [m for m in sent(root) if "判断の反映結果" in subject(m.as_bytes())]
    assert [m["To"] for m in results] == [STAFF]
    assert "反映 1件／見送り 0件" in subject(results[0].as_bytes())
    body = results[0].get_payload(decode=True).decode("utf-8")
    assert "MB-000001" in body and "反映しました" in body
    capsys.readouterr()
    assert cli("2026-11-25T10:03", "case", "MB-000001") == 0
    assert f"staff:{STAFF}" in capsys.readouterr().out

    # the same workbook once more (a second reply): every row is stale, nothing applied twice
    answer(root, report_id, book)
    assert len([m for m in sent(root) if "事業者コードのお知らせ" in subject(m.as_bytes())]) == 1
    results = [m for m in sent(root) if "判断の反映結果" in subject(m.as_bytes())]
    assert "反映 0件／見送り 1件" in subject(results[-1].as_bytes())


@pytest.mark.parametrize(
    ("why", "sender", "auth", "in_thread"),
    [
        ("DMARC failed at our MTA", STAFF, FAIL, True),
        ("no DMARC verdict at all", STAFF, "mx.occto.or.jp; spf=pass", True),
        (
            "a pass stamped by a stranger",
            STAFF,
            "evil.example; dmarc=pass header.from=occto.or.jp",
            True,
        ),
        (
            "a pass for another domain",
            STAFF,
            "mx.occto.or.jp; dmarc=pass header.from=evil.example",
            True,
        ),
        ("not a [staff] address", "someone@occto.or.jp", PASS, True),
        ("not in the report's thread", STAFF, PASS, False),
    ],
)
def test_a_workbook_from_anyone_else_is_not_applied(report, capsys, why, sender, auth, in_thread):
    root, report_id, book = report
    answer(root, report_id if in_thread else None, book, sender=sender, auth=auth)
    assert status_of(capsys, 1) == "complete", why
    assert not [m for m in sent(root) if "事業者コードのお知らせ" in subject(m.as_bytes())]
    assert not [m for m in sent(root) if "判断の反映結果" in subject(m.as_bytes())]


def test_a_second_code_for_one_company_is_refused_by_mail_too(report, capsys):
    """Seed 000 参考資料: 「※ライセンス区分が同一の場合、事業者コードを複数取得する必要はありません。」
    The register learns of 髙橋電力's 発電 code after the report was made: the row staff mail
    back is refused in the same words `decide` uses, and no code notice goes out."""
    root, report_id, book = report
    csv = root / "takahashi.csv"
    csv.write_text(
        "事業者コード,事業者名称,ドメイン名,連絡者メール,ライセンス区分\n"
        "7777,株式会社髙橋電力,takahashi-denryoku.co.jp,ichiro@takahashi-denryoku.co.jp,発電\n",
        encoding="utf-8",
    )
    assert cli("2026-11-25T09:00", "operators", "import", str(csv)) == 0
    answer(root, report_id, book)
    assert status_of(capsys, 1) == "complete"
    assert not [m for m in sent(root) if "事業者コードのお知らせ" in subject(m.as_bytes())]
    [result] = [m for m in sent(root) if "判断の反映結果" in subject(m.as_bytes())]
    body = result.get_payload(decode=True).decode("utf-8")
    assert "既に事業者コード 7777" in body
    assert "ライセンス区分が同一の場合、事業者コードを複数取得する必要はありません" in body
