"""The youryou_rikuase_long@ cycles (seed 004) from the CLI, each on the embedded default and on
Dovecot + aiosmtpd: the roadmap campaign from roster to answers to assessment, the supply-start
assessment through objection and re-assessment, and the mismatch inquiry with its reminder."""

from __future__ import annotations

import subprocess
from email import message_from_bytes
from pathlib import Path

from tests.support.cycle import Desk, subject
from tests.support.desk import SOURCES_CSV, body_text
from tests.support.forms import roadmap_workbook
from tests.support.jpmail import XLSX, build
from tests.support.servers import LONG

ICHIRO = "ichiro@takahashi-power.co.jp"
HANAKO = "hanako@tohoku-green.jp"
ANSWER_SUBJECT = "【長期脱炭素電源オークション/A1B2】脱炭素化ロードマップの改訂有無の回答"
SOURCE_FIELDS = (
    "■対象となる電源\n・事業者コード：A1B2\n"
    "・事業者情報に登録している事業者名称および担当者名：株式会社髙橋電力　髙橋一郎\n"
    "・容量を提供する電源等の区分：安定電源\n・電源等識別番号：L0000000001\n"
    "・電源等の名称：髙橋火力発電所1号機\n・応札年度：2023年度\n"
)
ROADMAP_FILE = "L2023_A1B2_髙橋火力発電所1号機_D3_R1.xlsx"


def load_sources(desk: Desk, tmp_path: Path) -> None:
    path = tmp_path / "sources.csv"
    path.write_text(SOURCES_CSV, encoding="utf-8-sig")
    assert "2 added" in desk.out("2026-11-30T08:00", "sources", "import", str(path))


def pdf_text(raw: bytes, tmp_path: Path) -> str:
    for part in message_from_bytes(raw).walk():
        if part.get_content_type() == "application/pdf":
            path = tmp_path / "notice.pdf"
            path.write_bytes(part.get_payload(decode=True))
            return subprocess.run(
                ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
            ).stdout
    raise AssertionError("no PDF attached")


INQUIRY = "脱炭素化ロードマップの改訂要否の確認"


def ichiros_inquiry(desk: Desk) -> bytes:
    [ours] = [m for m in desk.mails(INQUIRY) if ICHIRO in message_from_bytes(m)["To"]]
    return ours


def answer(in_reply_to: str, message_id: str, body: str, attach: bool = True) -> bytes:
    return build(
        "Re: " + ANSWER_SUBJECT,
        body,
        from_addr=ICHIRO,
        from_name="髙橋 一郎",
        to=LONG,
        attachments=[(ROADMAP_FILE, roadmap_workbook(), XLSX)] if attach else [],
        in_reply_to=in_reply_to,
        references=(in_reply_to,),
        message_id=message_id,
    )


def test_roadmap_campaign_from_roster_to_assessment(cli_desk: Desk, tmp_path: Path):
    desk = cli_desk
    load_sources(desk, tmp_path)
    printed = desk.out("2026-12-01T10:00", "campaign", "roadmap", "--deadline", "2026-12-18")
    assert "2 inquiry mail(s) queued in the outbox" in printed
    assert not desk.mails(INQUIRY)  # staff commands only queue: `mailbot run` sends
    desk.run("2026-12-01T10:00")
    assert len(desk.mails(INQUIRY)) == 2
    ours = ichiros_inquiry(desk)
    assert ROADMAP_FILE.removesuffix(".xlsx") in body_text(ours)
    inquiry_id = message_from_bytes(ours)["Message-ID"]

    desk.send(
        answer(
            inquiry_id,
            "<roadmap.1@takahashi-power.co.jp>",
            "改訂後の脱炭素化ロードマップを提出します。\n\n" + SOURCE_FIELDS,
        )
    )
    desk.run("2026-12-02T10:00")
    receipt = desk.reply_to("<roadmap.1@takahashi-power.co.jp>")
    assert "受付のお知らせ" in body_text(receipt) or "受け付けました" in body_text(receipt)
    [case] = [c for c in desk.cases("2026-12-02T10:01") if c["source_id"] == "L0000000001"]
    assert case["status"] == "complete", case["problems"]

    unanswered = desk.out("2026-12-02T10:02", "campaign", "unanswered")
    assert "L0000000002" in unanswered and "L0000000001" not in unanswered

    # 「修正が必要と判断された場合は、資源エネルギー庁より修正依頼が電子メールにて送付されます。」
    # (§3.1.3): staff only record that it came; the desk relays nothing.
    number = f"MB-{case['id']:06d}"

    def to_ichiro() -> int:
        return sum(ICHIRO in message_from_bytes(r)["To"] for r in desk.replies())

    before = to_ichiro()
    assert (
        desk.cli(
            "2026-12-08T10:00",
            "decide",
            number,
            "ministry-correction",
            "--reason",
            "資源エネルギー庁より前提条件の追記依頼（12/7付）",
            "--by",
            "佐藤",
        )
        == 0
    )
    desk.run("2026-12-08T10:01")
    assert to_ichiro() == before
    # 「修正後の脱炭素化ロードマップを資源エネルギー庁に再提出してください。」 (§3.1.4): one mailed
    # here is kept and answered with where it belongs.
    receipt_id = message_from_bytes(desk.reply_to("<roadmap.1@takahashi-power.co.jp>"))[
        "Message-ID"
    ]
    desk.send(
        answer(
            receipt_id,
            "<roadmap.2@takahashi-power.co.jp>",
            "修正した脱炭素化ロードマップを提出します。改訂後の脱炭素化ロードマップを提出します。\n\n"
            + SOURCE_FIELDS,
        )
    )
    desk.run("2026-12-09T10:00")
    pointer = body_text(desk.reply_to("<roadmap.2@takahashi-power.co.jp>"))
    assert "資源エネルギー庁へご提出ください" in pointer and "R1 のまま" in pointer
    [case] = [c for c in desk.cases("2026-12-09T10:01") if c["source_id"] == "L0000000001"]
    assert case["status"] == "complete", case["problems"]
    assert "roadmap_sent_here_for_the_ministry" in desk.out("2026-12-09T10:02", "case", number)

    assert "(with the upload reminder)" in desk.out(
        "2026-12-15T18:30", "assess", "roadmap", number, "--result", "pass", "--by", "佐藤"
    )
    assert not desk.mails("アセスメント結果通知書（脱炭素化ロードマップの遵守）")
    desk.run("2026-12-16T09:00")
    [notice] = desk.mails("アセスメント結果通知書（脱炭素化ロードマップの遵守）")
    # Every point of §3.1.8
    upload = body_text(notice)
    for point in (
        # ①資源エネルギー庁からの修正依頼を受けて修正した場合は修正後の脱炭素化ロードマップ
        "修正依頼を受けて修正した、修正後の脱炭素化ロードマップ",
        ROADMAP_FILE,  # 表3-4 最新版脱炭素化ロードマップのファイル命名規則
        "「脱炭素化ロードマップの改訂のため」",  # 変更理由は、特段の事情がない限り…
        "提出済みのファイルを削除しないでください",  # 注1：ファイルアップロード時の注意点
        "仮申込",  # この段階では仮申込の終了であり…
        "「申込完了」ボタン",
    ):
        assert point in upload, point
    text = pdf_text(notice, tmp_path)
    for expected in ("脱炭素化ロードマップ適合結果", "合格", "事業者コード A1B2", "L0000000001"):
        assert expected in text
    statuses = {c["id"]: c["status"] for c in desk.cases("2026-12-16T09:01")}
    assert statuses[case["id"]] == "closed"


def objection(received_on: str) -> bytes:
    return build(
        "【長期脱炭素電源オークション/A1B2】供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立",
        f"以下のアセスメント結果について、異議申立を行います。\n\n■アセスメント結果受領日 {received_on}\n"
        + SOURCE_FIELDS
        + "■異議申立の内容\n変更申請日は2023/03/28であり、メインオークションの開催年度より前です。\n",
        from_addr=ICHIRO,
        from_name="髙橋 一郎",
        to=LONG,
        message_id="<objection.1@takahashi-power.co.jp>",
    )


def test_supply_start_assessment_objection_and_reassessment(cli_desk: Desk, tmp_path: Path):
    desk = cli_desk
    load_sources(desk, tmp_path)
    printed = desk.assess_supply_start("2026-11-30T10:00", "2024/06/10")
    assert "result 不合格" in printed and "the notice waits in the outbox" in printed
    [notice] = desk.mails("アセスメント結果通知書（供給力提供開始時期の遵守）")
    assert "2026年12月7日まで" in body_text(notice)
    text = pdf_text(notice, tmp_path)
    assert "不合格" in text and "影響あり" in text and "株式会社髙橋電力 御中" in text

    desk.send(objection("2026/11/30"))
    desk.run("2026-12-03T10:00")
    assert "受付" in body_text(desk.reply_to("<objection.1@takahashi-power.co.jp>"))
    [case] = [
        c for c in desk.cases("2026-12-03T10:01") if c["procedure"] == "supply_start_objection"
    ]
    assert case["status"] == "complete", case["problems"]
    number = f"MB-{case['id']:06d}"
    reason = "変更申請日を再確認した結果、異議申立の内容を認めます。"
    assert (
        desk.cli("2026-12-04T10:00", "decide", number, "objection-accepted", "--reason", reason)
        == 0
    )
    desk.run("2026-12-04T10:01")
    [result] = desk.mails("異議申立に係る審査結果のお知らせ")
    assert reason in body_text(result)

    printed = desk.assess_supply_start("2026-12-07T10:00", "2023/03/28", "--reassessment")
    assert "result 合格" in printed
    [again] = desk.mails("再審査")
    assert "合格" in pdf_text(again, tmp_path)


def test_mismatch_inquiry_reminder_and_answer(cli_desk: Desk, tmp_path: Path):
    desk = cli_desk
    load_sources(desk, tmp_path)
    text = "提出された脱炭素化ロードマップの燃料種（バイオマス）と電源等情報（LNG）が一致しません。"
    printed = desk.out("2026-12-01T10:00", "inquiry", "mismatch", "L0000000002", "--text", text)
    assert "mismatch inquiry planned" in printed
    desk.run("2026-12-01T10:00")
    [inquiry] = desk.mails("不一致に係るお問い合わせ")
    assert text in body_text(inquiry)
    for now in ("2026-12-03T09:30", "2026-12-04T09:30", "2026-12-07T09:30", "2026-12-07T15:00"):
        desk.run(now)
    [reminder] = desk.mails("【再送】")
    assert HANAKO in message_from_bytes(reminder)["To"]
    inquiry_id = message_from_bytes(inquiry)["Message-ID"]
    desk.send(
        build(
            "Re: " + subject(inquiry),
            "ご連絡ありがとうございます。電源等情報の燃料種をバイオマスに変更いたしました。",
            from_addr=HANAKO,
            from_name="佐藤 花子",
            to=LONG,
            in_reply_to=inquiry_id,
            references=(inquiry_id,),
            message_id="<mismatch.1@tohoku-green.jp>",
        )
    )
    desk.run("2026-12-08T10:00")
    desk.reply_to("<mismatch.1@tohoku-green.jp>")
    [case] = [c for c in desk.cases("2026-12-08T10:01") if c["procedure"] == "mismatch_reply"]
    assert case["status"] in ("complete", "closed")
    desk.run("2026-12-10T10:00")
    assert len(desk.mails("【再送】")) == 1


def test_unrevised_answer_then_a_failed_roadmap_and_its_objection(cli_desk: Desk, tmp_path: Path):
    desk = cli_desk
    load_sources(desk, tmp_path)
    desk.out("2026-12-01T10:00", "campaign", "roadmap", "--deadline", "2026-12-18")
    desk.run("2026-12-01T10:00")
    ours = ichiros_inquiry(desk)
    desk.send(
        answer(
            message_from_bytes(ours)["Message-ID"],
            "<roadmap.u@takahashi-power.co.jp>",
            "本年度の脱炭素化ロードマップの改訂はありません。\n\n" + SOURCE_FIELDS,
            attach=False,
        )
    )
    desk.run("2026-12-02T10:00")
    [case] = [c for c in desk.cases("2026-12-02T10:01") if c["source_id"] == "L0000000001"]
    assert case["status"] == "complete", case["problems"]
    number = f"MB-{case['id']:06d}"
    printed = desk.out("2026-12-03T10:00", "assess", "roadmap", number, "--result", "fail")
    assert "result 不合格" in printed and "upload reminder" not in printed
    desk.run("2026-12-03T10:00")
    [notice] = desk.mails("アセスメント結果通知書（脱炭素化ロードマップの遵守）")
    assert "不合格" in pdf_text(notice, tmp_path)
    desk.send(
        build(
            "【長期脱炭素電源オークション/A1B2】脱炭素化ロードマップの遵守に係るアセスメント結果に対する異議申立",
            "以下のアセスメント結果について、異議申立を行います。\n\n■アセスメント結果受領日 2026/12/03\n"
            + SOURCE_FIELDS
            + "■異議申立の内容\n前提条件の記載は5項目すべてを満たしています。\n",
            from_addr=ICHIRO,
            from_name="髙橋 一郎",
            to=LONG,
            message_id="<roadmap.objection@takahashi-power.co.jp>",
        )
    )
    desk.run("2026-12-04T10:00")
    desk.reply_to("<roadmap.objection@takahashi-power.co.jp>")
    [objection] = [
        c for c in desk.cases("2026-12-04T10:01") if c["procedure"] == "roadmap_objection"
    ]
    assert objection["status"] == "complete", objection["problems"]
    assert (
        desk.cli(
            "2026-12-07T10:00",
            "decide",
            f"MB-{objection['id']:06d}",
            "objection-rejected",
            "--reason",
            "前提条件の記載が不足しているため、結果を維持します。",
        )
        == 0
    )
    desk.run("2026-12-07T10:01")
    [result] = desk.mails("異議申立に係る審査結果のお知らせ")
    assert "結果を維持します" in body_text(result)
