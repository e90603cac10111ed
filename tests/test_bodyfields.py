"""Reading the ■/・ fields participants type (seed 004 表2-1, 表3-1)."""

import pytest

from mailbot.config import RULES_DIR
from mailbot.forms.bodyfields import extract, load_body_fields, mentions

FIELDS = load_body_fields(RULES_DIR / "body_fields.toml")

SEED_STYLE = """電力広域的運営推進機関 ご担当者様
以下のアセスメント結果について、異議申立を行います。

■アセスメント結果受領日 2024/07/01
■対象となる電源等
・事業者コード：ABCD
・事業者情報に登録している事業者名称および担当者名：株式会社髙橋電力　山田太郎
・容量を提供する電源等の区分：安定電源
・電源等識別番号：SRC-0001
・電源等の名称：△△発電所
・応札年度：2023年度
■異議申立の内容
変更申請日は2024/03/28であり、
メインオークションの開催年度より前です。
--
山田
"""


def test_seed_template_filled_in():
    values = extract(SEED_STYLE, FIELDS["objection"])
    assert values == {
        "received_on": "2024/07/01",
        "operator_code": "ABCD",
        "operator_name_person": "株式会社髙橋電力　山田太郎",
        "category": "安定電源",
        "source_id": "SRC-0001",
        "source_name": "△△発電所",
        "auction_year": "2023年度",
        "content": "変更申請日は2024/03/28であり、\nメインオークションの開催年度より前です。",
    }


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("・事業者コード：ＡＢＣＤ", "ＡＢＣＤ"),
        ("事業者コード ABCD", "ABCD"),
        ("・事業者コード\n　ABCD", "ABCD"),
        ("- 事業者コード: ABCD", "ABCD"),
        ("・事業者コード＝ABCD", "ABCD"),
    ],
)
def test_value_spellings(line, value):
    assert extract(line, FIELDS["objection"])["operator_code"] == value


def test_quoted_lines_are_not_answers():
    text = "> ・事業者コード：ZZZZ\n・事業者コード：ABCD"
    assert extract(text, FIELDS["objection"])["operator_code"] == "ABCD"


def test_longest_label_wins():
    values = extract("・電源等の名称：○○発電所\n・電源等識別番号：X1", FIELDS["roadmap_reply"])
    assert values["source_name"] == "○○発電所"
    assert values["source_id"] == "X1"


def test_mentions_ignores_width_spaces_and_quotes():
    assert mentions(
        "・改訂後の脱炭素化ロードマップを提出します。", "改訂後の脱炭素化ロードマップを提出します"
    )
    assert not mentions(
        "> 本年度の脱炭素化ロードマップの改訂はありません。",
        "本年度の脱炭素化ロードマップの改訂はありません",
    )
