"""事業者コード申請 and 系統コード申請 (SPEC §3.1–3.2, seed 000), rule by rule, on mails and
workbooks built as participants send them, taken through the real pipeline and SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.cli import case_json
from mailbot.context import Context
from mailbot.desk.decisions import decide
from mailbot.errors import DecisionError
from mailbot.outbox.send import flush_outbox, make_sender
from mailbot.store.registers import operator
from tests.support.desk import body_text, desk_with_operators, outbox, set_now, submit_to
from tests.support.forms import operator_form, plant_form, to_bytes
from tests.support.hostile import ATTACKS
from tests.support.jpmail import XLSX, build
from tests.support.samples import TAKAHASHI

CODE = "code@occto.or.jp"
SENDER = "ichiro@takahashi-denryoku.co.jp"
BODY = "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『安定電源』です。\n"
GRID_BODY = (
    "添付の通り、『容量市場向けアグリゲータ用系統コード』を申請します。\n"
    "参加区分は、『発動指令電源（電源）』です。\n"
)


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = desk_with_operators(tmp_path)  # Friday; Monday 23rd is 勤労感謝の日
    yield ctx
    ctx.close()


def submit(ctx: Context, raw: bytes, mailbox: str = CODE) -> dict:
    return submit_to(ctx, raw, mailbox)


def application(
    fields: dict | None = None,
    licenses: tuple[str, ...] = ("発電",),
    body: str = BODY,
    attachments: list | None = None,
    **kwargs,
) -> bytes:
    form = to_bytes(operator_form(licenses=licenses, fields=TAKAHASHI | (fields or {})))
    kwargs.setdefault("from_addr", SENDER)
    kwargs.setdefault("from_name", "髙橋 一郎")
    return build(
        "【容量市場向け事業者コード申請】株式会社髙橋電力",
        body,
        attachments=[("事業者マスタ申込書.xlsx", form, XLSX)]
        if attachments is None
        else attachments,
        **kwargs,
    )


def fields_of(case: dict) -> list[str]:
    return [p["field"] for p in case["problems"]]


def test_complete_application_gets_a_receipt_and_a_due_date_in_business_days(desk: Context):
    case = submit(desk, application(charset="shift_jis", transfer="base64"))
    assert case["status"] == "complete", case["problems"]
    assert case["problems"] == []
    # 5 business days from Friday 20th, skipping the weekend and 勤労感謝の日 (Mon 23rd)
    assert case_json(case)["due"] == "2026-11-30"
    [receipt] = outbox(desk, "receipt")
    assert "事業者マスタ申込書.xlsx" in body_text(receipt["raw"])


XLS = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 2048


@pytest.mark.parametrize(
    ("why", "kwargs", "field"),
    [
        ("no application statement", {"body": "参加区分は、『安定電源』です。"}, "本文"),
        (
            "no 参加区分",
            {"body": "添付の通り、『容量市場向け事業者コード』を申請します。"},
            "参加区分",
        ),
        (
            "two 参加区分 needing different licenses",
            {"body": BODY + "参加区分は、『発動指令電源（DR）』です。"},
            "参加区分",
        ),
        ("略称 without _容", {"fields": {"事業者名略称": "髙橋電力"}}, "事業者名略称"),
        (
            "略称 over 10 characters",
            {"fields": {"事業者名略称": "髙橋電力株式会社本店_容"}},
            "事業者名略称",
        ),
        ("名称 over width 50", {"fields": {"事業者名称": "髙" * 26}}, "事業者名称"),
        ("郵便番号 malformed", {"fields": {"郵便番号": "101-21"}}, "郵便番号"),
        ("申請区分 not 新規", {"fields": {"申請区分": "変更"}}, "申請区分"),
        ("適用開始日 not a date", {"fields": {"適用開始日": "来年4月"}}, "適用開始日"),
        ("no ライセンス区分", {"licenses": ()}, "ライセンス区分"),
        ("ライセンス区分 the table does not allow", {"licenses": ("小売",)}, "ライセンス区分"),
        ("no form attached", {"attachments": []}, "添付ファイル"),
        (
            "legacy .xls",
            {"attachments": [("事業者マスタ申込書.xls", XLS, "application/vnd.ms-excel")]},
            "添付ファイル",
        ),
        (
            "macro workbook",
            {"attachments": [("事業者マスタ申込書.xlsm", ATTACKS["macro"](), XLSX)]},
            "添付ファイル",
        ),
        (
            "not a workbook",
            {"attachments": [("事業者マスタ申込書.xlsx", b"PK\x03\x04garbage", XLSX)]},
            "添付ファイル",
        ),
    ],
)
def test_each_rule_is_a_correction_under_the_forms_label(desk: Context, why, kwargs, field):
    case = submit(desk, application(**kwargs))
    assert case["status"] == "needs_correction", why
    assert field in fields_of(case), (why, case["problems"])
    [mail] = outbox(desk, "correction")
    assert f"【{field}】" in body_text(mail["raw"])


def test_two_categories_of_one_license_are_one_application(desk: Context):
    """Seed 000 参考資料: 「※ライセンス区分が同一の場合、事業者コードを複数取得する必要はありません。」
    安定電源 and 変動電源（単独） both need 発電: naming both is no 不備."""
    case = submit(desk, application(body=BODY + "参加区分は、『変動電源（単独）』です。"))
    assert case["status"] == "complete", case["problems"]
    assert "参加区分" not in fields_of(case)


def test_negawatt_names_target_areas_and_attaches_nothing_more(desk: Context):
    """「ネガワット事業対象エリア (ネガワット事業者のみ回答)」 — and 「容量市場向けの事業者コード
    申請については、添付は不要です。」 (seed 000): no proof of contract is asked for."""
    body = BODY.replace("安定電源", "発動指令電源（DR）")
    case = submit(desk, application(licenses=("区分なし(需要抑制)",), body=body))
    assert fields_of(case) == ["ネガワット事業対象エリア"]
    form = to_bytes(
        operator_form(licenses=("区分なし(需要抑制)",), marks={"東京": "○"}, fields=TAKAHASHI)
    )
    set_now(desk, "2026-11-24T10:00")
    fixed = submit(
        desk,
        application(
            body=body,
            attachments=[("事業者マスタ申込書.xlsx", form, XLSX)],
            message_id="<fixed@takahashi-denryoku.co.jp>",
        ),
    )
    assert fixed["status"] == "complete", fixed["problems"]


def test_a_held_code_that_serves_means_no_new_code(desk: Context):
    body = BODY
    case = submit(
        desk,
        application(
            body=body,
            fields={
                "事業者名称": "広域電力株式会社",
                "ドメイン名": "example.co.jp",
                "連絡者メール": "taro@example.co.jp",
            },
            from_addr="taro@example.co.jp",
        ),
    )
    assert case["status"] == "closed"
    [mail] = outbox(desk, "code_not_needed")
    assert "1234" in body_text(mail["raw"])


def test_resubmission_from_another_address_is_held_for_staff(desk: Context):
    first = submit(desk, application(fields={"事業者名略称": "髙橋"}))
    [correction] = outbox(desk, "correction")
    resubmission = application(
        from_addr="someone@elsewhere.example",
        in_reply_to=correction["message_id"],
        references=(correction["message_id"],),
    )
    case = submit(desk, resubmission)
    assert case["status"] == "held"
    assert case["id"] != first["id"]
    assert desk.store.case(first["id"])["status"] == "needs_correction"
    held_events = [e for e in desk.store.events(case["id"]) if e["kind"] == "held"]
    assert held_events[0]["detail"]["target_case"] == first["id"]
    [held] = outbox(desk, "held")
    text = body_text(held["raw"])
    assert "MB-000001" not in text and "事業者名略称" not in text


def test_staff_issue_the_next_free_code_or_refuse_one_in_use(desk: Context):
    case = submit(desk, application())
    with pytest.raises(DecisionError, match="事業者コード 1234 は既に使われています"):
        decide(desk, case["id"], "issue-code", "1234", by="staff")
    decide(desk, case["id"], "issue-code", by="佐藤")
    closed = desk.store.case(case["id"])
    assert closed["status"] == "closed"
    issued = closed["operator_code"]
    assert issued and issued != "1234"
    assert operator(desk.store, issued)["name"] == "株式会社髙橋電力"
    [notice] = outbox(desk, "code_notice")
    assert issued in body_text(notice["raw"])
    events = [e for e in desk.store.events(case["id"]) if e["kind"] == "code_issued"]
    assert events and events[0]["actor"] == "staff:佐藤"


def test_staff_rejection_is_mailed_with_the_reason(desk: Context):
    case = submit(desk, application())
    decide(desk, case["id"], "reject", reason="既に同名の事業者で登録があります", by="staff")
    assert desk.store.case(case["id"])["status"] == "closed"
    [mail] = outbox(desk, "rejection")
    assert "既に同名の事業者で登録があります" in body_text(mail["raw"])


def grid(fields: dict | None = None, body: str = GRID_BODY, **kwargs) -> bytes:
    kwargs.setdefault("from_addr", "taro@example.co.jp")
    return build(
        "【容量市場向けアグリゲータ用系統コード申請】",
        body,
        attachments=[("発電所マスタ申込書.xlsx", to_bytes(plant_form(fields)), XLSX)],
        **kwargs,
    )


def test_complete_grid_application_due_in_fifteen_business_days(desk: Context):
    case = submit(desk, grid(charset="utf-8"))
    assert case["status"] == "complete", case["problems"]
    assert case["operator_code"] == "1234"
    assert case_json(case)["due"] == "2026-12-14"


@pytest.mark.parametrize(
    ("why", "fields", "field"),
    [
        ("not 低圧", {"電圧種別": "高圧"}, "電圧種別"),
        ("not 非調整電源", {"電源種別": "調整電源"}, "電源種別"),
        ("契約開始日 not 2020/03/01", {"契約開始日": "2021/04/01"}, "契約開始日"),
        ("capacity not 999,999,999", {"同時最大受電電力": "500kW"}, "同時最大受電電力"),
        ("略称 pattern", {"発電所名略称": "アグリ12343"}, "発電所名略称"),
        ("略称 missing", {"発電所名略称": None}, "発電所名略称"),
        ("area digit differs from area", {"電源所属エリア名": "関西"}, "発電所名略称"),
        ("発電所名 not the registered 事業者名称", {"発電所名": "アグリ1234301"}, "発電所名"),
        (
            "owner name differs",
            {"事業者名称(発電所所有者)": "別会社株式会社"},
            "事業者名称(発電所所有者)",
        ),
        (
            "owner address differs",
            {"住所(発電所所在地)": "大阪府大阪市北区1-1"},
            "住所(発電所所在地)",
        ),
        (
            "code never issued",
            {"発電所名略称": "アグリ9999301", "事業者コード(発電所所有者)": "99993"},
            "事業者コード(発電所所有者)",
        ),
    ],
)
def test_each_plant_form_rule(desk: Context, why, fields, field):
    case = submit(desk, grid(fields))
    assert case["status"] == "needs_correction", why
    assert field in fields_of(case), (why, case["problems"])


def test_grid_code_is_not_needed_for_stable_sources(desk: Context):
    case = submit(desk, grid(body=GRID_BODY.replace("発動指令電源（電源）", "安定電源")))
    assert case["status"] == "closed"
    assert outbox(desk, "code_not_needed")


def test_grid_application_from_outside_the_operator_is_held(desk: Context):
    case = submit(desk, grid(from_addr="someone@elsewhere.example"))
    assert case["status"] == "held"


def test_a_serial_already_issued_in_that_area_is_refused(desk: Context):
    first = submit(desk, grid())
    decide(desk, first["id"], "issue-code", "1YA22", by="staff")
    again = submit(desk, grid(message_id="<again@example.co.jp>"))
    assert "発電所名略称" in fields_of(again)
    assert "既に使用されております" in again["problems"][0]["message"]


def test_a_reply_to_a_closed_case_is_a_new_case_for_staff(desk: Context):
    case = submit(desk, application())
    decide(desk, case["id"], "issue-code", by="staff")
    [notice] = outbox(desk, "code_notice")
    thanks = build(
        "Re: 【受付番号 MB-000001】事業者コードのお知らせ",
        "ありがとうございました。ところで、系統コードの申請方法を教えてください。",
        from_addr=SENDER,
        in_reply_to=notice["message_id"],
        references=(notice["message_id"],),
    )
    follow_up = submit(desk, thanks)
    assert follow_up["id"] != case["id"]
    assert follow_up["status"] == "held"
    assert "MB-000001" in follow_up["reason"]
    assert desk.store.case(case["id"])["status"] == "closed"


def test_a_bounced_reply_marks_the_mail_and_tells_staff(desk: Context):
    submit(desk, application())
    flush_outbox(desk, make_sender(desk))
    [receipt] = outbox(desk, "receipt")
    dsn = (
        b"From: MAILER-DAEMON@mx.takahashi-denryoku.co.jp\r\nTo: code@occto.or.jp\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn.1@mx.example>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nUser unknown\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; "
        + SENDER.encode()
        + b"\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: "
        + receipt["message_id"].encode()
        + b"\r\n\r\n--b--\r\n"
    )
    submit(desk, dsn)
    assert outbox(desk, "receipt")[0]["state"] == "bounced"
    [told] = outbox(desk, "staff_undeliverable")
    assert told["recipient"] == "capacity-desk@occto.or.jp"
    assert SENDER in body_text(told["raw"])


def test_a_mail_failing_dmarc_is_held_unanswered(desk: Context):
    verdict = "mx.occto.or.jp; spf=fail smtp.mailfrom=evil.example; dmarc=fail (p=reject) header.from=takahashi-denryoku.co.jp"
    case = submit(desk, application(headers={"Authentication-Results": verdict}))
    assert case["status"] == "held"
    assert "DMARC" in case["reason"]
    assert outbox(desk) == []


def test_a_dmarc_fail_below_our_pass_still_holds(desk: Context):
    """Fail-safe: a dmarc=fail in any Authentication-Results header holds the mail unanswered
    (a forged one only holds the forger's own mail)."""
    raw = application(message_id="<fine@takahashi-denryoku.co.jp>")
    ours = b"Authentication-Results: mx.occto.or.jp; dmarc=pass header.from=takahashi-denryoku.co.jp\r\n"
    below = b"Authentication-Results: mx.occto.or.jp; dmarc=fail\r\n"
    head, _, body = raw.partition(b"\r\n\r\n")
    case = submit(desk, ours + head + b"\r\n" + below + b"\r\n" + body)
    assert case["status"] == "held" and outbox(desk) == []
