"""The whole life of a code application, from the CLI, as a participant and staff live it:
flawed application → correction request → corrected reply in the thread → staff issue the code →
code notice → grid-code application under that code → receipt → grid code notice.

Run twice: on the embedded default (Maildir in and out) and on the real Dovecot + aiosmtpd."""

from __future__ import annotations

from email import message_from_bytes

from tests.support.cycle import Desk, subject
from tests.support.desk import body_text
from tests.support.forms import operator_form, plant_form, to_bytes
from tests.support.jpmail import XLSX, build
from tests.support.samples import TAKAHASHI

SENDER = "ichiro@takahashi-denryoku.co.jp"
BODY = "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『発動指令電源（電源）』です。\n"
GRID_BODY = (
    "添付の通り、『容量市場向けアグリゲータ用系統コード』を申請します。\n"
    "参加区分は、『発動指令電源（電源）』です。\n"
)


def test_full_cycle(cli_desk: Desk) -> None:
    desk = cli_desk
    flawed = to_bytes(
        operator_form(licenses=("発電",), fields=TAKAHASHI | {"事業者名略称": "髙橋電力"})
    )
    desk.send(
        build(
            "【容量市場向け事業者コード申請】株式会社髙橋電力",
            BODY,
            from_addr=SENDER,
            from_name="髙橋 一郎",
            attachments=[("事業者マスタ申込書.xlsx", flawed, XLSX)],
            message_id="<apply.1@takahashi-denryoku.co.jp>",
        )
    )
    desk.run("2026-11-24T09:30")
    correction = desk.reply_to("<apply.1@takahashi-denryoku.co.jp>")
    assert "【事業者名略称】" in body_text(correction)
    [case] = desk.cases("2026-11-24T09:31")
    assert case["status"] == "needs_correction"
    assert [p["field"] for p in case["problems"]] == ["事業者名略称"]

    correction_id = message_from_bytes(correction)["Message-ID"]
    fixed = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI))
    desk.send(
        build(
            "Re: 【受付番号 MB-000001】不備のご連絡（容量市場向け事業者コード申請）",
            "修正した申込書を添付いたします。\n"
            + BODY
            + "\n> 事業者名略称は、末尾に「_容」を付けてください\n",
            from_addr=SENDER,
            from_name="髙橋 一郎",
            attachments=[("事業者マスタ申込書_修正.xlsx", fixed, XLSX)],
            message_id="<apply.2@takahashi-denryoku.co.jp>",
            in_reply_to=correction_id,
            references=("<apply.1@takahashi-denryoku.co.jp>", correction_id),
        )
    )
    desk.run("2026-11-25T10:00")
    receipt = desk.reply_to("<apply.2@takahashi-denryoku.co.jp>")
    assert "受付番号　　MB-000001" in body_text(receipt)
    [case] = desk.cases("2026-11-25T10:01")
    assert case["status"] == "complete" and case["problems"] == []
    assert case["due"] == "2026-12-02"

    assert desk.cli("2026-11-26T10:00", "decide", "MB-000001", "issue-code", "--by", "佐藤") == 0
    desk.run("2026-11-26T10:01")
    [case] = desk.cases("2026-11-26T10:02")
    code = case["operator_code"]
    assert case["status"] == "closed" and code
    [notice] = [r for r in desk.replies() if "事業者コードのお知らせ" in subject(r)]
    assert code in body_text(notice)
    assert SENDER in message_from_bytes(notice)["To"]

    plant = to_bytes(
        plant_form(
            {
                "発電所名": TAKAHASHI["事業者名称"],
                "発電所名略称": f"アグリ{code}301",
                "事業者コード(発電所所有者)": f"{code}3",
                "事業者名称(発電所所有者)": TAKAHASHI["事業者名称"],
                "住所(発電所所在地)": TAKAHASHI["住所"],
                "連絡者メール": SENDER,
            }
        )
    )
    desk.send(
        build(
            "【容量市場向けアグリゲータ用系統コード申請】株式会社髙橋電力",
            GRID_BODY,
            from_addr=SENDER,
            from_name="髙橋 一郎",
            attachments=[("発電所マスタ申込書.xlsx", plant, XLSX)],
            message_id="<grid.1@takahashi-denryoku.co.jp>",
        )
    )
    desk.run("2026-11-27T10:00")
    assert "受付番号　　MB-000002" in body_text(desk.reply_to("<grid.1@takahashi-denryoku.co.jp>"))
    grid_case = desk.cases("2026-11-27T10:01")[1]
    assert grid_case["status"] == "complete", grid_case["problems"]
    assert grid_case["operator_code"] == code

    assert (
        desk.cli("2026-11-30T10:00", "decide", "MB-000002", "issue-code", "1YA22", "--by", "佐藤")
        == 0
    )
    desk.run("2026-11-30T10:01")
    [grid_notice] = [r for r in desk.replies() if "系統コードのお知らせ" in subject(r)]
    assert f"■発電所名略称　　　アグリ{code}301" in body_text(grid_notice)
    assert "■系統コード　　　　1YA22" in body_text(grid_notice)
    assert desk.cases("2026-11-30T10:02")[1]["status"] == "closed"

    before = len(desk.replies())
    desk.run("2026-11-30T10:05")
    assert len(desk.replies()) == before
