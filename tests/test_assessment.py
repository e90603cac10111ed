"""Supply-start assessment (SPEC §4, seed 004 §2.1.2–2.1.4): the rule, the market calendar, the
PDF notice read back with pdftotext, and objections against it, on a real SQLite file."""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest

from mailbot.config import RULES_DIR
from mailbot.context import Context
from mailbot.desk.decisions import decide
from mailbot.errors import ConfigError
from mailbot.intake.runner import process_pending
from mailbot.longterm.assessment import AssessmentError, assess_supply_start
from mailbot.longterm.market import load_market
from mailbot.longterm.supply_start import issue_supply_start_notice
from mailbot.outbox.send import flush_outbox, make_sender
from tests.support.desk import body_text, load_sources, make_desk, outbox, set_now
from tests.support.jpmail import build

RULES = RULES_DIR
MARKET = load_market(RULES / "market.toml")
SOURCE = {
    "source_id": "L0000000001",
    "area": "東京",
    "auction_year": 2023,
    "capacity_kw": 100000,
}
LONG = "youryou_rikuase_long@occto.or.jp"


def table(assessment) -> dict[tuple[int, str], bool]:
    return {(i.delivery_year, i.auction): i.affected for i in assessment.impacts}


def test_the_seeds_worked_example():
    a = assess_supply_start(MARKET, SOURCE, 2027, 2030, date(2024, 6, 10))
    assert table(a) == {
        (2027, "main"): True,
        (2027, "additional"): False,
        (2028, "main"): True,
        (2028, "additional"): False,
        (2029, "main"): False,
        (2029, "additional"): False,
    }
    assert a.result == "不合格" and a.direction == "後ろ倒し"
    price_2027 = MARKET.years[2027].prices["東京"]
    price_2028 = MARKET.years[2028].prices["東京"]
    assert a.total_penalty_yen == (price_2027 + price_2028) * 100000 * 5 // 100


def test_a_change_after_the_confirmation_deadline_hits_the_additional_auction_at_ten_percent():
    deadline = MARKET.years[2027].additional_confirmation_deadline
    a = assess_supply_start(MARKET, SOURCE, 2027, 2028, deadline + timedelta(days=1))
    [main, additional] = a.impacts
    assert not main.affected and additional.affected
    assert additional.rate_percent == 10
    assert additional.penalty_yen == MARKET.years[2027].prices["東京"] * 100000 // 10


def test_on_the_deadline_itself_it_is_still_the_main_auction():
    deadline = MARKET.years[2027].additional_confirmation_deadline
    a = assess_supply_start(MARKET, SOURCE, 2027, 2028, deadline)
    assert table(a) == {(2027, "main"): True, (2027, "additional"): False}


def test_a_curve_that_never_counted_the_source_is_not_affected():
    late_round = SOURCE | {"auction_year": 2025}  # results after the 2029 main auction was held
    a = assess_supply_start(MARKET, late_round, 2029, 2030, date(2026, 5, 1))
    [main, _additional] = a.impacts
    assert not main.affected
    assert "見込まれていない" in main.why
    assert a.result == "合格"


def test_moving_earlier_passes_and_the_period_never_starts_before_fy2027():
    """「2026年度以前への制度適用期間の前倒しはできません。」 (seed 004 §2.1 注1)"""
    a = assess_supply_start(MARKET, SOURCE, 2029, 2027, date(2025, 1, 10))
    assert a.result == "合格" and a.direction == "前倒し" and a.total_penalty_yen == 0
    assert a.period_start_fy == 2027 and not a.held_at_earliest
    b = assess_supply_start(MARKET, SOURCE, 2028, 2026, date(2024, 6, 10))
    assert b.result == "合格" and b.period_start_fy == 2027 and b.held_at_earliest
    with pytest.raises(AssessmentError, match="nothing to assess"):
        assess_supply_start(MARKET, SOURCE, 2027, 2027, date(2024, 6, 10))


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (('"四国" = 8000, ', ""), "no price for 四国"),
        (("main_auction_fy = 2023", "main_auction_fy = 2022"), "must be 2023"),
        (
            ('main_auction_held_on = "2023-11-15"', 'main_auction_held_on = "2023-13-01"'),
            "not a date",
        ),
    ],
)
def test_market_calendar_mistakes_are_named(tmp_path: Path, change, complaint):
    text = (RULES / "market.toml").read_text(encoding="utf-8").replace(*change, 1)
    path = tmp_path / "market.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=complaint):
        load_market(path)


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = make_desk(tmp_path, "2026-11-27T18:00")  # Friday evening
    load_sources(ctx, tmp_path)
    yield ctx
    ctx.close()


def pdf_of(raw: bytes) -> bytes:
    from email import message_from_bytes

    for part in message_from_bytes(raw).walk():
        if part.get_content_type() == "application/pdf":
            return part.get_payload(decode=True)
    raise AssertionError("no PDF attached")


def need_poppler() -> None:
    if shutil.which("pdftotext"):
        return
    why = "poppler-utils (pdftotext) is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} — and CI=true")
    pytest.skip(why)


def test_the_notice_waits_for_the_window_and_carries_every_field_of_the_seed(
    desk: Context, tmp_path: Path
):
    need_poppler()
    issued = issue_supply_start_notice(desk, "L0000000001", 2027, 2030, date(2024, 6, 10))
    [mail] = outbox(desk, "assessment_notice")
    assert mail["send_at"].startswith("2026-11-30T09:00")  # Monday morning
    path = tmp_path / "notice.pdf"
    path.write_bytes(pdf_of(mail["raw"]))
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout
    for expected in (
        "アセスメント結果通知書（供給力提供開始時期の遵守）",
        f"通知No {issued.number}",
        "通知日 2026年11月30日",
        "電力広域的運営推進機関",
        "〒135-0061 東京都江東区豊洲6-2-15",
        "企画部",
        "03-6632-0902",
        "事業者コード A1B2",
        "株式会社髙橋電力 御中",
        "不合格",
        "2024/06/10",
        "後ろ倒し",
        "2027年度",
        "影響あり",
        "影響なし",
        "L0000000001",
        "東京",
        "2023年度",
        "100,000",
        "5営業日以内",
    ):
        assert expected in text, expected
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True).stdout
    japanese = [line for line in fonts.splitlines() if "IPAex" in line or "Gothic" in line]
    assert japanese and all(" yes yes " in line for line in japanese)
    body = body_text(mail["raw"])
    assert "不合格" in body and "2026年12月7日まで" in body
    assert (
        "【長期脱炭素電源オークション/A1B2】供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立"
        in body
    )


def objection(
    code: str = "A1B2", received_on: str = "2026/11/30", drop: str = "", **kwargs
) -> bytes:
    body = (
        "以下のアセスメント結果について、異議申立を行います。\n\n"
        f"■アセスメント結果受領日 {received_on}\n■対象となる電源等\n"
        f"・事業者コード：{code}\n"
        "・事業者情報に登録している事業者名称および担当者名：株式会社髙橋電力　髙橋一郎\n"
        "・容量を提供する電源等の区分：安定電源\n・電源等識別番号：L0000000001\n"
        "・電源等の名称：髙橋火力発電所1号機\n・応札年度：2023年度\n"
        "■異議申立の内容\n変更申請日は2024/03/28であり、メインオークションの開催年度より前です。\n"
    )
    if drop:
        body = "\n".join(line for line in body.split("\n") if not line.startswith(f"・{drop}"))
    kwargs.setdefault("from_addr", "ichiro@takahashi-power.co.jp")
    return build(
        "【長期脱炭素電源オークション/A1B2】供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立",
        body,
        from_name="髙橋 一郎",
        to=LONG,
        **kwargs,
    )


def submit(ctx: Context, raw: bytes) -> dict:
    import hashlib

    ctx.store.save_raw(LONG, [(f"t:{hashlib.sha256(raw).hexdigest()}", raw)], ctx.now())
    [result] = process_pending(ctx)
    return ctx.store.case(result.case_id)


def send_notice(ctx: Context) -> dict:
    issue_supply_start_notice(ctx, "L0000000001", 2027, 2030, date(2024, 6, 10))
    set_now(ctx, "2026-11-30T09:00")
    flush_outbox(ctx, make_sender(ctx))
    notice = ctx.store.latest_notice("supply_start", "L0000000001")
    assert notice is not None
    return notice


def test_sending_the_notice_fixes_the_objection_deadline(desk: Context):
    notice = send_notice(desk)
    assert notice["notified_on"] == "2026-11-30"
    assert notice["objection_deadline"] == "2026-12-07"
    assert desk.store.case(notice["case_id"])["due"].startswith("2026-12-07")


def test_an_objection_in_time_is_received_and_staff_accept_it(desk: Context):
    send_notice(desk)
    set_now(desk, "2026-12-03T10:00")
    case = submit(desk, objection())
    assert case["procedure"] == "supply_start_objection"
    assert case["status"] == "complete", case["problems"]
    decide(desk, case["id"], "objection-accepted", reason="変更申請日を再確認しました", by="staff")
    set_now(desk, "2026-12-03T10:05")
    flush_outbox(desk, make_sender(desk))
    [result] = outbox(desk, "objection_result")
    assert result["state"] == "sent"
    reassessed = issue_supply_start_notice(
        desk, "L0000000001", 2027, 2030, date(2023, 3, 28), reassessment=True
    )
    assert reassessed.assessment.result == "合格"
    assert outbox(desk, "reassessment_notice")


def test_a_late_objection_is_refused_naming_the_deadline(desk: Context):
    send_notice(desk)
    set_now(desk, "2026-12-08T10:00")
    case = submit(desk, objection())
    assert case["status"] == "closed"
    [refusal] = outbox(desk, "refusal")
    text = body_text(refusal["raw"])
    assert "2026/12/07 まで" in text and "異議申立期限　　2026/12/07" in text
    assert "2026-12" not in text


def test_an_objection_whose_code_differs_from_the_subject_is_corrected(desk: Context):
    send_notice(desk)
    set_now(desk, "2026-12-01T10:00")
    case = submit(desk, objection(code="C3D4"))
    assert case["status"] == "needs_correction"
    assert "事業者コード" in [p["field"] for p in case["problems"]]


def test_an_objection_to_a_pass_is_refused(desk: Context):
    # a later start changed before 1 April of the main auction's year affects no curve: 合格
    issue_supply_start_notice(desk, "L0000000001", 2027, 2028, date(2023, 3, 31))
    set_now(desk, "2026-11-30T09:00")
    flush_outbox(desk, make_sender(desk))
    set_now(desk, "2026-12-01T10:00")
    case = submit(desk, objection())
    assert case["status"] == "closed"
    [refusal] = outbox(desk, "refusal")
    assert "合格" in body_text(refusal["raw"])


@pytest.mark.parametrize(
    ("changed_on", "from_fy", "to_fy", "affected"),
    [
        # 1 April of the 2027 main auction's fiscal year (2023) opens its window
        (date(2023, 4, 1), 2027, 2028, {(2027, "main")}),
        (date(2023, 3, 31), 2027, 2028, set()),
        # the confirmation deadline still counts for the main auction, the day after for the additional
        (date(2025, 9, 30), 2027, 2028, {(2027, "main")}),
        (date(2025, 10, 1), 2027, 2028, {(2027, "additional")}),
        # a multi-year move: each year on its own calendar
        (date(2025, 10, 1), 2027, 2031, {(2027, "additional"), (2028, "main"), (2029, "main")}),
        # an earlier start is never penalised
        (date(2025, 10, 1), 2030, 2027, set()),
    ],
)
def test_edge_cases_of_the_windows(changed_on, from_fy, to_fy, affected):
    a = assess_supply_start(MARKET, SOURCE, from_fy, to_fy, changed_on)
    assert {k for k, hit in table(a).items() if hit} == affected
    assert a.result == ("不合格" if affected else "合格")


def test_an_objection_missing_a_field_is_asked_to_add_it(desk: Context):
    send_notice(desk)
    set_now(desk, "2026-12-01T10:00")
    case = submit(desk, objection(drop="電源等の名称"))
    assert case["status"] == "needs_correction"
    assert "電源等の名称" in [p["field"] for p in case["problems"]]


def test_an_objection_without_a_notice_we_sent_is_corrected(desk: Context):
    set_now(desk, "2026-12-01T10:00")
    case = submit(desk, objection())
    assert case["status"] == "needs_correction"
    assert "電源等識別番号" in [p["field"] for p in case["problems"]]


def test_an_objection_from_outside_the_operator_is_held(desk: Context):
    send_notice(desk)
    set_now(desk, "2026-12-01T10:00")
    case = submit(desk, objection(from_addr="someone@elsewhere.example"))
    assert case["status"] == "held"
    [held] = outbox(desk, "held")
    assert "不合格" not in body_text(held["raw"])
