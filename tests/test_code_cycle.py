"""The whole life of a code application, from the CLI, as a participant and staff live it:
flawed application → correction request → corrected reply in the thread → staff issue the code →
code notice → grid-code application under that code → receipt → grid code notice.

Run twice: on the embedded default (Maildir in and out) and on the real Dovecot + aiosmtpd."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path

import pytest

from mailbot.cli import main
from tests.desk import body_text
from tests.forms import operator_form, plant_form, to_bytes
from tests.jpmail import XLSX, build
from tests.samples import TAKAHASHI
from tests.servers import Dovecot, SmtpCapture

SENDER = "ichiro@takahashi-denryoku.co.jp"
BODY = "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『発動指令電源（電源）』です。\n"
GRID_BODY = (
    "添付の通り、『容量市場向けアグリゲータ用系統コード』を申請します。\n"
    "参加区分は、『発動指令電源（電源）』です。\n"
)


@dataclass
class Desk:
    """How mail reaches mailbot and how its replies are seen, for one backend."""

    config: list[str]
    send: Callable[[bytes], None]
    replies: Callable[[], list[bytes]]

    def cli(self, now: str, *args: str) -> int:
        return main([*self.config, "--now", now, *args])

    def run(self, now: str) -> None:
        assert self.cli(now, "run", "--once") == 0

    def reply_to(self, message_id: str) -> bytes:
        found = [r for r in self.replies() if message_from_bytes(r)["In-Reply-To"] == message_id]
        assert len(found) == 1, f"{len(found)} replies to {message_id}"
        return found[0]


def subject(raw: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(raw)["Subject"])))


def cases(desk: Desk, now: str, capsys: pytest.CaptureFixture) -> list[dict]:
    capsys.readouterr()
    assert desk.cli(now, "cases", "--json") == 0
    return json.loads(capsys.readouterr().out)


def full_cycle(desk: Desk, capsys: pytest.CaptureFixture) -> None:
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
    [case] = cases(desk, "2026-11-24T09:31", capsys)
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
    [case] = cases(desk, "2026-11-25T10:01", capsys)
    assert case["status"] == "complete" and case["problems"] == []
    assert case["due"] == "2026-12-02"

    assert desk.cli("2026-11-26T10:00", "decide", "MB-000001", "issue-code", "--by", "佐藤") == 0
    desk.run("2026-11-26T10:01")
    [case] = cases(desk, "2026-11-26T10:02", capsys)
    code = case["operator_code"]
    assert case["status"] == "closed" and code
    [notice] = [r for r in desk.replies() if "事業者コードのお知らせ" in subject(r)]
    assert code in body_text(notice)
    assert SENDER in message_from_bytes(notice)["To"]

    plant = to_bytes(
        plant_form(
            {
                "発電所名": f"アグリ{code}301",
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
    grid_case = cases(desk, "2026-11-27T10:01", capsys)[1]
    assert grid_case["status"] == "complete", grid_case["problems"]
    assert grid_case["operator_code"] == code

    assert desk.cli("2026-11-30T10:00", "decide", "MB-000002", "issue-code", "--by", "佐藤") == 0
    desk.run("2026-11-30T10:01")
    [grid_notice] = [r for r in desk.replies() if "系統コードのお知らせ" in subject(r)]
    assert f"アグリ{code}301" in body_text(grid_notice)
    assert cases(desk, "2026-11-30T10:02", capsys)[1]["status"] == "closed"

    before = len(desk.replies())
    desk.run("2026-11-30T10:05")
    assert len(desk.replies()) == before


def test_cycle_on_the_embedded_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    counter = iter(range(1000))

    def send(raw: bytes) -> None:
        path = tmp_path / f"in{next(counter)}.eml"
        path.write_bytes(raw)
        assert main(["deliver", str(path)]) == 0

    def replies() -> list[bytes]:
        folder = tmp_path / "data" / "outbox" / "new"
        return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.exists() else []

    full_cycle(Desk([], send, replies), capsys)


def test_cycle_on_real_imap_and_smtp(
    tmp_path: Path,
    dovecot: Dovecot,
    smtp_server: SmtpCapture,
    capsys: pytest.CaptureFixture,
):
    config = tmp_path / "config.toml"
    config.write_text(
        f'[storage]\ndatabase = "{tmp_path / "mailbot.db"}"\n\n'
        + dovecot.mailbox_config("code", "code@occto.or.jp")
        + "\n"
        + dovecot.mailbox_config("youryou", "youryou_rikuase_long@occto.or.jp")
        + "\n"
        + smtp_server.outgoing_config(),
        encoding="utf-8",
    )
    full_cycle(
        Desk(
            ["--config", str(config)],
            lambda raw: dovecot.append("code", raw),
            lambda: [m.data for m in smtp_server.messages],
        ),
        capsys,
    )
