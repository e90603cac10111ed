"""Seed 004's remaining words (issue 23): what a provider in the long-term auction is told about
its roadmap, its supply start and its objections, each rule next to the seed line it comes from
(copied from seeds/004_*.txt)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from mailbot.clock import Clock, parse_instant
from mailbot.config import DEFAULT_CONFIG, RULES_DIR, load_config, parse_config
from mailbot.context import Context
from mailbot.desk.decisions import decide
from mailbot.errors import ConfigError, PermanentSendError, TransientSendError
from mailbot.forms.workbook import load_grids
from mailbot.longterm.assessment import AssessmentError
from mailbot.longterm.outbound import start_mismatch_inquiry, start_roadmap_campaign
from mailbot.longterm.roadmap import load_roadmap_rules, sheet_problems, uncovered_premises
from mailbot.longterm.roadmap_assessment import issue_roadmap_notice
from mailbot.longterm.supply_start import issue_supply_start_notice
from mailbot.longterm.topics import load_topics
from mailbot.outbox.send import SmtpSender, flush_outbox, make_sender
from mailbot.store.registers import import_operators
from mailbot.store.registers import source as find_source
from tests.support.cycle import Desk, maildir_desk, subject
from tests.support.desk import (
    SOURCES_CSV,
    as_message,
    body_text,
    desk_with_operators,
    load_sources,
    outbox,
    set_now,
    submit_to,
)
from tests.support.forms import operator_form, roadmap_workbook, to_bytes
from tests.support.jpmail import XLSX, build
from tests.support.samples import TAKAHASHI
from tests.support.servers import LONG, SmtpCapture, free_port

ROADMAP_RULES = load_roadmap_rules(RULES_DIR / "roadmap.toml")
CODE = "code@occto.or.jp"
PROVIDER = "ichiro@takahashi-power.co.jp"
ROADMAP_SUBJECT = "【長期脱炭素電源オークション/A1B2】脱炭素化ロードマップの改訂有無の回答"
TARGET = (  # 表3-1 ■対象となる電源, filled in for the sample source
    "■対象となる電源\n・事業者コード：A1B2\n"
    "・事業者情報に登録している事業者名称および担当者名：株式会社髙橋電力　髙橋一郎\n"
    "・容量を提供する電源等の区分：安定電源\n・電源等識別番号：L0000000001\n"
    "・電源等の名称：髙橋火力発電所1号機\n・応札年度：2023年度\n"
)
REVISED = (
    "電力広域的運営推進機関 担当者様\n・改訂後の脱炭素化ロードマップを提出します。\n\n" + TARGET
)
UNREVISED = (
    "電力広域的運営推進機関 担当者様\n・本年度の脱炭素化ロードマップの改訂はありません。\n\n"
    + TARGET
)
ROADMAP_FILE = "L2023_A1B2_髙橋火力発電所1号機_D3_R1.xlsx"


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = desk_with_operators(tmp_path, now="2027-02-02T09:30")
    load_sources(ctx, tmp_path)
    yield ctx
    ctx.close()


def roadmap_answer(body: str, attachments: list | None = None, **kwargs: object) -> bytes:
    return build(
        ROADMAP_SUBJECT, body, from_addr=PROVIDER, to=LONG, attachments=attachments or [], **kwargs
    )


# --- point 1: the five minimum 前提条件 items written the seed's way (図3-3 注) ------------------

# 図3-3 注: 「注) 以下の5つの項目は最低限記載すること。 ・落札電源に係る建設工事の期間（環境アセス
# の期間を含む） ・各段階での脱炭素化技術、脱炭素比率、各脱炭素比率での運転開始時期 ・脱炭素比率を
# 向上させる改修投資を行う場合の長期脱炭素電源オークションでの落札の時期 ・使用する脱炭素燃料(水素・
# アンモニアはグレー・ブルー・グリーンの種別を含む。…) ・前提条件」 — each item as the form lists it,
# followed by what the provider plans.
SEED_ITEMS = (
    (
        "落札電源に係る建設工事の期間（環境アセスの期間を含む）",
        "・落札電源に係る建設工事の期間（環境アセスの期間を含む）：2024年度〜2028年度",
    ),
    (
        "各段階での脱炭素化技術、脱炭素比率、各脱炭素比率での運転開始時期",
        "・各段階での脱炭素化技術、脱炭素比率、各脱炭素比率での運転開始時期："
        "2030年度に水素10%混焼で運転開始、2040年度に水素50%混焼",
    ),
    (
        "脱炭素比率を向上させる改修投資を行う場合の長期脱炭素電源オークションでの落札の時期",
        "・脱炭素比率を向上させる改修投資を行う場合の長期脱炭素電源オークションでの落札の時期："
        "2035年度の応札を予定",
    ),
    (
        "使用する脱炭素燃料（水素・アンモニアはグレー・ブルー・グリーンの種別を含む）",
        "・使用する脱炭素燃料(水素・アンモニアはグレー・ブルー・グリーンの種別を含む。合成メタンは"
        "原料となる水素のグレー・ブルー・グリーンの種別を含む。なお、合成メタンは、原料となるCO2の"
        "情報（調達先、回収方法等）についても、今後の政策動向によっては、記載を求める場合があります。）："
        "ブルー水素、2040年代よりグリーン水素",
    ),
    ("前提条件", "・前提条件：国内水素サプライチェーンの整備、水素価格の低下"),
)
SEED_WAY = "\n".join(line for _item, line in SEED_ITEMS)


@pytest.mark.parametrize(("item", "line"), SEED_ITEMS, ids=[f"item{i}" for i in range(1, 6)])
def test_each_minimum_item_written_after_its_own_wording_is_covered(item, line):
    """「注) 以下の5つの項目は最低限記載すること。」 (図3-3): an item written after its own wording,
    as the form lists it, is that item; the fifth item's wording is literally 「・前提条件」."""
    assert item not in uncovered_premises(ROADMAP_RULES, "<前提条件>\n" + line)


def test_the_five_items_written_the_seeds_way_pass():
    assert uncovered_premises(ROADMAP_RULES, "<前提条件>\n" + SEED_WAY) == []
    grids, _ = load_grids(roadmap_workbook(SEED_WAY))
    assert sheet_problems(ROADMAP_RULES, grids) == []


def test_the_fifth_items_wording_alone_is_still_not_content():
    """「・前提条件」 with nothing after it names the item but says nothing of it."""
    others = "\n".join(line for _item, line in SEED_ITEMS[:4])
    assert uncovered_premises(ROADMAP_RULES, f"<前提条件>\n{others}\n・前提条件") == ["前提条件"]


def test_a_roadmap_written_the_seeds_way_gets_a_receipt(desk: Context):
    """The answer of 表3-1 with a roadmap whose 前提条件 lists the five items the seed's way is
    accepted (no 不備), so it can reach the assessment."""
    raw = roadmap_answer(REVISED, [(ROADMAP_FILE, roadmap_workbook(SEED_WAY), XLSX)])
    case = submit_to(desk, raw, LONG)
    assert case["status"] == "complete", case["problems"]
    assert [m["kind"] for m in outbox(desk)] == ["receipt"]


# --- point 7: `assess supply-start` checks its arguments against the register -------------------
# The rule (no seed line states it): the change assessed starts from the registered
# 供給力提供開始時期 (registered FY2027 for L0000000001); the new start is recorded when the notice
# is planned; one change gets one notice, a second only after an accepted objection.


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> Desk:
    desk = maildir_desk(tmp_path, monkeypatch, capsys)
    path = tmp_path / "sources.csv"
    path.write_text(SOURCES_CSV, encoding="utf-8-sig")
    desk.out("2026-11-30T08:00", "sources", "import", str(path))
    return desk


def assess(desk: Desk, now: str, from_fy: str, to_fy: str = "2030", *extra: str) -> int:
    desk.capsys.readouterr()
    return desk.cli(
        now,
        "assess",
        "supply-start",
        "L0000000001",
        "--from-fy",
        from_fy,
        "--to-fy",
        to_fy,
        "--changed-on",
        "2024/06/10",
        *extra,
    )


def registered_start() -> int:
    ctx = Context.open(load_config(None), Clock(parse_instant("2026-12-01T10:00")))
    try:
        found = find_source(ctx.store, "L0000000001")
        assert found is not None
        return int(found["supply_start_fy"])
    finally:
        ctx.close()


def test_a_start_other_than_the_registered_one_is_refused(cli: Desk, tmp_path: Path):
    assert assess(cli, "2026-11-30T10:00", "2028") == 5
    err = cli.capsys.readouterr().err
    assert "FY2027" in err and "--from-fy 2028" in err
    assert cli.mails("アセスメント結果通知書") == []
    assert registered_start() == 2027


def test_the_new_start_is_registered_when_the_notice_is_planned(cli: Desk, tmp_path: Path):
    assert assess(cli, "2026-11-30T10:00", "2027") == 0
    assert registered_start() == 2030
    assert assess(cli, "2026-12-01T10:00", "2030", "2031") == 0  # the next change starts there


def test_the_same_assessment_twice_mails_one_notice(cli: Desk):
    assert assess(cli, "2026-11-30T10:00", "2027") == 0
    assert assess(cli, "2026-11-30T10:05", "2027") == 5
    assert "assessed already" in cli.capsys.readouterr().err
    cli.run("2026-11-30T10:06")  # `assess` only queues: the run sends
    assert len(cli.mails("アセスメント結果通知書")) == 1


def test_a_reassessment_needs_an_accepted_objection(cli: Desk):
    assert assess(cli, "2026-11-30T10:00", "2027") == 0
    assert assess(cli, "2026-12-01T10:00", "2027", "2030", "--reassessment") == 5
    assert "objection-accepted" in cli.capsys.readouterr().err
    assert cli.mails("再審査") == []


# --- point 5: 受付日時 is the mail's own arrival, on every receipt -------------------------------
# The receipt says when *this* mail came in: an answer joins the case of our inquiry (opened
# when we asked), a corrected mail joins the case of the first one.


def receipt_time(ctx: Context) -> str:
    [line] = [
        line
        for line in body_text(outbox(ctx, "receipt")[-1]["raw"]).splitlines()
        if line.startswith("■受付日時")
    ]
    return line


def test_a_roadmap_answer_is_received_when_it_came_not_when_we_asked(desk: Context):
    set_now(desk, "2027-02-01T10:00")
    start_roadmap_campaign(desk, date(2027, 2, 26))
    set_now(desk, "2027-02-02T09:30")
    case = submit_to(desk, roadmap_answer(UNREVISED), LONG)
    assert case["status"] == "complete", case["problems"]
    assert receipt_time(desk) == "■受付日時　　2027年2月2日（火） 09:30"


def test_a_corrected_answer_is_received_when_the_correction_came(desk: Context):
    set_now(desk, "2027-02-02T09:30")
    first = submit_to(desk, roadmap_answer(REVISED), LONG)  # no roadmap attached
    assert first["status"] == "needs_correction"
    [correction] = outbox(desk, "correction")
    set_now(desk, "2027-02-03T14:05")
    again = submit_to(
        desk,
        roadmap_answer(
            REVISED,
            [(ROADMAP_FILE, roadmap_workbook(), XLSX)],
            in_reply_to=correction["message_id"],
        ),
        LONG,
    )
    assert again["id"] == first["id"] and again["status"] == "complete", again["problems"]
    assert receipt_time(desk) == "■受付日時　　2027年2月3日（水） 14:05"


def test_a_mismatch_answer_is_received_when_it_came(desk: Context):
    set_now(desk, "2027-02-01T10:00")
    case_id = start_mismatch_inquiry(desk, "L0000000001", "燃料種が一致しません。")
    [inquiry] = outbox(desk, "mismatch_inquiry")
    set_now(desk, "2027-02-02T11:20")
    raw = build(
        "Re: 脱炭素化ロードマップの不一致に係るお問い合わせ",
        "電源等情報の燃料種を修正いたしました。",
        from_addr=PROVIDER,
        to=LONG,
        in_reply_to=inquiry["message_id"],
    )
    case = submit_to(desk, raw, LONG)
    assert case["id"] == case_id and case["status"] == "complete", case["problems"]
    assert receipt_time(desk) == "■受付日時　　2027年2月2日（火） 11:20"


# --- point 6: objection results go to the registered address, the objector in Cc ---------------
# 「異議申立の妥当性が認められた場合、本機関より異議申立に係る審査に合格した旨の電子メールが、
# 事業者情報登録時に容量提供事業者が容量市場システムに登録したメールアドレスに送付されます。」
# (seed 004 §2.1.4; §3.1.7 the same for roadmaps)

COLLEAGUE = "jiro@takahashi-power.co.jp"
OBJECTION_SUBJECT = "【長期脱炭素電源オークション/A1B2】供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立"
OBJECTION_BODY = (  # 表2-1 記載項目, filled in
    "電力広域的運営推進機関 ご担当者様\n以下のアセスメント結果について、異議申立を行います。\n\n"
    "■アセスメント結果受領日 2027/02/02\n■対象となる電源等\n・事業者コード：A1B2\n"
    "・事業者情報に登録している事業者名称および担当者名：株式会社髙橋電力　髙橋次郎\n"
    "・容量を提供する電源等の区分：安定電源\n・電源等識別番号：L0000000001\n"
    "・電源等の名称：髙橋火力発電所1号機\n・応札年度：2023年度\n"
    "■異議申立の内容\n変更申請日は2023/03/28であり、メインオークションの開催年度より前です。\n"
)
TAKAHASHI_OPERATOR = (
    "事業者コード,事業者名称,事業者名略称,郵便番号,住所,ドメイン名,連絡者メール,ライセンス区分\n"
    "A1B2,株式会社髙橋電力,髙橋電力_容,101-0021,東京都千代田区外神田1-1-1,takahashi-power.co.jp,"
    f"{PROVIDER},発電\n"
)


def objection_judged(ctx: Context, tmp_path: Path, action: str, reason: str) -> dict:
    """A 不合格 notice sent to the registered address, an objection from a colleague at the
    provider's domain, and staff's decision: the outbox row of the result."""
    path = tmp_path / "takahashi.csv"
    path.write_text(TAKAHASHI_OPERATOR, encoding="utf-8")
    import_operators(ctx.store, path, ctx.now())
    issue_supply_start_notice(ctx, "L0000000001", 2027, 2030, date(2024, 6, 10))
    flush_outbox(ctx, make_sender(ctx))
    set_now(ctx, "2027-02-03T10:00")
    raw = build(
        OBJECTION_SUBJECT, OBJECTION_BODY, from_addr=COLLEAGUE, from_name="髙橋 次郎", to=LONG
    )
    case = submit_to(ctx, raw, LONG)
    assert case["status"] == "complete", case["problems"]
    decide(ctx, case["id"], action, reason=reason, by="佐藤")
    [result] = outbox(ctx, "objection_result")
    return result


@pytest.mark.parametrize("action", ["objection-accepted", "objection-rejected"])
def test_the_result_goes_to_the_registered_address_with_the_objector_in_cc(
    desk: Context, tmp_path: Path, action: str
):
    result = objection_judged(desk, tmp_path, action, "変更申請日を確認しました。")
    assert result["recipient"] == PROVIDER
    head = as_message(result["raw"])
    assert head["To"] == PROVIDER and head["Cc"] == COLLEAGUE
    assert "髙橋 一郎 様" in body_text(result["raw"])


def test_the_registered_objector_is_not_copied_to_themselves(desk: Context, tmp_path: Path):
    issue_supply_start_notice(desk, "L0000000001", 2027, 2030, date(2024, 6, 10))
    flush_outbox(desk, make_sender(desk))
    set_now(desk, "2027-02-03T10:00")
    raw = build(OBJECTION_SUBJECT, OBJECTION_BODY, from_addr=PROVIDER, to=LONG)
    case = submit_to(desk, raw, LONG)
    decide(desk, case["id"], "objection-accepted", reason="", by="佐藤")
    [result] = outbox(desk, "objection_result")
    assert result["recipient"] == PROVIDER and as_message(result["raw"])["Cc"] is None


def test_a_copied_party_is_an_smtp_envelope_recipient(tmp_path: Path, smtp_server: SmtpCapture):
    """A Cc header alone delivers nothing: the copy goes out as its own RCPT TO."""
    config = DEFAULT_CONFIG.split("[outgoing]")[0] + smtp_server.outgoing_config()
    config += '\n[staff]\naddresses = ["capacity-desk@occto.or.jp"]\n'
    ctx = Context.open(
        parse_config(config, "<test>", tmp_path), Clock(parse_instant("2027-02-02T09:30"))
    )
    try:
        load_sources(ctx, tmp_path)
        objection_judged(ctx, tmp_path, "objection-accepted", "")
        set_now(ctx, "2027-02-03T10:05")
        flush_outbox(ctx, make_sender(ctx))
        [delivered] = [
            m for m in smtp_server.messages if "異議申立に係る審査結果" in subject(m.data)
        ]
        assert delivered.rcpt_tos == [PROVIDER, COLLEAGUE]
    finally:
        ctx.close()


class RefusingHandler:
    """aiosmtpd refusing RCPT TO for some addresses (their reply code), recording the
    envelopes it took."""

    def __init__(self, refused: dict[str, str]) -> None:
        self.refused = refused
        self.envelopes: list[list[str]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address in self.refused:
            return self.refused[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(list(envelope.rcpt_tos))
        return "250 OK"


NO_USER = "550 5.1.1 no such user"
MAILBOX_FULL = "452 4.2.2 mailbox full"


@pytest.mark.parametrize(
    ("refused", "outcome"),
    [
        ({COLLEAGUE: NO_USER}, None),  # the copy refused: the mail reached its To, it is sent
        ({PROVIDER: NO_USER}, PermanentSendError),  # the To refused: failed, nobody has it
        # the To refused for now: tried again later, so the copy must not go now (every retry
        # would mail it again)
        ({PROVIDER: MAILBOX_FULL}, TransientSendError),
    ],
    ids=["cc-refused", "to-refused", "to-refused-for-now"],
)
def test_a_refused_recipient_of_a_copied_mail(tmp_path: Path, refused: dict[str, str], outcome):
    handler = RefusingHandler(refused)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        config = parse_config(
            DEFAULT_CONFIG.split("[outgoing]")[0]
            + f'[outgoing]\nbackend = "smtp"\nhost = "127.0.0.1"\nport = {controller.port}\n'
            'security = "none"\ntimeout = 10\n',
            "<test>",
            tmp_path,
        )
        raw = (
            f"From: youryou_rikuase_long@occto.or.jp\r\nTo: {PROVIDER}\r\nCc: {COLLEAGUE}\r\n"
            "Subject: x\r\n\r\nx\r\n"
        ).encode()
        results: dict[int, object] = {}
        SmtpSender(config.outgoing, "youryou_rikuase_long@occto.or.jp").send_many(
            [("<1@x>", PROVIDER, raw)], results.__setitem__
        )
    finally:
        controller.stop()
    assert handler.envelopes == ([] if PROVIDER in refused else [[PROVIDER]])
    assert results[0] is None if outcome is None else isinstance(results[0], outcome)


# --- points 16, 17: mails seed 004 answers though they are no procedure -------------------------

PDF = "application/pdf"


def mail_to_the_desk(subject_text: str, body: str, attachments: list | None = None) -> bytes:
    return build(subject_text, body, from_addr=PROVIDER, to=LONG, attachments=attachments or [])


def test_evidence_sent_before_the_request_is_not_received(desk: Context):
    """「なお、証憑等の審査は制度適用期間開始前年度の所定の審査期間に実施するため、本機関からの
    提出依頼より前に証憑等を提出しても、本機関では受領できないことにご注意ください。」
    (seed 004 §2 注2)"""
    raw = mail_to_the_desk(
        "供給力提供開始の証憑の提出について（L0000000001）",
        "髙橋火力発電所1号機は供給力の提供を開始しましたので、証憑を添付にて提出いたします。",
        [("運転開始報告書.pdf", b"%PDF-1.4 evidence", PDF)],
    )
    case = submit_to(desk, raw, LONG)
    assert case["status"] == "unrecognized"
    assert "供給力提供開始の証憑の提出" in case["reason"]
    [reply] = outbox(desk, "topic_guidance")
    assert outbox(desk, "guidance") == []
    text = body_text(reply["raw"])
    assert "本機関からの提出依頼より前に" in text and "本機関では受領できません" in text
    assert "制度適用期間開始の前年度" in text


def test_a_start_timing_change_asked_for_by_mail_is_pointed_to_the_system(desk: Context):
    """「容量提供開始事業者が、供給力の提供開始時期を変更したい場合は『容量市場業務マニュアル 長期
    脱炭素電源オークション（電源等差替・市場退出・契約の変更・登録情報の変更業務編）』の『4.3 事業者・
    電源等情報・期待容量の変更』を参照して、供給力提供開始時期の変更を行ってください。」 (seed 004
    §2.1.1); 「…変更のタイミングに応じてペナルティを科します。」 (§2 <ペナルティ概要>, 図2-2)"""
    raw = mail_to_the_desk(
        "供給力提供開始時期の変更のお願い",
        "髙橋火力発電所1号機の供給力提供開始時期を2027年度から2028年度に変更したく、ご連絡いたします。",
    )
    case = submit_to(desk, raw, LONG)
    assert case["status"] == "unrecognized"
    [reply] = outbox(desk, "topic_guidance")
    text = body_text(reply["raw"])
    assert "電源等差替・市場退出・契約の変更・登録情報の変更業務編" in text
    assert "『4.3 事業者・電源等情報・期待容量の変更』" in text and "容量市場システム" in text
    assert "電子メールでは承っておりません" in text
    assert "5%" in text and "10%" in text and "変更を行った日" in text
    # 図2-2: 5 % when 「①当該変更がメインオークションの供給曲線へ影響を及ぼした場合」, 10 % when
    # 「②当該変更が追加オークションの供給曲線へ影響を及ぼした場合」, both of the main auction's price
    flat = "".join(text.splitlines())
    assert (
        "メインオークションの供給曲線へ影響を及ぼした場合：メインオークションの約定価格×契約容量×5%"
        in flat
    )
    assert (
        "追加オークションの供給曲線へ影響を及ぼした場合：メインオークションの約定価格×契約容量×10%"
        in flat
    )


def test_one_mail_raising_both_gets_one_reply_with_both(desk: Context):
    raw = mail_to_the_desk(
        "運転開始時期の変更について",
        "運転開始時期を延期することになりました。証憑を添付にて提出いたします。",
    )
    submit_to(desk, raw, LONG)
    [reply] = outbox(desk, "topic_guidance")
    text = body_text(reply["raw"])
    assert "■供給力提供開始の証憑の提出について" in text
    assert "■供給力提供開始時期の変更について" in text


def test_other_mail_still_gets_the_generic_guidance(desk: Context):
    submit_to(
        desk, mail_to_the_desk("お問い合わせ", "容量市場の手続きについて教えてください。"), LONG
    )
    assert [m["kind"] for m in outbox(desk)] == ["guidance"]


# --- points 13, 14, 15: the seed's words on the roadmap inquiry, the answer and the upload -------


def inquiry_text(ctx: Context) -> str:
    set_now(ctx, "2027-02-01T10:00")
    start_roadmap_campaign(ctx, date(2027, 2, 26))
    [ours] = [m for m in outbox(ctx, "roadmap_inquiry") if m["recipient"] == PROVIDER]
    return body_text(ours["raw"]).replace("\n", "")


def test_the_inquiry_says_what_not_revising_without_reason_may_cost(desk: Context):
    """「必要な改訂を行っていない場合は、資源エネルギー庁より合理的な理由の有無を確認する場合が
    あります。また、合理的な理由なくロードマップを改訂していない場合、約款第33条第3項に示す契約の
    解除となる可能性があります。」 (seed 004 §3.1.1 注)"""
    text = inquiry_text(desk)
    assert (
        "必要な改訂を行っていない場合は、資源エネルギー庁より合理的な理由の有無を確認する場合があります。"
        in text
    )
    assert (
        "合理的な理由なくロードマップを改訂していない場合、約款第33条第3項に示す契約の解除となる可能性があります。"
        in text
    )


def test_an_answer_without_revision_is_reviewed_by_the_ministry(desk: Context):
    """「改訂がない場合、技術開発の進歩等を考慮し、公表済みの最新の脱炭素化ロードマップの改訂要否に
    ついて資源エネルギー庁が審査します。修正が必要と判断された場合は、資源エネルギー庁より修正依頼が
    電子メールにて送付されます。」 (seed 004 §3.1.3)"""
    case = submit_to(desk, roadmap_answer(UNREVISED), LONG)
    assert case["status"] == "complete", case["problems"]
    text = body_text(outbox(desk, "receipt")[0]["raw"]).replace("\n", "")
    assert (
        "公表済みの最新の脱炭素化ロードマップの改訂要否について資源エネルギー庁が審査します。"
        in text
    )
    assert "資源エネルギー庁より修正依頼が電子メールにて送付されます。" in text
    assert "必要に応じてご連絡いたします" not in text
    assert "改訂がない場合" not in text  # the sender said so: the receipt speaks of their answer


def test_a_revised_roadmap_is_said_to_be_published(desk: Context):
    """「脱炭素化ロードマップを改訂した場合は、改訂後の脱炭素化ロードマップが本機関のホームページに
    掲載されます。」 (seed 004 §3 注); 「なお、本機関へ提出された最新版の脱炭素化ロードマップは、後日、
    本機関 HP に公表されます。」 (§3.1.8)"""
    assert "改訂後の脱炭素化ロードマップが本機関のホームページに掲載されます。" in inquiry_text(
        desk
    )
    set_now(desk, "2027-02-02T09:30")
    raw = roadmap_answer(REVISED, [(ROADMAP_FILE, roadmap_workbook(), XLSX)])
    case = submit_to(desk, raw, LONG)
    assert case["status"] == "complete", case["problems"]
    receipt = body_text(outbox(desk, "receipt")[0]["raw"]).replace("\n", "")
    assert "改訂後の脱炭素化ロードマップは本機関のホームページに掲載されます。" in receipt
    issued = issue_roadmap_notice(desk, case["id"], "pass", by="佐藤")
    assert issued.upload_reminder
    [notice] = outbox(desk, "assessment_notice")
    text = body_text(notice["raw"]).replace("\n", "")
    assert "最新版の脱炭素化ロードマップは、後日、本機関ホームページに公表されます。" in text


def test_a_corrected_code_application_is_received_when_the_correction_came(desk: Context):
    """The same on code@: the corrected application joins the first one's case."""
    body = "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『発動指令電源（電源）』です。\n"
    mail = "ichiro@takahashi-denryoku.co.jp"
    first = submit_to(desk, build("【容量市場向け事業者コード申請】", body, from_addr=mail), CODE)
    assert first["status"] == "needs_correction"  # no 事業者マスタ申込書 attached
    [correction] = outbox(desk, "correction")
    set_now(desk, "2027-02-04T16:40")
    form = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI))
    raw = build(
        "Re: 【容量市場向け事業者コード申請】",
        body,
        from_addr=mail,
        attachments=[("事業者マスタ申込書.xlsx", form, XLSX)],
        in_reply_to=correction["message_id"],
    )
    again = submit_to(desk, raw, CODE)
    assert again["id"] == first["id"] and again["status"] == "complete", again["problems"]
    assert receipt_time(desk) == "■受付日時　　2027年2月4日（木） 16:40"


def test_a_reassessment_is_of_the_change_the_objection_was_about(desk: Context, tmp_path: Path):
    with pytest.raises(AssessmentError, match="no supply-start notice"):
        issue_supply_start_notice(
            desk, "L0000000001", 2027, 2030, date(2023, 3, 28), reassessment=True
        )
    objection_judged(desk, tmp_path, "objection-accepted", "変更申請日を確認しました。")
    with pytest.raises(AssessmentError, match="FY2027→FY2030"):
        issue_supply_start_notice(
            desk, "L0000000001", 2027, 2031, date(2023, 3, 28), reassessment=True
        )
    again = issue_supply_start_notice(
        desk, "L0000000001", 2027, 2030, date(2023, 3, 28), reassessment=True
    )
    assert again.assessment.result == "合格"
    with pytest.raises(AssessmentError, match="objection-accepted"):  # once per accepted objection
        issue_supply_start_notice(
            desk, "L0000000001", 2027, 2030, date(2023, 3, 28), reassessment=True
        )


# --- a procedure's mail sent under a wrong subject is no topic ---------------------------------
# The topics answer mails that are no procedure; a participant who meant an objection or a
# roadmap answer and got the subject wrong must be told the subjects we accept (the generic
# guidance), not that changes are not taken by mail or that evidence is not received.

SEED_OBJECTION_SUBJECT = (  # 表2-1 件名 as the seed writes it, the 事業者コード not filled in
    "【長期脱炭素電源オークション/事業者コード】供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立"
)


@pytest.mark.parametrize(
    ("subject_text", "body"),
    [
        (SEED_OBJECTION_SUBJECT, OBJECTION_BODY),
        (
            "【長期脱炭素電源オークション】供給力提供開始時期のアセスメント結果に対する異議申立",
            OBJECTION_BODY.replace(
                "■異議申立の内容\n",
                "■異議申立の内容\n運転開始の証憑を添付にて提出いたします。供給力提供開始時期の変更は",
            ),
        ),
        (
            "【長期脱炭素電源オークション/A1B2】脱炭素化ロードマップの改訂について",
            "電力広域的運営推進機関 担当者様\n各脱炭素比率での運転開始時期を変更したため、"
            "・改訂後の脱炭素化ロードマップを提出します。\n\n" + TARGET,
        ),
    ],
    ids=["seed-objection-subject", "objection-with-evidence", "roadmap-answer"],
)
def test_a_procedure_mail_under_a_wrong_subject_gets_the_subjects(
    desk: Context, subject_text: str, body: str
):
    case = submit_to(desk, mail_to_the_desk(subject_text, body), LONG)
    assert case["status"] == "unrecognized"
    assert [m["kind"] for m in outbox(desk)] == ["guidance"]


def test_a_code_application_under_a_wrong_subject_gets_the_subjects(desk: Context):
    """Seed 000's 「容量市場向けアグリゲータ用系統コード申請」 with the subject's brackets left out."""
    raw = build(
        "容量市場向けアグリゲータ用系統コード申請",
        "運転開始予定の変更に伴い、系統コード申請の内容を変更したく存じます。",
        from_addr=PROVIDER,
        to=CODE,
    )
    submit_to(desk, raw, CODE)
    assert [m["kind"] for m in outbox(desk)] == ["guidance"]


def test_a_client_certificate_question_on_code_is_no_evidence(desk: Context):
    """Seed 000's クライアント証明書 is no 証憑 of a supply start."""
    raw = build(
        "クライアント証明書について",
        "発電所の運転開始に向けて、クライアント証明書の申請書類を送付したいのですが、送付先を教えてください。",
        from_addr=PROVIDER,
        to=CODE,
    )
    submit_to(desk, raw, CODE)
    assert [m["kind"] for m in outbox(desk)] == ["guidance"]


def test_a_topic_reply_is_the_days_one_guidance(desk: Context):
    """SPEC §1: an unrecognised mail gets a 「guidance reply (once per sender per day)」; the
    topic reply is that guidance, so a sender gets one of either kind a day, whatever the order."""
    topic = (
        "供給力提供開始時期の変更のお願い",
        "供給力提供開始時期を2028年度に変更したく存じます。",
    )
    submit_to(
        desk, mail_to_the_desk("お問い合わせ", "容量市場の手続きについて教えてください。"), LONG
    )
    case = submit_to(desk, mail_to_the_desk(*topic), LONG)
    assert [m["kind"] for m in outbox(desk)] == ["guidance"]
    assert "供給力提供開始時期の変更" in case["reason"]  # staff still see the topic
    set_now(desk, "2027-02-03T09:30")
    submit_to(desk, mail_to_the_desk(*topic), LONG)
    submit_to(desk, mail_to_the_desk("お問い合わせ", "手続きについて教えてください。"), LONG)
    assert [m["kind"] for m in outbox(desk)] == ["guidance", "topic_guidance"]


def held_objection_judged(ctx: Context, tmp_path: Path, action: str, reason: str) -> dict:
    """The objection of 表2-1 from an address that is neither the provider's registered
    contact nor of its domain: held for staff, who judge it all the same."""
    path = tmp_path / "takahashi.csv"
    path.write_text(TAKAHASHI_OPERATOR, encoding="utf-8")
    import_operators(ctx.store, path, ctx.now())
    issue_supply_start_notice(ctx, "L0000000001", 2027, 2030, date(2024, 6, 10))
    flush_outbox(ctx, make_sender(ctx))
    set_now(ctx, "2027-02-03T10:00")
    raw = build(OBJECTION_SUBJECT, OBJECTION_BODY, from_addr=OUTSIDER, to=LONG)
    case = submit_to(ctx, raw, LONG)
    assert case["status"] == "held"
    decide(ctx, case["id"], action, reason=reason, by="佐藤")
    [result] = outbox(ctx, "objection_result")
    return result


OUTSIDER = "jiro.takahashi@gmail.com"


@pytest.mark.parametrize("action", ["objection-accepted", "objection-rejected"])
def test_a_held_objection_judged_goes_to_the_registered_address_only(
    desk: Context, tmp_path: Path, action: str
):
    """「…事業者情報登録時に容量提供事業者が容量市場システムに登録したメールアドレスに送付されます。」
    (seed 004 §2.1.4) holds for an objection staff judged although its sender was held: the
    registered address gets the result; the sender, not shown to be the provider's, gets no
    copy (it would show them the provider's registered address and its result)."""
    result = held_objection_judged(desk, tmp_path, action, "変更申請日を確認しました。")
    assert result["recipient"] == PROVIDER
    assert as_message(result["raw"])["Cc"] is None


def test_a_held_objection_accepted_allows_the_reassessment(desk: Context, tmp_path: Path):
    held_objection_judged(desk, tmp_path, "objection-accepted", "")
    again = issue_supply_start_notice(
        desk, "L0000000001", 2027, 2030, date(2023, 3, 28), reassessment=True
    )
    assert again.assessment.result == "合格"


@pytest.mark.parametrize("all_of", ['["証憑", "提出"]', '[["証憑", " "], ["提出"]]'])
def test_a_word_group_that_would_match_any_mail_is_refused(tmp_path: Path, all_of: str):
    """`all_of = ["証憑", "提出"]` (the groups' brackets forgotten) would make each word a group
    of its characters, matching any mail with 証 or 提 in it; an empty word is in every mail:
    refused with the file named."""
    path = tmp_path / "longterm_topics.toml"
    path.write_text(f'[[topics]]\nid = "x"\nname = "x"\nall_of = {all_of}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"longterm_topics\.toml"):
        load_topics(path)


def test_a_contact_change_reply_is_the_days_one_guidance_too(desk: Context):
    """The same rule for seed 000's contact-change answer on code@."""
    mail = "ichiro@takahashi-denryoku.co.jp"
    submit_to(
        desk, build("連絡先の変更", "担当者の連絡先を変更したく存じます。", from_addr=mail), CODE
    )
    submit_to(desk, build("お問い合わせ", "手続きについて教えてください。", from_addr=mail), CODE)
    assert [m["kind"] for m in outbox(desk)] == ["contact_change"]
