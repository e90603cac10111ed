"""The bundled sample mails (`data/samples/`): one of each kind of mail the desk gets on an
ordinary day, built the way Japanese mail clients build them, with what mailbot must make of each.

`python -m tests.support.samples` rewrites `data/samples/`; `tests/test_samples.py` runs the committed
files through the pipeline and checks every expectation below, so the demo cannot rot.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.support.forms import operator_form, plant_form, to_bytes
from tests.support.jpmail import TOKYO, XLSX, build, encode_jis, encoded_word

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "data" / "samples"
CODE = "code@occto.or.jp"
LONG = "youryou_rikuase_long@occto.or.jp"
OPERATORS_CSV = (
    "事業者コード,事業者名称,事業者名略称,郵便番号,住所,ドメイン名,連絡者メール,ライセンス区分\n"
    "1234,広域電力株式会社,広域電力_容,135-0061,東京都江東区豊洲6-2-15,example.co.jp,"
    "taro@example.co.jp,発電\n"
)
TAKAHASHI = {
    "事業者名称": "株式会社髙橋電力",
    "事業者名略称": "髙橋電力_容",
    "郵便番号": "１０１－００２１",
    "住所": "東京都千代田区外神田1-2-3 ㈱髙橋ビル",
    "ドメイン名": "takahashi-denryoku.co.jp",
    "連絡者所属": "電力事業部",
    "連絡者氏名": "髙橋 一郎",
    "連絡者メール": "ichiro@takahashi-denryoku.co.jp",
}
MINATO = {
    "事業者名称": "みなとエナジー株式会社",
    "事業者名略称": "みなとエナジー",
    "郵便番号": "1050011",
    "住所": "東京都港区芝公園4-1-1",
    "ドメイン名": "minato-energy.jp",
    "連絡者氏名": "佐々木 花子",
    "連絡者メール": "hanako@minato-enerugy.jp",
}


@dataclass(frozen=True)
class Sample:
    name: str
    what: str
    procedure: str
    status: str
    replies: tuple[str, ...]
    raw: bytes


def _at(hour: int, minute: int) -> datetime:
    return datetime(2026, 11, 25, hour, minute, tzinfo=TOKYO)


def _bounce() -> bytes:
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\n"
        b"To: code@occto.or.jp\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Date: Wed, 25 Nov 2026 10:40:00 +0900\r\n"
        b"Message-ID: <bounce.20261125104000@mx.example.net>\r\n"
        b"Auto-Submitted: auto-replied\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="rpt"\r\n\r\n'
        b"--rpt\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        b"Your message could not be delivered to nobody@example.org.\r\n\r\n"
        b"--rpt\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.net\r\n\r\n"
        b"Final-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        b"--rpt--\r\n"
    )


def _broken() -> bytes:
    """A multipart whose closing boundary never comes and whose base64 attachment is cut."""
    head = (
        f"From: {encoded_word('田中')} <tanaka@broken-client.example.jp>\r\n"
        "To: code@occto.or.jp\r\n"
        f"Subject: {encoded_word('申込書の送付')}\r\n"
        "Date: Wed, 25 Nov 2026 11:20:00 +0900\r\n"
        "Message-ID: <broken.1@broken-client.example.jp>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
        "--never-closed\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n"
    ).encode()
    return (
        head
        + encode_jis("申請書類を送付します。")
        + b"\r\n\r\n--never-closed\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="form.xlsx"\r\n\r\n'
        b"UEsDBBQABgAIAAAAIQBi7p1oXgEAAJAEAAATAAgCW0NvbnRlbnRfVHlwZXNd\r\nUEsDBBQABgAI=A\r\n"
    )


def samples() -> list[Sample]:
    form = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI))
    flawed = to_bytes(operator_form(licenses=("発電",), fields=MINATO))
    return [
        Sample(
            "01_operator_code_complete.eml",
            "事業者コード申請、不備なし（ISO-2022-JP、㈱・髙、RFC 2231 の添付ファイル名）",
            "operator_code_application",
            "complete",
            ("receipt",),
            build(
                "【容量市場向け事業者コード申請】株式会社髙橋電力",
                "容量市場ご担当者様\n\n株式会社髙橋電力の髙橋です。\n"
                "添付の通り、『容量市場向け事業者コード』を申請します。\n"
                "参加区分は、『安定電源』です。\n\nよろしくお願いいたします。\n\n"
                "㈱髙橋電力 電力事業部 髙橋 一郎\n",
                from_addr="ichiro@takahashi-denryoku.co.jp",
                from_name="髙橋 一郎",
                attachments=[("事業者マスタ申込書_髙橋電力.xlsx", form, XLSX)],
                message_id="<sample01.20261125@takahashi-denryoku.co.jp>",
                date=_at(9, 12),
            ),
        ),
        Sample(
            "02_operator_code_flawed.eml",
            "事業者コード申請、不備あり（Shift_JIS、参加区分なし、略称の誤り。連絡者メールのドメイン違いは担当者向けの備考のみ）",
            "operator_code_application",
            "needs_correction",
            ("correction",),
            build(
                "【容量市場向け事業者コード申請】みなとエナジー株式会社",
                "お世話になっております。\nみなとエナジーの佐々木です。\n"
                "容量市場向け事業者コードを申請いたします。申込書を添付します。\n",
                from_addr="hanako@minato-energy.jp",
                from_name="佐々木 花子",
                charset="shift_jis",
                transfer="base64",
                name_style="rfc2047-sjis",
                attachments=[("事業者マスタ申込書.xlsx", flawed, XLSX)],
                message_id="<sample02.20261125@minato-energy.jp>",
                date=_at(9, 40),
            ),
        ),
        Sample(
            "03_grid_code_application.eml",
            "アグリゲータ用系統コード申請（登録済みの事業者 1234 から、UTF-8）",
            "grid_code_application",
            "complete",
            ("receipt",),
            build(
                "【容量市場向けアグリゲータ用系統コード申請】広域電力株式会社",
                "ご担当者様\n\n添付の通り、『容量市場向けアグリゲータ用系統コード』を申請します。\n"
                "参加区分は、『発動指令電源（電源）』です。\n\n広域電力株式会社 山田\n",
                charset="utf-8",
                transfer="base64",
                attachments=[("発電所マスタ申込書.xlsx", to_bytes(plant_form()), XLSX)],
                message_id="<sample03.20261125@example.co.jp>",
                date=_at(10, 5),
            ),
        ),
        Sample(
            "04_sent_to_other_address.eml",
            "事業者コード申請を youryou_rikuase_long@ に送ってしまったもの（受付し、宛先を案内）",
            "operator_code_application",
            "needs_correction",
            ("correction",),
            build(
                "FW: 【容量市場向け事業者コード申請】",
                "添付の通り、『容量市場向け事業者コード』を申請します。\n"
                "参加区分は、『発動指令電源（DR）』です。\n申込書は後ほどお送りします。\n",
                from_addr="jiro@kita-dr.example.jp",
                from_name="北 次郎",
                to=LONG,
                message_id="<sample04.20261125@kita-dr.example.jp>",
                date=_at(10, 22),
            ),
        ),
        Sample(
            "05_question.eml",
            "手続きを特定できない問い合わせ（案内メールを1日1回まで返信）",
            "unrecognized",
            "unrecognized",
            ("guidance",),
            build(
                "容量市場の申込方法について",
                "ご担当者様\n\n容量市場への参加を検討しております。\n"
                "申込みに必要な書類を教えていただけますでしょうか。\n",
                from_addr="info@shinki-sannyu.example.jp",
                from_name="新規参入株式会社 総務部",
                message_id="<sample05.20261125@shinki-sannyu.example.jp>",
                date=_at(10, 30),
            ),
        ),
        Sample(
            "06_out_of_office.eml",
            "自動応答（不在通知）：保存のみで返信しない",
            "unrecognized",
            "ignored",
            (),
            build(
                "不在のお知らせ：【容量市場向け事業者コード申請】",
                "12月1日まで不在にしております。\n",
                from_addr="suzuki@example.org",
                from_name="鈴木",
                headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
                message_id="<sample06.20261125@example.org>",
                date=_at(10, 35),
            ),
        ),
        Sample(
            "07_bounce.eml",
            "配送不能通知（バウンス）：保存のみで返信しない",
            "unrecognized",
            "ignored",
            (),
            _bounce(),
        ),
        Sample(
            "08_html_only.eml",
            "HTML だけのメールでの事業者コード申請（申込書の添付なし）",
            "operator_code_application",
            "needs_correction",
            ("correction",),
            build(
                "【容量市場向け事業者コード申請】",
                "<html><body><p>添付の通り、『容量市場向け事業者コード』を申請します。</p>"
                "<p>参加区分は、『<b>変動電源（単独）</b>』です。</p></body></html>",
                from_addr="sato@html-mailer.example.jp",
                from_name="佐藤",
                charset="utf-8",
                transfer="quoted-printable",
                html=True,
                message_id="<sample08.20261125@html-mailer.example.jp>",
                date=_at(11, 0),
            ),
        ),
        Sample(
            "09_broken_mime.eml",
            "壊れた MIME（閉じないマルチパート、途中で切れた添付）：案件として保存し理由を記録",
            "unrecognized",
            "unrecognized",
            ("guidance",),
            _broken(),
        ),
        Sample(
            "10_corrected_resubmission.eml",
            "02 への再提出（charset 指定のない ISO-2022-JP、元のメールへの返信）",
            "operator_code_application",
            "complete",
            ("receipt",),
            build(
                "Re: 【容量市場向け事業者コード申請】みなとエナジー株式会社",
                "ご連絡ありがとうございます。修正した申込書を添付いたします。\n"
                "添付の通り、『容量市場向け事業者コード』を申請します。\n"
                "参加区分は、『安定電源』です。\n",
                from_addr="hanako@minato-energy.jp",
                from_name="佐々木 花子",
                charset="none",
                attachments=[
                    (
                        "事業者マスタ申込書_修正版.xlsx",
                        to_bytes(
                            operator_form(
                                licenses=("発電",),
                                fields=MINATO
                                | {
                                    "事業者名略称": "みなと_容",
                                    "連絡者メール": "hanako@minato-energy.jp",
                                },
                            )
                        ),
                        XLSX,
                    )
                ],
                name_style="rfc2047-jis",
                in_reply_to="<sample02.20261125@minato-energy.jp>",
                references=("<sample02.20261125@minato-energy.jp>",),
                message_id="<sample10.20261125@minato-energy.jp>",
                date=_at(13, 15),
            ),
        ),
    ]


def write(directory: Path = SAMPLES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.eml"):
        old.unlink()
    written = []
    for sample in samples():
        path = directory / sample.name
        path.write_bytes(sample.raw)
        written.append(path)
    (directory / "operators.csv").write_text(OPERATORS_CSV, encoding="utf-8")
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else SAMPLES_DIR):
        print(path)
