"""Shared field formats (SPEC §2), rows quoting seed 000 where it has an example."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.forms import fields


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2016, 2, 1, 0, 0), date(2016, 2, 1)),  # an Excel date cell
        (date(2020, 3, 1), date(2020, 3, 1)),
        ("2016/02/01", date(2016, 2, 1)),  # 事業者マスタ申込書記載例 契約開始日
        ("9999/12/31", date(9999, 12, 31)),  # 記載例 適用終了日
        (
            "2020/03/01",
            date(2020, 3, 1),
        ),  # 発電所マスタ: 契約開始日および適用開始日は【2020/03/01】
        ("2020/3/1", date(2020, 3, 1)),
        ("2020-03-01", date(2020, 3, 1)),
        ("２０２０／０３／０１", date(2020, 3, 1)),
        ("２０２０－０３－０１", date(2020, 3, 1)),
        ("2020年3月1日", date(2020, 3, 1)),
        ("２０２０年３月１日", date(2020, 3, 1)),
        ("令和2年3月1日", date(2020, 3, 1)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("令和５年４月１日", date(2023, 4, 1)),
        ("平成28年2月1日", date(2016, 2, 1)),
        (" 2016/02/01 0:00:00", date(2016, 2, 1)),  # a date cell typed as text
        ("2016/02/01（月）", date(2016, 2, 1)),
        ("20160201", date(2016, 2, 1)),
        ("2016/02/30", None),
        ("2016/13/01", None),
        ("02/01/2016", None),
        ("2016/02/01 から", None),
        ("未定", None),
        ("", None),
        (None, None),
        (True, None),
        (42401, None),  # a bare serial number is not trusted as a date
    ],
)
def test_parse_date(value: object, expected: date | None) -> None:
    assert fields.parse_date(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2023, 2023),
        (2023.0, 2023),
        ("2023", 2023),
        ("2023年度", 2023),
        ("２０２３年度", 2023),
        ("2023 年度", 2023),
        ("令和5年度", 2023),
        ("令和５年度", 2023),
        ("令和元年度", 2019),
        ("FY2023", 2023),
        ("2023年度上期", None),
        ("23年度", None),
        ("1899", None),
        (None, None),
        (False, None),
    ],
)
def test_parse_fiscal_year(value: object, expected: int | None) -> None:
    assert fields.parse_fiscal_year(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("999,999,999", 999_999_999),  # 【999,999,999】と記載してください
        ("999,999,999kW", 999_999_999),  # 同時最大受電電力 999,999,999kW
        ("999,999,999 kW", 999_999_999),
        ("９９９，９９９，９９９ｋＷ", 999_999_999),
        ("999999999", 999_999_999),
        (999_999_999, 999_999_999),
        (999_999_999.0, 999_999_999),
        ("1,000.0", 1000),
        (1.5, None),
        ("99,99,999", None),
        ("約1000kW", None),
        ("-5", None),
        (True, None),
        (None, None),
    ],
)
def test_parse_int_amount(value: object, expected: int | None) -> None:
    assert fields.parse_int_amount(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("安定電源", "安定電源"),
        ("変動電源（単独）", "変動電源（単独）"),
        ("変動電源(単独)", "変動電源（単独）"),
        ("変動電源［アグリゲート］", "変動電源（アグリゲート）"),
        ("変動電源 【アグリゲート】", "変動電源（アグリゲート）"),
        ("発動指令電源（電源）", "発動指令電源（電源）"),
        ("『発動指令電源（電源）』", "発動指令電源（電源）"),
        ("発電指令電源（電源の場合）", "発動指令電源（電源）"),  # seed's 取得要否 table
        ("発電指令電源（DRを活用する場合）", "発動指令電源（DR）"),
        ("発動指令電源（ＤＲ）", "発動指令電源（DR）"),
        ("発動指令電源（D R）", "発動指令電源（DR）"),  # 参考資料: 発動指令電源（D R）
        ("発動指令電源（電源／DR混在）", "発動指令電源（電源／DR混在）"),
        ("発動指令電源（電源/DR混在）", "発動指令電源（電源／DR混在）"),  # 参考資料
        ("発動指令電源（電源/D R混在）", "発動指令電源（電源／DR混在）"),  # 参考資料
        ("発動指令電源(電源・ＤＲ混在)", "発動指令電源（電源／DR混在）"),
        ("発動指令電源提供者（電源）", "発動指令電源（電源）"),  # 参考資料 例
        ("・安定電源", "安定電源"),
        ("発動指令電源", None),
        ("変動電源", None),
        ("安定電源、変動電源（単独）", None),
        ("DR", None),
        (None, None),
    ],
)
def test_participation_category(text: object, expected: str | None) -> None:
    assert fields.participation_category(text) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "添付の通り、『容量市場向け事業者コード』を申請します。\n"
            "参加区分は、『発動指令電源（電源）』です。",
            ["発動指令電源（電源）"],
        ),
        ("参加区分は、『発動指令電源（電源／DR混在）』です。", ["発動指令電源（電源／DR混在）"]),
        ("参加区分は変動電源（アグリゲート）です。", ["変動電源（アグリゲート）"]),
        ("参加区分：発電指令電源（ＤＲ）", ["発動指令電源（DR）"]),
        (
            "安定電源と変動電源（単独）で参加します。",
            ["安定電源", "変動電源（単独）"],
        ),
        ("発動指令電源（電源）、発動指令電源（電源）", ["発動指令電源（電源）"]),
        ("参加区分は未定です。", []),
        ("", []),
    ],
)
def test_find_participation_categories(body: str, expected: list[str]) -> None:
    assert fields.find_participation_categories(body) == expected


def test_every_canonical_category_finds_itself_alone() -> None:
    for category in fields.PARTICIPATION_CATEGORIES:
        assert fields.find_participation_categories(f"参加区分は、『{category}』です。") == [
            category
        ]
        assert fields.participation_category(category) == category


@given(st.text(max_size=200))
def test_category_search_never_raises(text: str) -> None:
    for found in fields.find_participation_categories(text):
        assert found in fields.PARTICIPATION_CATEGORIES


@pytest.mark.parametrize(
    ("text", "width"),
    [
        ("広域機関", 8),
        ("KOIKI", 5),
        ("ｺｳｲｷ", 4),  # half-width katakana count 1
        ("コウイキ", 8),
        ("広域電力(株)", 12),
        ("広域電力（株）", 14),
        ("", 0),
    ],
)
def test_name_width(text: str, width: int) -> None:
    assert fields.name_width(text) == width


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("広" * 25, True),  # 名称は最大25文字
        ("広" * 26, False),
        ("A" * 50, True),  # （全て半角であれば50文字）
        ("A" * 51, False),
        ("ｱ" * 50, True),
        ("広" * 24 + "AB", True),
        ("広" * 24 + "ABC", False),
        ("", False),
        ("   ", False),
        (None, False),
    ],
)
def test_check_operator_name(name: object, ok: bool) -> None:
    message = fields.check_operator_name(name)
    assert (message is None) == ok
    if message:
        assert "事業者名称" in message and message.endswith("。")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("広域機関_容", True),  # 例：広域機関_容
        ("広域機関＿容", True),  # full-width underscore: accepted (NFKC folds it)
        ("広域機関容", False),  # 末尾に「_容」を付けてください
        ("_容広域機関", False),
        ("広域電力株式会社_容", True),  # 10 characters with the suffix
        ("広域電力株式会社本社_容", False),  # 12: 略称は最大10文字
        ("ABCDEFGHI_容", False),  # 11 characters, even half-width
        ("", False),
        (None, False),
    ],
)
def test_check_short_name(name: object, ok: bool) -> None:
    message = fields.check_short_name(name)
    assert (message is None) == ok
    if message:
        assert message.startswith("事業者名略称") and message.endswith("。")


def test_short_name_lists_both_faults_at_once() -> None:
    message = fields.check_short_name("広域電力株式会社本社です")
    assert message is not None and "_容" in message and "10文字" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("135-0061", "135-0061"),
        ("1350061", "135-0061"),
        ("〒135-0061", "135-0061"),
        ("１３５－００６１", "135-0061"),
        ("135ー0061", "135-0061"),
        ("135‐0061", "135-0061"),
        ("135−0061", "135-0061"),
        ("135 - 0061", "135-0061"),
        ("135-006", None),
        ("1350-061", None),
        ("東京都", None),
        (None, None),
    ],
)
def test_postal_code(value: object, expected: str | None) -> None:
    assert fields.normalise_postal_code(value) == expected
    assert (fields.check_postal_code(value) is None) == (expected is not None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("03-1234-5678", "03-1234-5678"),
        ("０３－１２３４－５６７８", "03-1234-5678"),
        ("03(1234)5678", "03(1234)5678"),
        ("090-1234-5678", "090-1234-5678"),
        ("0312345678", "0312345678"),
        ("+81-3-1234-5678", "+81-3-1234-5678"),
        ("0120-123-456", "0120-123-456"),
        ("1234-5678", None),
        ("03-1234-5678 内線12", None),
        ("03-1234-567", None),
        ("+81-03-1234-5678", None),
        (None, None),
    ],
)
def test_phone(value: object, expected: str | None) -> None:
    assert fields.normalise_phone(value) == expected


def test_fax_is_optional_phone_is_not() -> None:
    assert fields.check_phone(None, "連絡者FAX番号", required=False) is None
    assert fields.check_phone(None) == "連絡者電話番号が記載されておりません。"
    assert "連絡者FAX番号" in (fields.check_phone("12", "連絡者FAX番号", required=False) or "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("taro@example.co.jp", "taro@example.co.jp"),
        ("Taro.Yamada@Example.CO.JP", "Taro.Yamada@example.co.jp"),
        ("taro＠example.co.jp", "taro@example.co.jp"),
        ("mailto:taro@example.co.jp", "taro@example.co.jp"),
        ("taro..yamada.@docomo.ne.jp", "taro..yamada.@docomo.ne.jp"),
        ("code@occto.or.jp", "code@occto.or.jp"),  # the seed's own address
        ("taro@example", None),
        ("taro@@example.co.jp", None),
        ("taro example@example.co.jp", None),
        ("taro@-example.co.jp", None),
        ("山田@example.co.jp", None),
        ("", None),
        (None, None),
    ],
)
def test_email(value: object, expected: str | None) -> None:
    assert fields.normalise_email(value) == expected
    assert fields.is_email(value) == (expected is not None)
    assert (fields.check_email(value) is None) == (expected is not None)


@pytest.mark.parametrize(
    ("email", "domain", "matches"),
    [
        ("taro@example.co.jp", "example.co.jp", True),
        ("taro@EXAMPLE.co.jp", "Example.CO.JP", True),
        ("taro@tokyo.example.co.jp", "example.co.jp", True),
        ("taro@example.co.jp", "@example.co.jp", True),
        ("taro@example.co.jp", "https://www.example.co.jp/", True),
        ("taro@badexample.co.jp", "example.co.jp", False),
        ("taro@example.co.jp.evil.com", "example.co.jp", False),
        ("taro@example.co.jp", "tokyo.example.co.jp", False),
        ("taro@gmail.com", "example.co.jp", False),
        ("not-an-address", "example.co.jp", False),
        ("taro@example.co.jp", None, False),
    ],
)
def test_domain_matches(email: object, domain: object, matches: bool) -> None:
    assert fields.domain_matches(email, domain) == matches


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("1234", True),  # the seed writes 1234
        ("ABCD", True),
        ("A1B2", True),
        ("１２３４", True),
        ("abcd", False),
        ("12345", False),  # the 5-character form carries the area digit
        ("123", False),
        ("12-3", False),
        (1234, True),
        (None, False),
    ],
)
def test_is_operator_code(code: object, ok: bool) -> None:
    assert fields.is_operator_code(code) == ok


@pytest.mark.parametrize(
    ("text", "area", "digit"),
    [
        ("北海道", "北海道", 1),  # 北海道:1、東北:2、東京:3、中部:4、北陸:5
        ("東北", "東北", 2),
        ("東京", "東京", 3),
        ("中部", "中部", 4),
        ("北陸", "北陸", 5),
        ("関西", "関西", 6),  # 関西:6、中国:7、四国:8、九州:9
        ("中国", "中国", 7),
        ("四国", "四国", 8),
        ("九州", "九州", 9),
        ("東京エリア", "東京", 3),
        ("東　京", "東京", 3),
        ("沖縄", "沖縄", None),  # only a ネガワット area, no digit
        ("沖縄エリア", "沖縄", None),
        ("東京電力パワーグリッド", None, None),
        ("関東", None, None),
        (None, None, None),
    ],
)
def test_areas(text: object, area: str | None, digit: int | None) -> None:
    assert fields.area_name(text) == area
    assert fields.area_digit(text) == digit


def test_area_digits_are_the_seeds() -> None:
    assert [fields.AREA_DIGITS[a] for a in fields.AREAS] == list(range(1, 10))
    assert fields.NEGAWATT_AREAS[-1] == "沖縄" and len(fields.NEGAWATT_AREAS) == 10


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("発電", "発電"),
        ("小売", "小売"),
        ("区分なし（需要抑制）", "区分なし（需要抑制）"),
        ("区分なし(需要抑制)", "区分なし（需要抑制）"),  # 記載例 writes it half-width
        ("区分なし ( 需要抑制 )", "区分なし（需要抑制）"),
        ("区分無し（需要抑制）", "区分なし（需要抑制）"),
        ("区分なし", "区分なし（需要抑制）"),
        ("発電事業者", "発電"),
        ("小売電気事業者", "小売"),
        ("送配電", None),
        ("発電・小売", None),
        (None, None),
    ],
)
def test_license_category(text: object, expected: str | None) -> None:
    assert fields.license_category(text) == expected
