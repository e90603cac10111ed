"""What every participant is told follows the seeds (issue 12), each rule next to the seed line
it comes from (copied from seeds/000_*.txt and seeds/004_*.txt). Forms filled in exactly as the
seeds' 記載例 show get a receipt; rules the seeds do not have are remarks for staff only."""

from __future__ import annotations

import base64
import os
import re
import subprocess
from datetime import date, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from mailbot.cli import case_json, main
from mailbot.config import RULES_DIR
from mailbot.context import Context
from mailbot.desk.decisions import decide
from mailbot.desk.report import build_report, write_xlsx
from mailbot.forms.workbook import load_grids
from mailbot.longterm.assessment import assess_supply_start
from mailbot.longterm.market import MARKET_RULES
from mailbot.longterm.outbound import (
    roadmap_targets,
    start_mismatch_inquiry,
    start_roadmap_campaign,
)
from mailbot.longterm.roadmap import (
    file_name_problems,
    load_roadmap_rules,
    sheet_problems,
    uncovered_premises,
)
from mailbot.longterm.roadmap_assessment import issue_roadmap_notice, latest_revision
from mailbot.longterm.supply_start import issue_supply_start_notice
from mailbot.mail.compose import compose
from mailbot.mail.render import addressee
from mailbot.outbox.send import flush_outbox, make_sender
from mailbot.outcome import MESSAGE_LIMIT
from mailbot.procedures.objection import target_problems
from mailbot.procedures.roadmap_objection import CATEGORIES as ROADMAP_CATEGORIES
from mailbot.procedures.supply_start_objection import CATEGORIES as SUPPLY_START_CATEGORIES
from mailbot.store.registers import RegisterImportError, import_sources
from mailbot.store.registers import source as find_source
from tests.support.cycle import Desk, maildir_desk, server_desk, subject
from tests.support.desk import (
    SOURCES_CSV,
    body_text,
    desk_with_operators,
    load_sources,
    outbox,
    set_now,
    submit_to,
)
from tests.support.forms import (
    ROADMAP_COLUMNS,
    ROADMAP_PREMISES,
    operator_form,
    plant_form,
    roadmap_workbook,
    to_bytes,
)
from tests.support.jpmail import XLSX, build
from tests.support.samples import TAKAHASHI
from tests.support.servers import LONG, user_for

TOKYO = ZoneInfo("Asia/Tokyo")
ROADMAP_RULES = load_roadmap_rules(RULES_DIR / "roadmap.toml")
CODE = "code@occto.or.jp"
SENDER = "ichiro@takahashi-denryoku.co.jp"

# seed 000 【容量市場向け事業者コードの申請メール記載例】, word for word
SEED_OPERATOR_MAIL = (
    "電力広域的運営推進機関 運用部 マスタ担当 御中\n\n××株式会社 ○○と申します。\n\n"
    "添付の通り、『容量市場向け事業者コード』を申請します。\n\n"
    "参加区分は、『発動指令電源（電源）』です。\n"
)
# seed 000 【容量市場向けアグリゲータ用系統コードの申請メール記載例】, word for word
SEED_GRID_MAIL = (
    "電力広域的運営推進機関 運用部 マスタ担当 御中\n\n××株式会社 ○○と申します。\n\n"
    "添付の通り、『容量市場向けアグリゲータ用系統コード』を申請します。\n\n"
    "参加区分は、『発動指令電源（電源）』です。\n"
)


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = desk_with_operators(tmp_path)
    yield ctx
    ctx.close()


def submit(ctx: Context, raw: bytes, mailbox: str = CODE) -> dict:
    return submit_to(ctx, raw, mailbox)


def operator_mail(body: str, licenses: tuple[str, ...], **form: object) -> bytes:
    book = operator_form(licenses=licenses, fields=TAKAHASHI | form.pop("fields", {}), **form)
    return build(
        "【容量市場向け事業者コード申請】",
        body,
        from_addr=SENDER,
        from_name="髙橋 一郎",
        attachments=[("事業者マスタ申込書.xlsx", to_bytes(book), XLSX)],
    )


def grid_mail(fields: dict | None = None, body: str = SEED_GRID_MAIL) -> bytes:
    return build(
        "【容量市場向けアグリゲータ用系統コード申請】",
        body,
        from_addr="taro@example.co.jp",
        attachments=[("発電所マスタ申込書.xlsx", to_bytes(plant_form(fields)), XLSX)],
    )


# --- forms filled in as the seed's 記載例 show get a receipt --------------------------------


@pytest.mark.parametrize(
    ("seed_line", "body", "licenses", "marks"),
    [
        (
            # The mail example's 参加区分 with the license 参考資料 gives it:
            "発動指令電源（電源）	必要	発電",
            SEED_OPERATOR_MAIL,
            ("発電",),
            None,
        ),
        (
            # The form example's license with a 参加区分 it serves, the ネガワット area answered:
            "ネガワット事業対象エリア (ネガワット事業者のみ回答)",
            SEED_OPERATOR_MAIL.replace("発動指令電源（電源）", "発動指令電源（DR）"),
            ("区分なし(需要抑制)",),
            {"東京": "○"},
        ),
    ],
)
def test_the_seeds_operator_form_example_gets_a_receipt(
    desk: Context, seed_line, body, licenses, marks
):
    # 契約開始日※ 2016/02/01, 適用開始日※ 2016/02/01, 適用終了日※ 9999/12/31 (記載例)
    case = submit(desk, operator_mail(body, licenses, marks=marks))
    assert case["status"] == "complete", (seed_line, case["problems"])
    assert [m["kind"] for m in outbox(desk)] == ["receipt"]


def test_negawatt_applicants_attach_nothing_but_the_form(desk: Context):
    """「容量市場向けの事業者コード申請については、添付は不要です。」 (seed 000) overrides the form's
    printed 「ネガワット事業者(区分なし(需要抑制)を選択した事業者)は、…証明するものを添付下さい。」"""
    body = SEED_OPERATOR_MAIL.replace("発動指令電源（電源）", "発動指令電源（DR）")
    case = submit(desk, operator_mail(body, ("区分なし(需要抑制)",), marks={"関西": "○"}))
    assert case["status"] == "complete", case["problems"]
    assert "需要抑制量調整供給契約" not in body_text(outbox(desk, "receipt")[0]["raw"])


def test_the_seeds_plant_form_example_gets_a_receipt(desk: Context):
    """「発電所名および事業者名称(発電所所有者)は、事業者コード申請時に登録した事業者名称を記載して
    ください。」 and 「【アグリ(事業者コード5桁)(連番2桁)】と記載してください。…(例：アグリ1234501)」
    in 発電所名略称 (seed 000): 1234 is registered as 広域電力株式会社. The receipt promises what
    seed 000 promises: 「申請から最大3週間程度で系統コードを通知いたします。」"""
    case = submit(desk, grid_mail())
    assert case["status"] == "complete", case["problems"]
    assert case["data"]["plant_name"] == "アグリ1234301"
    [receipt] = outbox(desk, "receipt")
    assert "申請から最大3週間程度で系統コードを通知いたします。" in body_text(receipt["raw"])


@pytest.mark.parametrize(
    ("seed_line", "fields", "field"),
    [
        (
            "発電所名および事業者名称(発電所所有者)は、事業者コード申請時に登録した事業者名称を記載してください。",
            {"発電所名": "アグリ1234301", "発電所名略称": None},
            "発電所名",
        ),
        (
            "【アグリ(事業者コード5桁)(連番2桁)】と記載してください。",
            {"発電所名": "アグリ1234301", "発電所名略称": None},
            "発電所名略称",
        ),
        (
            "【アグリ(事業者コード5桁)(連番2桁)】と記載してください。",
            {"発電所名略称": "広域電力"},
            "発電所名略称",
        ),
        (
            "※5桁目はエリアコードです。",
            {"発電所名略称": "アグリ1234601"},
            "発電所名略称",
        ),
    ],
)
def test_plant_name_and_its_short_name_follow_seed_000(desk: Context, seed_line, fields, field):
    case = submit(desk, grid_mail(fields))
    assert case["status"] == "needs_correction", seed_line
    assert field in [p["field"] for p in case["problems"]], (seed_line, case["problems"])


# --- rules the seeds do not have: staff remarks, never a correction request -------------------


@pytest.mark.parametrize(
    ("not_in_the_seed", "fields", "field"),
    [
        ("連絡者メール outside ドメイン名", {"連絡者メール": "ichiro@gmail.com"}, "連絡者メール"),
        (
            "適用開始日 before 契約開始日",
            {"契約開始日": "2016/04/01", "適用開始日": "2016/02/01"},
            "適用開始日",
        ),
    ],
)
def test_rules_the_seed_lacks_are_remarks_for_staff(
    desk: Context, tmp_path: Path, capsys, monkeypatch, not_in_the_seed, fields, field
):
    body = SEED_OPERATOR_MAIL.replace("発動指令電源（電源）", "安定電源")
    case = submit(desk, operator_mail(body, ("発電",), fields=fields))
    assert case["status"] == "complete", (not_in_the_seed, case["problems"])
    assert case["problems"] == []
    [remark] = case_json(case)["remarks"]
    assert remark["field"] == field
    assert [m["kind"] for m in outbox(desk)] == ["receipt"]
    assert remark["message"] not in body_text(outbox(desk, "receipt")[0]["raw"])

    monkeypatch.chdir(tmp_path)  # the desk is the embedded default rooted here
    capsys.readouterr()
    assert main(["case", str(case["id"])]) == 0
    assert f"備考（担当者のみ）: {field}: {remark['message']}" in capsys.readouterr().out

    xlsx = tmp_path / "queue.xlsx"
    write_xlsx(build_report(desk), xlsx)
    cells = [str(c.value) for row in load_workbook(xlsx).active.iter_rows() for c in row]
    assert any(remark["message"] in cell and "担当者のみ" in cell for cell in cells)


# --- time: deadlines from arrival, Date: from sending (SPEC §6) ------------------------------


OBJECTION_SUBJECT = "【長期脱炭素電源オークション/A1B2】供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立"
OBJECTION_BODY = (  # 表2-1 記載項目, filled in
    "電力広域的運営推進機関 ご担当者様\n以下のアセスメント結果について、異議申立を行います。\n\n"
    "■アセスメント結果受領日 2026/10/19\n■対象となる電源等\n・事業者コード：A1B2\n"
    "・事業者情報に登録している事業者名称および担当者名：株式会社髙橋電力　髙橋一郎\n"
    "・容量を提供する電源等の区分：安定電源\n・電源等識別番号：L0000000001\n"
    "・電源等の名称：髙橋火力発電所1号機\n・応札年度：2023年度\n"
    "■異議申立の内容\n変更申請日は2023/03/28であり、メインオークションの開催年度より前です。\n"
)


def objection(message_id: str, body: str = OBJECTION_BODY) -> bytes:
    return build(
        OBJECTION_SUBJECT,
        body,
        from_addr="ichiro@takahashi-power.co.jp",
        from_name="髙橋 一郎",
        to=LONG,
        message_id=message_id,
    )


@pytest.fixture(params=["maildir", "dovecot"])
def timed_desk(request, tmp_path: Path, capsys, monkeypatch):
    """A CLI desk plus `arrive(raw, when)`: the mail reaches the operator's server at `when`
    (Maildir: the file's delivery time; Dovecot: IMAP APPEND with that INTERNALDATE)."""
    if request.param == "maildir":
        desk = maildir_desk(tmp_path, monkeypatch, capsys)

        def arrive(raw: bytes, when: datetime) -> None:
            inbox = tmp_path / "data" / "inbox" / "youryou_rikuase_long" / "new"
            before = set(inbox.iterdir()) if inbox.exists() else set()
            desk.send(raw)
            [delivered] = set(inbox.iterdir()) - before
            os.utime(delivered, (when.timestamp(), when.timestamp()))

        return desk, arrive
    dovecot = request.getfixturevalue("dovecot")
    smtp = request.getfixturevalue("smtp_server")
    desk = server_desk(tmp_path, dovecot, smtp, capsys)

    def arrive_imap(raw: bytes, when: datetime) -> None:
        client = dovecot.client(user_for(raw))
        try:
            client.append("INBOX", raw, msg_time=when)
        finally:
            client.logout()

    return desk, arrive_imap


def failed_notice(desk: Desk, tmp_path: Path, now: str) -> None:
    path = tmp_path / "sources.csv"
    path.write_text(SOURCES_CSV, encoding="utf-8-sig")
    desk.out(now[:10] + "T08:00", "sources", "import", str(path))
    printed = desk.assess_supply_start(now, "2024/06/10")
    assert "result 不合格" in printed


def test_an_objection_that_arrived_in_time_is_in_time_however_late_it_is_fetched(
    timed_desk, tmp_path: Path
):
    """「アセスメント結果を通知する電子メール受領日から5営業日以内であれば、電子メールにより異議申立を
    実施することが可能です。」 (seed 004 §2.1.3): the notice goes on Monday 19 Oct, the window
    ends Monday 26 Oct; mailbot is down from the 26th to the 28th. (Dates before the machine's
    real clock: Dovecot does not keep an INTERNALDATE in its future.)"""
    desk, arrive = timed_desk
    failed_notice(desk, tmp_path, "2026-10-19T10:00")
    arrive(
        objection("<in-time@takahashi-power.co.jp>"), datetime(2026, 10, 26, 16, 45, tzinfo=TOKYO)
    )
    arrive(
        objection("<too-late@takahashi-power.co.jp>"), datetime(2026, 10, 27, 9, 5, tzinfo=TOKYO)
    )
    desk.run("2026-10-28T10:00")

    in_time = desk.reply_to("<in-time@takahashi-power.co.jp>")
    assert "受付のお知らせ" in subject(in_time)
    assert "2026年10月26日（月） 16:45" in body_text(in_time)
    late = desk.reply_to("<too-late@takahashi-power.co.jp>")
    assert "異議申立についてのご連絡" in subject(late) and "期限" in body_text(late)
    received = {c["status"]: c["received_at"] for c in desk.cases("2026-10-28T10:01")}
    assert received["complete"].startswith("2026-10-26T16:45")


def test_a_late_objection_is_refused_as_late_not_sent_back_for_corrections(
    timed_desk, tmp_path: Path
):
    """「アセスメント結果を通知する電子メール受領日から5営業日以内であれば、電子メールにより異議申立を
    実施することが可能です。」 (seed 004 §2.1.3): past the window no objection can be made, so a
    late one with a badly written 受領日 is told it is late; a correction request would invite a
    corrected objection that is just as late."""
    desk, arrive = timed_desk
    failed_notice(desk, tmp_path, "2026-10-19T10:00")
    body = OBJECTION_BODY.replace("受領日 2026/10/19", "受領日 10月19日ごろ")
    arrive(
        objection("<late-and-wrong@takahashi-power.co.jp>", body),
        datetime(2026, 10, 27, 9, 5, tzinfo=TOKYO),
    )
    desk.run("2026-10-28T10:00")

    late = desk.reply_to("<late-and-wrong@takahashi-power.co.jp>")
    assert "異議申立についてのご連絡" in subject(late) and "期限" in body_text(late)
    assert "YYYY/MM/DD" not in body_text(late)
    cases = desk.cases("2026-10-28T10:01")
    assert [c["status"] for c in cases if c["procedure"].endswith("_objection")] == ["closed"]


@pytest.mark.parametrize("backend", ["maildir", "dovecot"])
def test_date_is_when_the_notice_is_sent_not_when_it_was_planned(
    backend, request, tmp_path: Path, capsys, monkeypatch
):
    """A notice decided at 18:30 waits for the sending window and goes at 09:30 next morning;
    its Date: says 09:30 (SPEC §6)."""
    if backend == "maildir":
        desk = maildir_desk(tmp_path, monkeypatch, capsys)
    else:
        desk = server_desk(
            tmp_path,
            request.getfixturevalue("dovecot"),
            request.getfixturevalue("smtp_server"),
            capsys,
        )
    failed_notice(desk, tmp_path, "2026-11-30T18:30")
    assert desk.mails("アセスメント結果通知書") == []
    desk.run("2026-12-01T09:30")
    [notice] = desk.mails("アセスメント結果通知書")
    sent = message_from_bytes(notice, policy=policy.default)["Date"].datetime
    assert sent == datetime(2026, 12, 1, 9, 30, tzinfo=TOKYO)


def test_an_arrival_time_never_lies_in_the_future_and_falls_back_to_received(desk: Context):
    """Without a mailbox time the topmost Received header (our MTA's) counts; a clock ahead of
    ours never moves a deadline back."""
    raw = build("件名", "本文")
    received = b"Received: from mx by mail.occto.or.jp; Thu, 19 Nov 2026 23:10:00 +0900\r\n"
    older = b"Received: from a by b; Mon, 16 Nov 2026 08:00:00 +0900\r\n"
    desk.store.save_raw(CODE, [("a", received + older + raw)], desk.now())
    future = received.replace(b"19 Nov", b"25 Nov")
    desk.store.save_raw(CODE, [("b", future + raw)], desk.now())
    rows = dict(desk.store.execute("SELECT key, received_at FROM messages").fetchall())
    assert rows == {"a": "2026-11-19T23:10:00+09:00", "b": "2026-11-20T10:00:00+09:00"}


# --- the words ----------------------------------------------------------------------------------

NAME = "電力広域的運営推進機関 容量市場 受付窓口"
# seed 000: 「送付先（本件に関する問い合わせ窓口）：電力広域的運営推進機関 運用部 マスター担当」
CODE_WINDOW = "電力広域的運営推進機関 運用部 マスター担当"
ENCODED_WORD = re.compile(r"=\?([^?]+)\?([bBqQ])\?([^?]*)\?=")


def strict_rfc2047(value: str) -> str:
    """RFC 2047 as written: every token an encoded-word of at most 75 characters holding whole
    characters (§5), whitespace between adjacent encoded-words dropped (§6.2)."""
    tokens = value.split()
    text = ""
    for token in tokens:
        assert len(token) <= 75, token
        match = ENCODED_WORD.fullmatch(token)
        assert match, token
        assert match[2].lower() == "b"
        text += base64.b64decode(match[3]).decode(match[1], errors="strict")
    return text


def test_the_from_name_never_splits_a_word_in_any_decoder():
    raw = compose(
        from_addr="code@occto.or.jp",
        from_name=NAME,
        to="ichiro@takahashi-denryoku.co.jp",
        subject="受付のお知らせ",
        body="本文",
        message_id="<x@occto.or.jp>",
        date=datetime(2026, 12, 1, 9, 30, tzinfo=TOKYO),
    )
    header = re.search(rb"^From: (.*?) <", raw, re.S | re.M)[1].decode("ascii")
    modern = message_from_bytes(raw, policy=policy.default)["From"].addresses[0].display_name
    legacy = str(make_header(decode_header(message_from_bytes(raw)["From"])))
    strict = strict_rfc2047(header.replace("\r\n", " "))
    assert strict == NAME
    for decoded in (modern, legacy.removesuffix(" <code@occto.or.jp>"), strict):
        assert decoded.split() == NAME.split(), decoded
    for token in header.split():
        piece = strict_rfc2047(token).strip()
        assert piece in NAME.split(), f"encoded word {token} carries a part of a word: {piece}"


def test_one_sender_name_and_one_honorific_in_every_reply(desk: Context):
    """The seed's mails open 「電力広域的運営推進機関 運用部 マスタ担当 御中」 (an organisation) and
    close with the person: the desk writes 御中 for organisations and 様 for people, never both."""
    submit(desk, operator_mail(SEED_OPERATOR_MAIL, ("小売",)))
    submit(desk, build("質問", "教えてください。", from_name="新規参入株式会社 総務部"))
    for mail in outbox(desk):
        text = body_text(mail["raw"])
        opening = text.split("\r\n\r\n", 1)[0]
        assert not ("御中" in opening and "様" in opening), opening
        assert f"{CODE_WINDOW}でございます。" in text
        assert CODE_WINDOW in text.rstrip().splitlines()[-5:], "the signature"
        decoded = message_from_bytes(mail["raw"], policy=policy.default)["From"]
        assert decoded.addresses[0].display_name.split() == CODE_WINDOW.split()
        assert "送信専用" not in text
        assert "{事業者コード}" not in text and "{" not in text
    guidance = body_text(outbox(desk, "guidance")[0]["raw"])
    assert guidance.startswith("ご担当者様"), "an unverified sender's name is never quoted"
    assert "【長期脱炭素電源オークション/事業者コード】" in guidance
    correction = body_text(outbox(desk, "correction")[0]["raw"])
    assert correction.startswith("ご担当者様")  # a verified sender's 様: tests/test_trust_mail.py


PLAIN_FORMS = (
    "ていません",
    "がありません",
    "ではありません",
    "一致しません",
    "記載してください",
    "してください",
    "てください",
    "されています",
)


def test_problem_lines_keep_the_same_keigo_as_the_mail(desk: Context):
    """Every problem line of a correction request in the humble-polite register of the rest
    (“…ございます” “…おります” “ご記載ください”: our wording, not the seeds')."""
    flawed = {
        "事業者名略称": "髙橋電力",
        "郵便番号": "1",
        "連絡者電話番号": "x",
        "連絡者メール": "@",
        "適用開始日": "来年",
    }
    submit(desk, operator_mail("よろしくお願いします。", ("小売",), fields=flawed))
    submit(desk, grid_mail({"発電所名": "別名", "発電所名略称": "アグリ1234601"}, body="申請"))
    cases = [desk.store.case(i) for i in (1, 2)]
    messages = [p["message"] for c in cases for p in c["problems"]]
    assert len(messages) >= 10
    for message in messages:
        assert not any(form in message for form in PLAIN_FORMS), message


# --- the roadmap sheet as 図3-3 lays it out (seed 004 §3.1.1) --------------------------------

SEED_NOTE = (  # 図3-3, word for word
    "注) 以下の5つの項目は最低限記載すること。 ・落札電源に係る建設工事の期間（環境アセスの期間を含む） ・各段階での脱炭"
    "素化技術、脱炭素比率、各脱炭素比率での運転開始時期 ・脱炭素比率を向上させる改修投資を行う場合の長期脱炭素電源オークショ"
    "ンでの落札の時期 ・使用する脱炭素燃料(水素・アンモニアはグレー・ブルー・グリーンの種別を含む。合成メタンは原料となる水"
    "素のグレー・ブルー・グリーンの種別を含む。なお、合成メタンは、原料となるCO2の情報（調達先、回収方法等）についても、今"
    "後の政策動向によっては、記載を求める場合があります。） ・前提条件"
)


def test_the_roadmap_sheet_as_figure_3_3_fills_it_in_passes():
    """図3-3's year column 「年度 (応札年度)」 filled in with the year before the label."""
    grids, _ = load_grids(roadmap_workbook(columns=("2023年度(応札年度)", *ROADMAP_COLUMNS[1:])))
    assert sheet_problems(ROADMAP_RULES, grids) == []


@pytest.mark.parametrize(
    ("what", "premises"),
    [
        ("the keywords alone", "建設工事、脱炭素比率、落札、グリーン、前提条件"),
        ("the heading itself", "<前提条件>"),
        ("the form's own 注 copied back", SEED_NOTE.removeprefix("注) ")),
        ("the items' names as bullets", "・建設工事\n・脱炭素比率\n・落札の時期\n・グレー\n・前提"),
    ],
)
def test_premises_need_content_for_each_of_the_five_items(what, premises):
    """「注) 以下の5つの項目は最低限記載すること。」 (図3-3): a keyword or a heading is not an item."""
    assert len(uncovered_premises(ROADMAP_RULES, premises)) == 5, what


def test_premises_written_out_cover_all_five_items():
    assert uncovered_premises(ROADMAP_RULES, "<前提条件>\n" + ROADMAP_PREMISES) == []


def test_only_stable_sources_are_roadmap_targets(desk: Context, tmp_path: Path):
    """「…改修を行う安定電源」 (seed 004 §3 <対象電源>)."""
    path = tmp_path / "sources.csv"
    path.write_text(SOURCES_CSV.replace("安定電源,東北", "変動電源（単独）,東北"), "utf-8-sig")
    with pytest.raises(RegisterImportError, match="only 安定電源"):
        import_sources(desk.store, path, desk.now())
    path.write_text(
        SOURCES_CSV.replace(
            "安定電源,東北,2023,50000,2028,1", "変動電源（単独）,東北,2023,50000,2028,0"
        ),
        "utf-8-sig",
    )
    import_sources(desk.store, path, desk.now())
    assert [s["source_id"] for s in roadmap_targets(desk)] == ["L0000000001"]


# --- every problem at once (SPEC §6) ------------------------------------------------------------

ROADMAP_ANSWER = (
    "電力広域的運営推進機関 担当者様\n・改訂後の脱炭素化ロードマップを提出します。\n\n■対象となる電源\n"
    "・事業者コード：A1B2\n・事業者情報に登録している事業者名称および担当者名：株式会社髙橋電力　髙橋一郎\n"
    "・容量を提供する電源等の区分：安定電源\n・電源等識別番号：{source}\n"
    "・電源等の名称：髙橋火力発電所1号機\n・応札年度：2023年度\n"
)


def roadmap_answer(source: str, sender: str, attachments: list) -> bytes:
    return build(
        "【長期脱炭素電源オークション/A1B2】脱炭素化ロードマップの改訂有無の回答",
        ROADMAP_ANSWER.format(source=source),
        from_addr=sender,
        to=LONG,
        attachments=attachments,
    )


def test_an_unknown_source_hides_no_other_problem(desk: Context, tmp_path: Path):
    load_sources(desk, tmp_path)
    raw = roadmap_answer("L9999999999", "ichiro@takahashi-power.co.jp", [])
    case = submit(desk, raw, LONG)
    fields = [p["field"] for p in case["problems"]]
    assert "電源等識別番号" in fields and "添付ファイル" in fields, fields
    misnamed = [("roadmap.xlsx", roadmap_workbook(), XLSX)]
    case = submit(
        desk, roadmap_answer("L9999999999", "ichiro@takahashi-power.co.jp", misnamed), LONG
    )
    fields = [p["field"] for p in case["problems"]]
    assert "電源等識別番号" in fields and "ファイル名" in fields, fields


@pytest.mark.parametrize(
    ("what", "raw", "mailbox", "expected"),
    [
        (
            "a roadmap answer from a stranger, no roadmap attached",
            lambda: roadmap_answer("L0000000001", "someone@elsewhere.example", []),
            LONG,
            {"添付ファイル"},
        ),
        (
            "an objection from a stranger naming no notice the desk sent",
            lambda: objection("<x@elsewhere.example>").replace(
                b"ichiro@takahashi-power.co.jp", b"someone@elsewhere.example"
            ),
            LONG,
            {"電源等識別番号"},
        ),
        (
            "a grid application from outside the operator with a bad 略称",
            lambda: build(
                "【容量市場向けアグリゲータ用系統コード申請】",
                SEED_GRID_MAIL,
                from_addr="someone@elsewhere.example",
                attachments=[
                    (
                        "発電所マスタ申込書.xlsx",
                        to_bytes(plant_form({"電圧種別": "高圧"})),
                        XLSX,
                    )
                ],
            ),
            CODE,
            {"電圧種別"},
        ),
    ],
)
def test_a_held_mail_keeps_its_problems_for_staff(
    desk: Context, tmp_path, what, raw, mailbox, expected
):
    load_sources(desk, tmp_path)
    case = submit(desk, raw(), mailbox)
    assert case["status"] == "held", what
    assert expected <= {p["field"] for p in case["problems"]}, (what, case["problems"])
    [held] = outbox(desk, "held")
    for p in case["problems"]:
        assert p["message"] not in body_text(held["raw"]), "the held reply tells nothing of it"


# --- the supply-start notice as 図2-6 shows it (seed 004 §2.1) --------------------------------


def notice_texts(desk: Context) -> tuple[str, str]:
    [mail] = outbox(desk, "assessment_notice")
    pdf = next(
        p.get_payload(decode=True)
        for p in message_from_bytes(mail["raw"]).walk()
        if p.get_content_type() == "application/pdf"
    )
    text = subprocess.run(
        ["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True
    ).stdout.decode()
    return body_text(mail["raw"]), text


def test_an_earlier_start_keeps_the_period_at_fy2027(desk: Context, tmp_path: Path):
    """「供給力提供開始時期が早まった場合でも、2026年度以前への制度適用期間の前倒しはできません。」
    (seed 004 §2.1 注1)"""
    load_sources(desk, tmp_path)
    issued = issue_supply_start_notice(desk, "L0000000001", 2027, 2025, date(2024, 6, 10))
    assert issued.assessment.result == "合格"
    for text in notice_texts(desk):
        assert "前倒し" in text
        assert "2027年度から（2026年度以前への制度適用期間の前倒しはできません）" in text


def test_the_notice_shows_what_figure_2_6_shows_and_no_money(desk: Context, tmp_path: Path):
    """図2-6: 変更申請日 2024/6/10, 運用年月 2026/12/31, 変更区分 後ろ倒し, 影響あり/影響なし per year;
    no yen anywhere on it."""
    load_sources(desk, tmp_path)
    issue_supply_start_notice(
        desk, "L0000000001", 2027, 2030, date(2024, 6, 10), applied_on=date(2026, 12, 31)
    )
    for text in notice_texts(desk):
        assert "2024/06/10" in text and "2026/12/31" in text and "後ろ倒し" in text
        assert "影響あり" in text and "影響なし" in text
        assert "円" not in text and "ペナルティ" not in text


def test_no_operation_date_is_made_up_from_the_change_date(desk: Context, tmp_path: Path):
    load_sources(desk, tmp_path)
    issue_supply_start_notice(desk, "L0000000001", 2027, 2030, date(2024, 6, 10))
    body, _pdf = notice_texts(desk)
    assert "運用年月：－" in body
    assert body.count("2024/06/10") == 1


def test_replaced_capacity_is_left_out_of_the_penalty(desk: Context, tmp_path: Path):
    """「※2：電源差替を行った場合は、差替を行った容量を除く」 (図2-2)"""
    load_sources(desk, tmp_path)
    whole = assess_supply_start(
        MARKET_RULES.load(RULES_DIR),
        find_source(desk.store, "L0000000001"),
        2027,
        2030,
        date(2024, 6, 10),
    )
    part = issue_supply_start_notice(
        desk, "L0000000001", 2027, 2030, date(2024, 6, 10), replaced_kw=40_000
    )
    assert part.assessment.total_penalty_yen * 100_000 == whole.total_penalty_yen * 60_000
    assert part.assessment.capacity_kw == 100_000  # 契約容量(kW) on the notice stays the contract's


# --- objections: ■対象となる電源等 as 表2-1 asks for it (seed 004 §2.1.3) -------------------------


def sent_notice(desk: Context, tmp_path: Path) -> None:
    load_sources(desk, tmp_path)
    issue_supply_start_notice(desk, "L0000000001", 2027, 2030, date(2024, 6, 10))
    flush_outbox(desk, make_sender(desk))  # Friday 20 Nov, inside the sending window
    set_now(desk, "2026-11-24T10:00")


def objection_with(change: tuple[str, str] | None = None) -> bytes:
    body = OBJECTION_BODY.replace("受領日 2026/10/19", "受領日 2026/11/20")
    if change:
        assert change[0] in body
        body = body.replace(*change)
    return objection("<o@takahashi-power.co.jp>", body)


@pytest.mark.parametrize(
    ("seed_line", "change", "field"),
    [
        (
            "・容量を提供する電源等の区分",
            ("区分：安定電源", "区分：火力"),
            "容量を提供する電源等の区分",
        ),
        (
            # a seed-000 参加区分, but not this source's (it is registered as 安定電源)
            "・容量を提供する電源等の区分",
            ("区分：安定電源", "区分：発動指令電源（DR）"),
            "容量を提供する電源等の区分",
        ),
        ("・応札年度", ("応札年度：2023年度", "応札年度：1999年度"), "応札年度"),
        ("・応札年度", ("応札年度：2023年度", "応札年度：2024年度"), "応札年度"),
        ("・電源等の名称", ("名称：髙橋火力発電所1号機", "名称：髙橋火力2号機"), "電源等の名称"),
        (
            "・事業者情報に登録している事業者名称および担当者名",
            ("株式会社髙橋電力　髙橋一郎", "株式会社髙橋電力"),
            "事業者情報に登録している事業者名称および担当者名",
        ),
        (
            "■アセスメント結果受領日 YYYY/MM/DD",
            ("受領日 2026/11/20", "受領日 2026/11/19"),
            "アセスメント結果受領日",
        ),
    ],
)
def test_each_objection_field_is_checked(desk: Context, tmp_path: Path, seed_line, change, field):
    sent_notice(desk, tmp_path)
    case = submit(desk, objection_with(change), LONG)
    assert case["status"] == "needs_correction", seed_line
    assert [p["field"] for p in case["problems"]] == [field], case["problems"]


def test_an_objection_written_as_table_2_1_gets_a_receipt(desk: Context, tmp_path: Path):
    sent_notice(desk, tmp_path)
    case = submit(desk, objection_with(), LONG)
    assert case["status"] == "complete", case["problems"]
    assert case_json(case)["remarks"] == []


def test_a_later_receipt_day_is_a_remark_not_a_problem(desk: Context, tmp_path: Path):
    """The window counts from the day the notice was sent; a participant who read it on Monday
    and writes that day is not wrong."""
    sent_notice(desk, tmp_path)
    case = submit(desk, objection_with(("受領日 2026/11/20", "受領日 2026/11/24")), LONG)
    assert case["status"] == "complete", case["problems"]
    assert [r["field"] for r in case_json(case)["remarks"]] == ["アセスメント結果受領日"]


def test_a_mail_failing_dmarc_is_held_unanswered_with_its_problems(desk: Context):
    raw = build(
        "【容量市場向けアグリゲータ用系統コード申請】",
        SEED_GRID_MAIL,
        from_addr="taro@example.co.jp",
        attachments=[],
        headers={
            "Authentication-Results": "mx.occto.or.jp; spf=fail; dmarc=fail header.from=example.co.jp"
        },
    )
    case = submit(desk, raw)
    assert case["status"] == "held" and outbox(desk) == []
    assert [p["field"] for p in case["problems"]] == ["添付ファイル"]


def test_a_roadmap_revised_on_the_ministrys_request_goes_to_the_ministry(desk: Context, tmp_path):
    """「ただし、容量提供事業者が脱炭素化ロードマップの改訂は不要と判断したものの、資源エネルギー庁
    からの修正依頼に基づいて脱炭素化ロードマップを改訂する場合は、…ファイル名（ファイル名末尾の
    改訂回数を含む）を設定してください。」「修正後の脱炭素化ロードマップを資源エネルギー庁に
    再提出してください。」 (seed 004 §3.1.4)"""
    load_sources(desk, tmp_path)
    unrevised = ROADMAP_ANSWER.format(source="L0000000001").replace(
        "・改訂後の脱炭素化ロードマップを提出します。",
        "・本年度の脱炭素化ロードマップの改訂はありません。",
    )
    first = build(
        "【長期脱炭素電源オークション/A1B2】脱炭素化ロードマップの改訂有無の回答",
        unrevised,
        from_addr="ichiro@takahashi-power.co.jp",
        to=LONG,
    )
    case = submit(desk, first, LONG)
    assert case["status"] == "complete", case["problems"]
    decide(desk, case["id"], "ministry-correction", reason="改訂の依頼", by="佐藤")
    [receipt] = outbox(desk, "receipt")
    revised = build(
        "Re: 【長期脱炭素電源オークション/A1B2】脱炭素化ロードマップの改訂有無の回答",
        "資源エネルギー庁の依頼により改訂しました。\n"
        + ROADMAP_ANSWER.format(source="L0000000001"),
        from_addr="ichiro@takahashi-power.co.jp",
        to=LONG,
        attachments=[("L2023_A1B2_髙橋火力発電所1号機_D3_R1.xlsx", roadmap_workbook(), XLSX)],
        in_reply_to=receipt["message_id"],
    )
    again = submit(desk, revised, LONG)
    assert again["id"] == case["id"] and again["status"] == "complete"
    [pointer] = outbox(desk, "roadmap_to_ministry")
    text = body_text(pointer["raw"])
    assert "資源エネルギー庁へご提出ください" in text and "末尾の改訂回数を含む" in text


@pytest.mark.parametrize(
    ("name", "person", "opening"),
    [
        # 「電力広域的運営推進機関 運用部 マスタ担当 御中」 (seed 000 申請メール記載例)
        (
            "電力広域的運営推進機関 運用部 マスタ担当",
            None,
            "電力広域的運営推進機関 運用部 マスタ担当 御中",
        ),
        # 「事業者名 AAAA株式会社 御中」 (seed 004 図2-6)
        ("AAAA株式会社", None, "AAAA株式会社 御中"),
        ("AAAA株式会社", "髙橋 一郎", "AAAA株式会社\n髙橋 一郎 様"),
        ("株式会社髙橋電力 髙橋一郎", None, "株式会社髙橋電力 髙橋一郎 様"),
        ("阿部 太郎", None, "阿部 太郎 様"),
        ("ABC Energy Co., Ltd.", None, "ABC Energy Co., Ltd. 御中"),
        ("田中様", None, "田中様"),
        ("AAAA株式会社 御中", "佐藤", "AAAA株式会社\n佐藤 様"),
        ("", None, "ご担当者様"),
    ],
)
def test_onchu_for_organisations_sama_for_people_never_both(name, person, opening):
    assert addressee(name, person) == opening


# --- the review of issue 12: the file name, the 区分, the labels, the 改訂回数 -----------------

# 38 characters: with L2023_ABCD_ and _D3_R1 the file name would be 55
LONG_NAME = "髙橋火力発電所1号機アンモニア混焼設備併設リプレース第二期工事分及び関連設備"


def names_checked(file_name: str, source_name: str = "△△発電所", **kw) -> tuple[int, int]:
    found = file_name_problems(ROADMAP_RULES, file_name, 2023, "ABCD", source_name, 1, **kw)
    return len(found.problems), len(found.remarks)


@pytest.mark.parametrize(
    ("what", "file_name", "source_name", "problems", "remarks"),
    [
        ("the 適用例", "L2023_ ABCD_ △△発電所_ D3_ R1.xlsx", "△△発電所", 0, 0),
        ("too long, cut short", f"L2023_ABCD_{LONG_NAME[:33]}_D3_R1.xlsx", LONG_NAME, 0, 0),
        ("too long, a 略称", "L2023_ABCD_髙橋火力1号機リプレース_D3_R1.xlsx", LONG_NAME, 0, 1),
        ("too long, any other short name", "L2023_ABCD_TK-1_D3_R1.xlsx", LONG_NAME, 0, 1),
        (
            "fits, shortened all the same",
            "L2023_ABCD_髙橋火力1号機_D3_R1.xlsx",
            "髙橋火力発電所1号機",
            0,
            1,
        ),
        ("fits, another source's name", "L2023_ABCD_○○発電所_D3_R1.xlsx", "△△発電所", 1, 0),
        ("over fifty however named", f"L2023_ABCD_{LONG_NAME}_D3_R1.xlsx", LONG_NAME, 1, 0),
    ],
)
def test_the_file_name_may_shorten_the_source_name_as_the_provider_likes(
    what, file_name, source_name, problems, remarks
):
    """表3-2 No.3 電源等の名称: 「電源等の名称を設定してください」, 備考 「ファイル名が50文字を
    超える場合は短縮」 — when to shorten, not how: a 略称 is no ground for a correction request."""
    assert names_checked(file_name, source_name) == (problems, remarks), what


def long_named_source(desk: Context, tmp_path: Path, revision: int = 0) -> None:
    path = tmp_path / "sources.csv"
    path.write_text(SOURCES_CSV.replace("髙橋火力発電所1号機", LONG_NAME), "utf-8-sig")
    import_sources(desk.store, path, desk.now())
    if revision:
        desk.store.set_roadmap_revision("L0000000001", revision)


def test_a_roadmap_named_with_a_short_name_gets_a_receipt(desk: Context, tmp_path: Path):
    long_named_source(desk, tmp_path)
    short = [("L2023_A1B2_髙橋火力1号機リプレース_D3_R1.xlsx", roadmap_workbook(), XLSX)]
    case = submit(desk, roadmap_answer("L0000000001", "ichiro@takahashi-power.co.jp", short), LONG)
    assert case["status"] == "complete", case["problems"]
    assert [r["field"] for r in case_json(case)["remarks"]] == ["ファイル名"]
    assert [m["kind"] for m in outbox(desk)] == ["receipt"]


@pytest.mark.parametrize(
    ("on_record", "file_revision", "status", "recorded"),
    [
        (0, 1, "complete", 1),  # 「L2023_ ABCD_ △△発電所_ D3_ R1 （改訂回数1回）」
        (0, 3, "complete", 3),  # nothing on record: R3 may well be right
        (2, 3, "complete", 3),
        (2, 2, "needs_correction", 3),  # 「当該ファイルの改訂回数を設定してください。」
    ],
)
def test_the_revision_number_is_corrected_only_against_a_known_count(
    desk: Context, tmp_path: Path, on_record, file_revision, status, recorded
):
    load_sources(desk, tmp_path)
    if on_record:
        desk.store.set_roadmap_revision("L0000000001", on_record)
    named = [(f"L2023_A1B2_髙橋火力発電所1号機_D3_R{file_revision}.xlsx", roadmap_workbook(), XLSX)]
    case = submit(desk, roadmap_answer("L0000000001", "ichiro@takahashi-power.co.jp", named), LONG)
    assert case["status"] == status, case["problems"]
    assert case["data"]["revision"] == recorded


@pytest.mark.parametrize(
    ("on_record", "case_revision", "latest"),
    [(0, None, 1), (2, None, 3), (2, 3, 3), (0, 4, 4)],
)
def test_the_latest_revision_number(on_record, case_revision, latest):
    """「R1 （改訂回数1回）」 (表3-2) is the first; an “改訂なし” answer revised at the ministry's
    request takes the next one: 「…ファイル名（ファイル名末尾の改訂回数を含む）を設定してください。」
    (seed 004 §3.1.4)."""
    data = {"revision": case_revision} if case_revision else {}
    assert latest_revision({"roadmap_revision": on_record}, {"data": data}) == latest


def test_a_ministry_requested_revision_is_uploaded_under_the_next_number(
    desk: Context, tmp_path: Path
):
    """A provider on R2 answers “改訂なし”, then revises at the ministry's request: the upload
    reminder (§3.1.8) names R3, and R3 becomes the source's count (not R1, not 0)."""
    load_sources(desk, tmp_path)
    desk.store.set_roadmap_revision("L0000000001", 2)
    unrevised = ROADMAP_ANSWER.format(source="L0000000001").replace(
        "・改訂後の脱炭素化ロードマップを提出します。",
        "・本年度の脱炭素化ロードマップの改訂はありません。",
    )
    case = submit(
        desk,
        build(
            "【長期脱炭素電源オークション/A1B2】脱炭素化ロードマップの改訂有無の回答",
            unrevised,
            from_addr="ichiro@takahashi-power.co.jp",
            to=LONG,
        ),
        LONG,
    )
    decide(desk, case["id"], "ministry-correction", reason="改訂の依頼", by="佐藤")
    issued = issue_roadmap_notice(desk, case["id"], "pass", by="佐藤")
    assert issued.upload_reminder
    [notice] = outbox(desk, "assessment_notice")
    assert "L2023_A1B2_髙橋火力発電所1号機_D3_R3.xlsx" in body_text(notice["raw"])
    assert (
        desk.store.execute(
            "SELECT roadmap_revision FROM sources WHERE source_id = 'L0000000001'"
        ).fetchone()[0]
        == 3
    )


@pytest.mark.parametrize(
    ("what", "categories", "registered", "written", "problems"),
    [
        # 「…既設火力をバイオマス専焼にするための改修を行う安定電源」 (§3 <対象電源>)
        ("roadmap, as registered", ROADMAP_CATEGORIES, "安定電源", "安定電源", 0),
        ("roadmap, a seed-000 value", ROADMAP_CATEGORIES, "安定電源", "発動指令電源（DR）", 1),
        ("roadmap, nothing registered", ROADMAP_CATEGORIES, "", "変動電源（単独）", 1),
        # 「制度適用期間前の安定電源・変動電源」 (§2 <対象電源>)
        ("start, the seed's bare word", SUPPLY_START_CATEGORIES, "変動電源（単独）", "変動電源", 0),
        ("start, nothing registered", SUPPLY_START_CATEGORIES, "", "変動電源（アグリゲート）", 0),
        ("start, nothing registered, DR", SUPPLY_START_CATEGORIES, "", "発動指令電源（DR）", 1),
        ("start, the other kind", SUPPLY_START_CATEGORIES, "変動電源（単独）", "安定電源", 1),
    ],
)
def test_the_category_is_the_sources_own(what, categories, registered, written, problems):
    """「・容量を提供する電源等の区分」 (表2-1, 表3-3) of the source objected for: its registered
    区分, else one its chapter's 対象電源 allows — not any 参加区分 of seed 000."""
    source = {"category": registered, "auction_year": 2023, "name": "△△発電所"}
    found = target_problems({"category": written}, source, date(2026, 11, 24), categories)
    assert len(found) == problems, (what, found)


def test_the_inquiry_lists_what_table_3_1_asks_for(desk: Context, tmp_path: Path):
    """■対象となる電源 as 表3-1 lists it, under its labels, with the values to write back:
    「・事業者情報に登録している事業者名称および担当者名」 carries both."""
    load_sources(desk, tmp_path)
    start_roadmap_campaign(desk, date(2026, 12, 18), 2026)
    inquiry = next(
        body_text(m["raw"]).replace("\r\n", "\n")
        for m in outbox(desk, "roadmap_inquiry")
        if "L0000000001" in body_text(m["raw"])
    )
    block = inquiry.split("■対象となる電源\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split("：", 1)[0] for line in block] == [
        "・事業者コード",
        "・事業者情報に登録している事業者名称および担当者名",
        "・容量を提供する電源等の区分",
        "・電源等識別番号",
        "・電源等の名称",
        "・応札年度",
    ]
    assert block[1].endswith("：株式会社髙橋電力　髙橋 一郎"), block[1]


SEEDS = Path(__file__).parent / "data" / "seeds"


def _squeezed(text: str) -> str:
    """The seeds are PDF text: words are broken by spaces and line ends, `_` is written `\\_`."""
    return re.sub(r"\s+", "", text.replace("\\_", "_"))


def test_every_quote_in_this_file_is_the_seeds_word_for_word():
    """Each 「…」 here (and the SEED_ texts) is copied from seeds/*.txt; 「…」 inside marks a cut."""
    seeds = _squeezed("".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))))
    assert len(list(SEEDS.glob("*.txt"))) == 2
    source = Path(__file__).read_text(encoding="utf-8")
    o, c = "\u300c", "\u300d"  # the corner brackets, not written here as such
    quotes = re.findall(f"{o}((?:[^{o}{c}]|{o}[^{o}{c}]*{c})+){c}", source)
    # the mail examples line by line: the seed prints its callouts between their lines
    quotes += [SEED_NOTE, *SEED_OPERATOR_MAIL.splitlines(), *SEED_GRID_MAIL.splitlines()]
    assert len(quotes) > 20
    for quote in quotes:
        for part in re.split(r"…+", quote.replace("\\n", "")):
            assert _squeezed(part) in seeds, quote


# --- rules no seed has: never a correction request (issue 12 point 5) ------------------------


def test_a_phone_number_written_oddly_is_a_remark_for_staff(desk: Context):
    """Seed 000's form asks for 連絡者電話番号 and 連絡者FAX番号 without a format, and SPEC §3.1
    gives none either: a number with an extension or in a foreign style is not wrong."""
    odd = {"連絡者電話番号": "03-1234-5678 内線12"}
    case = submit(desk, operator_mail(SEED_OPERATOR_MAIL, ("発電",), fields=odd))
    assert case["status"] == "complete", case["problems"]
    assert [r["field"] for r in case_json(case)["remarks"]] == ["連絡者電話番号"]


def test_a_source_name_written_short_in_an_objection_is_a_remark(desk: Context, tmp_path: Path):
    """「・電源等の名称」 (表2-1): 髙橋火力1号機 names 髙橋火力発電所1号機 all the same."""
    sent_notice(desk, tmp_path)
    case = submit(desk, objection_with(("名称：髙橋火力発電所1号機", "名称：髙橋火力1号機")), LONG)
    assert case["status"] == "complete", case["problems"]
    assert [r["field"] for r in case_json(case)["remarks"]] == ["電源等の名称"]


def test_a_mismatch_answer_in_an_attached_file_is_an_answer(desk: Context, tmp_path: Path):
    """「問合せ内容をご確認のうえ、速やかに回答を電子メールにて送付してください。」 (seed 004
    §3.1.10): by mail — the seed does not say the answer must be in the body."""
    load_sources(desk, tmp_path)
    start_mismatch_inquiry(desk, "L0000000002", "燃料種が一致しません。")
    [inquiry] = outbox(desk, "mismatch_inquiry")
    answer = build(
        "Re: " + subject(inquiry["raw"]),
        "",
        from_addr="hanako@tohoku-green.jp",
        to=LONG,
        in_reply_to=inquiry["message_id"],
        attachments=[("不一致の原因.xlsx", roadmap_workbook(), XLSX)],
    )
    case = submit(desk, answer, LONG)
    assert case["procedure"] == "mismatch_reply"
    assert case["status"] == "complete", case["problems"]


def test_a_long_value_is_quoted_only_in_part(desk: Context, tmp_path: Path):
    """A correction quotes what was written ("記載：…"); a 5,000-character 応札年度 must not go
    whole into the mail and the case."""
    sent_notice(desk, tmp_path)
    case = submit(desk, objection_with(("応札年度：2023年度", "応札年度：" + "9" * 5000)), LONG)
    [problem] = case["problems"]
    assert problem["field"] == "応札年度"
    assert len(problem["message"]) <= MESSAGE_LIMIT and problem["message"].endswith("…")
