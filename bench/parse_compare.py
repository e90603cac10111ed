"""Japanese decoding and speed: mailbot.mail.parse (stdlib email + CP932 layer) against mail-parser.

Prints a table and writes bench/results/parse_compare.json. Needs the `bench` extra.
Run: .venv/bin/python bench/parse_compare.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import mailparser  # noqa: E402

from mailbot.mail.parse import parse  # noqa: E402
from tests.support.jpmail import XLSX, build  # noqa: E402

SUBJECT = "【容量市場向け事業者コード申請】株式会社髙橋電力①"
BODY = "容量市場向け事業者コードを申請します。\n㈱髙橋電力　参加区分：安定電源\n"
NAME = "事業者マスタ_髙橋.xlsx"
CASES = {
    "ISO-2022-JP 7bit, ①㈱髙": {},
    "Shift_JIS label, 髙": {"charset": "shift_jis", "transfer": "base64"},
    "ISO-2022-JP in QP": {"transfer": "quoted-printable"},
    "ISO-2022-JP, no charset": {"charset": "none"},
    "UTF-8 base64": {"charset": "utf-8", "transfer": "base64"},
    "name RFC 2231 continued": {"name_style": "rfc2231-continued"},
    "name RFC 2047 ISO-2022-JP": {"name_style": "rfc2047-jis"},
    "name RFC 2047 Shift_JIS": {"name_style": "rfc2047-sjis"},
}


def ours(raw: bytes) -> tuple[str, str, list[str]]:
    mail = parse(raw)
    return mail.subject, mail.text, [a.filename for a in mail.attachments]


def theirs(raw: bytes) -> tuple[str, str, list[str]]:
    mail = mailparser.parse_from_bytes(raw)
    return (
        mail.subject or "",
        mail.text_plain[0] if mail.text_plain else "",
        [a["filename"] for a in mail.attachments],
    )


def correct(result: tuple[str, str, list[str]]) -> bool:
    subject, text, names = result
    return subject == SUBJECT and "㈱髙橋電力" in text and names == [NAME]


def rate(fn, corpus: list[bytes]) -> float:
    start = time.perf_counter()
    for raw in corpus:
        fn(raw)
    return len(corpus) / (time.perf_counter() - start)


def main() -> None:
    rows = []
    for label, options in CASES.items():
        raw = build(SUBJECT, BODY, attachments=[(NAME, b"PK" * 15000, XLSX)], **options)
        rows.append(
            {"case": label, "mailbot": correct(ours(raw)), "mail-parser": correct(theirs(raw))}
        )
    corpus = [build(SUBJECT, BODY, attachments=[(NAME, b"PK" * 15000, XLSX)])] * 500
    speed = {"mailbot": round(rate(ours, corpus)), "mail-parser": round(rate(theirs, corpus))}
    print(f"{'case':32} {'mailbot':>8} {'mail-parser':>12}")
    for row in rows:
        print(
            f"{row['case']:32} {'ok' if row['mailbot'] else 'WRONG':>8} "
            f"{'ok' if row['mail-parser'] else 'WRONG':>12}"
        )
    print(f"{'mails/s (30 KB, one xlsx)':32} {speed['mailbot']:>8} {speed['mail-parser']:>12}")
    out = ROOT / "bench" / "results" / "parse_compare.json"
    out.write_text(
        json.dumps({"cases": rows, "mails_per_second": speed}, indent=2, ensure_ascii=False)
    )


if __name__ == "__main__":
    main()
