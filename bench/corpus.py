"""A deadline-day mix of mails, built as Japanese clients build them (tests/support/jpmail.py): mostly
事業者コード applications with the Excel form, some grid-code applications, questions, HTML
mail; ISO-2022-JP, Shift_JIS and UTF-8; about 30 KB each. Every sender is distinct, as on a real
deadline day, so no per-sender reply budget is hit."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

from tests.support.forms import operator_form, plant_form, to_bytes
from tests.support.jpmail import TOKYO, XLSX, build

BODY = "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『{category}』です。\n"
GRID = (
    "添付の通り、『容量市場向けアグリゲータ用系統コード』を申請します。\n"
    "参加区分は、『発動指令電源（電源）』です。\n"
)
QUOTE = (
    "> 電力広域的運営推進機関 容量市場 受付窓口 ご担当者様　いつもお世話になっております。①㈱髙\n"
)
CHARSETS = (("iso-2022-jp", "7bit"), ("shift_jis", "base64"), ("utf-8", "base64"))
CATEGORIES = ("安定電源", "変動電源（単独）", "発動指令電源（電源）")


def _padding(rng: random.Random, target: int) -> str:
    """Quoted history, as a reply chain carries, up to about `target` bytes of text."""
    lines = []
    size = 0
    while size < target:
        line = QUOTE.replace("①", str(rng.randint(1, 9)))
        lines.append(line)
        size += len(line.encode("utf-8"))
    return "".join(lines)


def forms(rng: random.Random, variants: int = 8) -> list[bytes]:
    """A few distinct filled-in workbooks, reused (building one costs more than reading it)."""
    out = []
    for n in range(variants):
        fields = {
            "事業者名称": f"株式会社髙橋電力{n}",
            "事業者名略称": f"髙橋{n}_容",
            "ドメイン名": f"d{n}.example.jp",
            "連絡者メール": f"user@d{n}.example.jp",
        }
        out.append(to_bytes(operator_form(licenses=("発電",), fields=fields)))
    return out


def mails(count: int, seed: int = 2026) -> Iterator[bytes]:
    rng = random.Random(seed)
    books = forms(rng)
    plant = to_bytes(plant_form())
    start = datetime(2026, 11, 25, 9, 0, tzinfo=TOKYO)
    for n in range(count):
        charset, transfer = CHARSETS[n % len(CHARSETS)]
        kind = rng.random()
        common = {
            "from_addr": f"applicant{n}@company{n}.example.jp",
            "from_name": f"申請者{n} 髙橋",
            "charset": charset,
            "transfer": transfer,
            "message_id": f"<bench.{seed}.{n}@company{n}.example.jp>",
            "date": start + timedelta(seconds=n),
        }
        padding = _padding(rng, rng.randint(8_000, 16_000))
        if kind < 0.75:
            yield build(
                f"【容量市場向け事業者コード申請】株式会社{n}",
                BODY.format(category=rng.choice(CATEGORIES)) + "\n" + padding,
                attachments=[(f"事業者マスタ申込書_{n}.xlsx", rng.choice(books), XLSX)],
                name_style=rng.choice(("rfc2231", "rfc2047-jis")),
                **common,
            )
        elif kind < 0.85:
            yield build(
                "【容量市場向けアグリゲータ用系統コード申請】",
                GRID + "\n" + padding,
                attachments=[("発電所マスタ申込書.xlsx", plant, XLSX)],
                **common,
            )
        elif kind < 0.95:
            yield build(
                "容量市場の手続きについての質問",
                "ご担当者様\n\n申込方法についてお教えください。\n\n" + padding * 2,
                **common,
            )
        else:
            yield build(
                "【容量市場向け事業者コード申請】",
                "<html><body><p>添付の通り、『容量市場向け事業者コード』を申請します。</p>"
                f"<p>参加区分は、『安定電源』です。</p><pre>{padding}</pre></body></html>",
                html=True,
                **common,
            )
