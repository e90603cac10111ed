"""Issue 23's code-application answers (seed 000): one 事業者コード per company at decision
time on every desk, the 系統コード stated in its notice, no company's code told to a stranger,
the register in the forms the checks compare, two forms in one mail, and the seed's words on
クライアント証明書 and on changing contact details. Real pipeline, real SQLite, the CLI as
staff run it, the report workbook and the web desk."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mailbot.cli import main
from mailbot.clock import Clock, parse_instant
from mailbot.config import load_config
from mailbot.context import Context
from mailbot.desk.decisions import decide
from mailbot.desk.staff import add_staff
from mailbot.desk.web.app import create_app
from mailbot.errors import DecisionError
from mailbot.store.registers import operator, operators_named
from tests.support.desk import SOURCES_CSV, body_text, desk_with_operators, outbox, submit_to
from tests.support.forms import operator_form, plant_form, to_bytes
from tests.support.jpmail import XLSX, build
from tests.support.samples import SAMPLES_DIR, TAKAHASHI

CODE = "code@occto.or.jp"
SENDER = "ichiro@takahashi-denryoku.co.jp"
BODY = "添付の通り、『容量市場向け事業者コード』を申請します。\n参加区分は、『安定電源』です。\n"
GRID_BODY = (
    "添付の通り、『容量市場向けアグリゲータ用系統コード』を申請します。\n"
    "参加区分は、『発動指令電源（電源）』です。\n"
)
SAME_LICENSE = "ライセンス区分が同一の場合、事業者コードを複数取得する必要はありません"


def application(fields: dict | None = None, **kwargs) -> bytes:
    form = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI | (fields or {})))
    kwargs.setdefault("from_addr", SENDER)
    kwargs.setdefault("from_name", "髙橋 一郎")
    return build(
        "【容量市場向け事業者コード申請】株式会社髙橋電力",
        BODY,
        attachments=kwargs.pop("attachments", [("事業者マスタ申込書.xlsx", form, XLSX)]),
        **kwargs,
    )


def grid(fields: dict | None = None, **kwargs) -> bytes:
    kwargs.setdefault("from_addr", "taro@example.co.jp")
    return build(
        "【容量市場向けアグリゲータ用系統コード申請】",
        GRID_BODY,
        attachments=[("発電所マスタ申込書.xlsx", to_bytes(plant_form(fields)), XLSX)],
        **kwargs,
    )


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = desk_with_operators(tmp_path)
    yield ctx
    ctx.close()


def submit(ctx: Context, raw: bytes) -> dict:
    return submit_to(ctx, raw, CODE)


# Point 3: one company, one code of a license, whichever desk decides ------------------------


@pytest.fixture
def cli_desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The same application sent twice, two days apart, with new Message-IDs."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    assert (
        main(
            ["--now", "2026-11-24T08:00", "operators", "import", str(SAMPLES_DIR / "operators.csv")]
        )
        == 0
    )
    for n, day in ((1, "24"), (2, "26")):
        path = tmp_path / f"apply{n}.eml"
        path.write_bytes(application(message_id=f"<apply.{n}@takahashi-denryoku.co.jp>"))
        assert main(["--now", f"2026-11-{day}T09:30", "ingest", str(path)]) == 0
    return tmp_path


def test_a_resent_application_is_linked_to_the_first_and_shown_to_staff(cli_desk: Path, capsys):
    """The rule: a second open application of the same 事業者名称 is linked to the first (an
    event and a staff remark on it), so staff see one company twice before deciding."""
    ctx = Context.open(load_config(None), Clock(parse_instant("2026-11-26T10:00")))
    try:
        first, second = ctx.store.case(1), ctx.store.case(2)
        assert first["status"] == second["status"] == "complete"
        assert second["data"]["same_company_cases"] == [1]
        [remark] = [r for r in second["data"]["remarks"] if "MB-000001" in r["message"]]
        assert remark["field"] == "事業者名称"
        assert any(e["kind"] == "same_company_application" for e in ctx.store.events(2))
        [back] = [e for e in ctx.store.events(1) if e["kind"] == "same_company_application"]
        assert back["detail"]["cases"] == ["MB-000002"]
    finally:
        ctx.close()
    capsys.readouterr()
    assert main(["--now", "2026-11-26T10:00", "case", "MB-000002"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"備考（担当者のみ）: 事業者名称: .*MB-000001", text), text
    assert "same_company_application  cases=MB-000001" in text
    assert main(["--now", "2026-11-26T10:00", "case", "MB-000001"]) == 0
    assert "same_company_application  cases=MB-000002" in capsys.readouterr().out
    assert main(["--now", "2026-11-26T10:00", "report", "--xlsx", "report.xlsx"]) == 0
    sheet = load_workbook(cli_desk / "report.xlsx")["未処理案件"]
    header = [c.value for c in sheet[1]]
    rows = {r[header.index("受付番号")]: r for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert "MB-000001" in str(rows["MB-000002"][header.index("不備・確認事項")])


def test_the_second_code_for_one_company_is_refused_on_every_desk(cli_desk: Path, capsys):
    """Seed 000 参考資料: 「※ライセンス区分が同一の場合、事業者コードを複数取得する必要はありません。」
    The rule holds when staff decide, too: once MB-000001 is issued, issuing MB-000002 (the same
    company, the same 発電 license) is refused by `decide` (exit 5), by `decisions apply`, and
    by the web desk — all through one function — and the register keeps one code."""
    assert main(["--now", "2026-11-26T10:00", "decide", "MB-000001", "issue-code"]) == 0
    capsys.readouterr()
    assert main(["--now", "2026-11-26T10:05", "decide", "MB-000002", "issue-code"]) == 5
    err = capsys.readouterr().err
    assert "株式会社髙橋電力 は既に事業者コード 1235" in err and SAME_LICENSE in err, err

    assert main(["--now", "2026-11-26T10:10", "report", "--xlsx", "report.xlsx"]) == 0
    book = load_workbook(cli_desk / "report.xlsx")
    sheet = book["未処理案件"]
    header = [c.value for c in sheet[1]]
    for row in sheet.iter_rows(min_row=2):
        if row[header.index("受付番号")].value == "MB-000002":
            row[header.index("判断")].value = "issue-code"
    book.save(cli_desk / "report.xlsx")
    capsys.readouterr()
    assert main(["--now", "2026-11-26T10:15", "decisions", "apply", "report.xlsx"]) == 1
    assert SAME_LICENSE in capsys.readouterr().out

    config = load_config(None)
    web = _web_login(config, "2026-11-26T10:20")
    page = web.get("/cases/2", base_url="https://localhost").text
    assert "備考（担当者のみ" in page and "MB-000001" in page
    answer = web.post(
        "/cases/2/decide",
        data={
            "csrf": re.search(r'name="csrf" value="([^"]+)"', page).group(1),
            "version": re.search(r'name="version" value="(\d+)"', page).group(1),
            "action": "issue-code",
            "arg": "",
        },
        base_url="https://localhost",
    )
    assert answer.status_code == 409 and SAME_LICENSE in answer.text

    ctx = Context.open(config, Clock(parse_instant("2026-11-26T10:30")))
    try:
        assert [op["code"] for op in operators_named(ctx.store, "株式会社髙橋電力")] == ["1235"]
        assert ctx.store.case(2)["status"] == "complete"
    finally:
        ctx.close()


def test_a_code_registered_after_the_receipt_still_stops_a_second_one(desk: Context, tmp_path):
    """The rule at decision time, not only at intake: the register learns of the company's
    発電 code (an import) after its application was received; issuing another is refused."""
    case = submit(desk, application())
    assert case["status"] == "complete"
    from mailbot.store.registers import import_operators

    csv = tmp_path / "more.csv"
    csv.write_text(
        "事業者コード,事業者名称,ドメイン名,連絡者メール,ライセンス区分\n"
        "7777,株式会社 髙橋電力,takahashi-denryoku.co.jp,ichiro@takahashi-denryoku.co.jp,小売\n",
        encoding="utf-8",
    )
    import_operators(desk.store, csv, desk.now())
    with pytest.raises(DecisionError, match=f"既に事業者コード 7777.*{SAME_LICENSE}"):
        decide(desk, case["id"], "issue-code", by="staff")


# Point 2: the 系統コード notice carries the 系統コード ------------------------------------------


def test_the_grid_code_notice_states_the_issued_grid_code(desk: Context):
    """Seed 000: 「申請から最大3週間程度で系統コードを通知いたします。」 and its example
    「1YA22 ※新規取得が必要」. Staff give the code (the seed has no rule to make one:
    「実際に発番されるコードは、申請毎に異なります」); it is registered, unique, and stated."""
    case = submit(desk, grid())
    assert case["status"] == "complete", case["problems"]
    [receipt] = outbox(desk, "receipt")
    assert "申請から最大3週間程度で系統コードを通知いたします。" in body_text(receipt["raw"])
    with pytest.raises(DecisionError, match="系統コードを指定してください"):
        decide(desk, case["id"], "issue-code", by="staff")
    with pytest.raises(DecisionError, match="系統コードの形式"):
        decide(desk, case["id"], "issue-code", "1YA2", by="staff")
    decide(desk, case["id"], "issue-code", "１ｙａ２２", by="staff")
    [notice] = outbox(desk, "code_notice")
    assert "■系統コード　　　　1YA22" in body_text(notice["raw"])
    assert desk.store.grid_codes_of("1234") == [
        {
            "grid_code": "1YA22",
            "plant_name": "アグリ1234301",
            "area": "東京",
            "issued_at": "2026-11-20T10:00:00+09:00",
        }
    ]
    assert "アグリ1234301" in operator(desk.store, "1234")["grid_codes"]
    other = submit(
        desk,
        grid({"発電所名略称": "アグリ1234302"}, message_id="<second@example.co.jp>"),
    )
    with pytest.raises(DecisionError, match="系統コード 1YA22 は既に使われています"):
        decide(desk, other["id"], "issue-code", "1YA22", by="staff")


def _web_login(config, now: str):
    ctx = Context.open(config, Clock(parse_instant(now)))
    try:
        add_staff(ctx, "sato", "佐藤", "sato-password-1")
    finally:
        ctx.close()
    web = create_app(config, Clock(parse_instant(now))).test_client()
    page = web.get("/login", base_url="https://localhost").text
    token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    web.post(
        "/login",
        data={"login": "sato", "password": "sato-password-1", "csrf": token},
        base_url="https://localhost",
    )
    return web


def test_the_web_desk_asks_for_the_grid_code_and_passes_it(tmp_path: Path, monkeypatch):
    """「1YA22 ※新規取得が必要」 (seed 000): on a 系統コード application the web desk's value
    field asks for the issued 系統コード, and the notice states what staff typed."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    now = "2026-11-24T10:00"
    assert main(["--now", now, "operators", "import", str(SAMPLES_DIR / "operators.csv")]) == 0
    (tmp_path / "grid.eml").write_bytes(grid())
    assert main(["--now", now, "ingest", str(tmp_path / "grid.eml")]) == 0
    web = _web_login(load_config(None), now)
    page = web.get("/cases/1", base_url="https://localhost").text
    assert "発番した系統コード（必須、例：1YA22）" in page
    answer = web.post(
        "/cases/1/decide",
        data={
            "csrf": re.search(r'name="csrf" value="([^"]+)"', page).group(1),
            "version": re.search(r'name="version" value="(\d+)"', page).group(1),
            "action": "issue-code",
            "arg": "1YA22",
        },
        base_url="https://localhost",
    )
    assert answer.status_code == 303, answer.text
    ctx = Context.open(load_config(None), Clock(parse_instant(now)))
    try:
        [notice] = outbox(ctx, "code_notice")
        assert "■系統コード　　　　1YA22" in body_text(notice["raw"])
    finally:
        ctx.close()


# Point 8: no company's code to a stranger who names it --------------------------------------


def test_a_stranger_naming_a_registered_company_is_held_not_told_its_code(desk: Context):
    """The rule: a code found by 事業者名称 alone is told only to a sender at the registered
    operator's ドメイン名 (or its registered contact); anyone else is held for staff."""
    case = submit(
        desk,
        application(
            {
                "事業者名称": "広域電力株式会社",
                "ドメイン名": "evil.example",
                "連絡者メール": "eve@evil.example",
            },
            from_addr="eve@evil.example",
        ),
    )
    assert case["status"] == "held"
    assert "1234" in case["reason"]
    assert outbox(desk, "code_not_needed") == []
    for mail in outbox(desk):
        assert "1234" not in body_text(mail["raw"])


# Point 9: the register keeps what the checks compare ----------------------------------------


def test_the_register_keeps_the_normalised_forms(desk: Context, tmp_path: Path):
    """The rule: the checks compare 郵便番号 as NNN-NNNN and the 略称's 「_容」 after NFKC;
    the register keeps those forms, from an issued code and from an import alike."""
    case = submit(
        desk, application({"郵便番号": "１３５－００６１", "事業者名略称": "広域機関＿容"})
    )
    assert case["status"] == "complete", case["problems"]
    decide(desk, case["id"], "issue-code", "5678", by="staff")
    issued = operator(desk.store, "5678")
    assert issued["postal_code"] == "135-0061"
    assert issued["short_name"] == "広域機関_容"
    [notice] = outbox(desk, "code_notice")
    assert "■事業者名略称　　広域機関_容" in body_text(notice["raw"])
    from mailbot.store.registers import import_operators

    csv = tmp_path / "raw.csv"
    csv.write_text(
        "事業者コード,事業者名称,事業者名略称,郵便番号\n"
        "ＡＢ１２,東北グリーン発電株式会社,東北グリーン＿容,９８０－０８１１\n",
        encoding="utf-8",
    )
    import_operators(desk.store, csv, desk.now())
    imported = operator(desk.store, "AB12")
    assert (imported["short_name"], imported["postal_code"]) == ("東北グリーン_容", "980-0811")


# Point 4: two forms in one mail ------------------------------------------------------------


@pytest.mark.parametrize("flawed_first", [True, False])
def test_two_differing_forms_ask_which_counts_in_either_order(desk: Context, flawed_first):
    """The rule: never pick one of two 事業者マスタ申込書 silently. One valid, one with a wrong
    略称: whatever their order, the correction request names both files and asks which one
    counts."""
    good = (
        "事業者マスタ申込書.xlsx",
        to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI)),
        XLSX,
    )
    bad = (
        "事業者マスタ申込書(2).xlsx",
        to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI | {"事業者名略称": "髙橋"})),
        XLSX,
    )
    case = submit(desk, application(attachments=[bad, good] if flawed_first else [good, bad]))
    assert case["status"] == "needs_correction"
    assert [p["field"] for p in case["problems"]] == ["添付ファイル"]
    [mail] = outbox(desk, "correction")
    text = body_text(mail["raw"])
    assert "「事業者マスタ申込書.xlsx」" in text and "「事業者マスタ申込書(2).xlsx」" in text
    assert "記載内容が異なります" in text


def test_two_identical_forms_are_one_application(desk: Context):
    """The same form attached twice says one thing: the application is complete."""
    form = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI))
    case = submit(
        desk,
        application(
            attachments=[
                ("事業者マスタ申込書.xlsx", form, XLSX),
                ("事業者マスタ申込書_控.xlsx", form, XLSX),
            ]
        ),
    )
    assert case["status"] == "complete", case["problems"]


# Point 18: クライアント証明書 and contact changes, in the seed's words ---------------------------


def _unwrapped(text: str) -> str:
    """A mail body with its lines joined back (the template wraps long sentences)."""
    return re.sub(r"\r?\n[　 ]*", "", text)


def test_the_code_notice_carries_the_seeds_words_on_client_certificates(desk: Context):
    """Seed 000: 「事業者が容量市場システムにアクセスするためには、事業者コード毎に「クライアント
    証明書」が必要となります。クライアント証明書を発行する認証局である三菱電機インフォメーション
    ネットワーク株式会社から「クライアント証明書」を購入し、…」, the four steps of 「「クライアント
    証明書」取得手続きの流れ」, and 「各コードの登録情報（担当者・連絡先等）変更手続きは、当該システム
    を利用して行います。」"""
    case = submit(desk, application())
    decide(desk, case["id"], "issue-code", by="staff")
    [notice] = outbox(desk, "code_notice")
    text = _unwrapped(body_text(notice["raw"]))
    for seed_line in (
        "事業者が容量市場システムにアクセスするためには、事業者コード毎に「クライアント証明書」が必要となります。",
        "クライアント証明書を発行する認証局である三菱電機インフォメーションネットワーク株式会社から"
        "「クライアント証明書」を購入し、容量市場システムへのアクセスを予定しているPCへインストールしてください。",
        "「Enterprise Premium 企業内審査登録審査局設置申込書」を取得してください。",
        "http://www.eppcert.jp/occto/occto.html",
        "「クライアント証明書発行依頼書フォーマット」をメールに添付して送付します。",
        "クライアント証明書（電子証明書）の発行開始までに5営業日程度かかります。",
        "https://www.occto.or.jp/occtosystem2/client_shoumeisho.html",
        "各コードの登録情報（担当者・連絡先等）変更手続きは、当該システムを利用して行います。",
        "https://www.occto.or.jp/occtosystem2/riyoushinsei/index.html",
    ):
        assert seed_line in text, seed_line


def test_a_contact_change_by_mail_is_told_where_it_is_done(desk: Context):
    """Seed 000: 「各コードの登録情報（担当者・連絡先等）変更手続きは、当該システムを利用して
    行います。」 A mail to code@ asking to change the registered contact is answered with that
    (rules/contact_change.toml), not with the subject guidance; other mail still gets guidance."""
    case = submit(
        desk,
        build(
            "担当者変更のお願い",
            "事業者コード1234の連絡者を 山田 から 佐藤 に変更したく、ご対応をお願いいたします。",
            from_addr="taro@example.co.jp",
        ),
    )
    assert case["status"] == "unrecognized"
    assert outbox(desk, "guidance") == []
    [mail] = outbox(desk, "contact_change")
    text = _unwrapped(body_text(mail["raw"]))
    assert (
        "各コードの登録情報（担当者・連絡先等）変更手続きは、広域機関システムを利用して行います。"
        in text
    )
    assert "https://www.occto.or.jp/occtosystem2/riyoushinsei/index.html" in text
    submit(
        desk,
        build("容量市場の申込方法について", "教えてください。", from_addr="new@other.example.jp"),
    )
    assert len(outbox(desk, "guidance")) == 1


def test_grid_codes_issued_before_the_desk_are_imported_and_taken(desk: Context, tmp_path: Path):
    """The rule: a 系統コード is issued once. The register's optional 発番済系統コード column
    (beside SPEC §9's columns, which stay as they are) carries codes issued before mailbot;
    staff cannot issue one of them again, and a malformed one stops the import."""
    from mailbot.store.registers import RegisterImportError, import_operators

    csv = tmp_path / "with_codes.csv"
    csv.write_text(
        (SAMPLES_DIR / "operators.csv").read_text(encoding="utf-8").splitlines()[0]
        + ",系統コード,発番済系統コード\n"
        "1234,広域電力株式会社,広域電力_容,135-0061,東京都江東区豊洲6-2-15,example.co.jp,"
        "taro@example.co.jp,発電,アグリ1234301,１Ｘ２２２;1YA22\n",
        encoding="utf-8",
    )
    import_operators(desk.store, csv, desk.now())
    assert operator(desk.store, "1234")["issued_grid_codes"] == ["1X222", "1YA22"]
    case = submit(desk, grid({"発電所名略称": "アグリ1234302"}))
    assert case["status"] == "complete", case["problems"]
    with pytest.raises(DecisionError, match="系統コード 1X222 は既に使われています"):
        decide(desk, case["id"], "issue-code", "1x222", by="staff")
    decide(desk, case["id"], "issue-code", "1YA23", by="staff")
    csv.write_text(csv.read_text(encoding="utf-8").replace("1YA22", "1YA-22"), encoding="utf-8")
    with pytest.raises(RegisterImportError, match="発番済系統コード '1YA-22'"):
        import_operators(desk.store, csv, desk.now())


@pytest.mark.parametrize(
    ("register", "value"),
    [
        ("operators", "a@example.co.jp; b@example.co.jp"),
        ("operators", "taro@example.co.jp\r\nBcc: x@evil.example"),
        ("sources", "hanako@example"),
    ],
)
def test_a_contact_address_that_is_not_one_mail_address_stops_the_import(
    desk: Context, tmp_path: Path, register: str, value: str
):
    """The rule: every notice and objection result goes to the registered 連絡者メール, so an
    import takes only one mail address there (two addresses failed every notice at SMTP for
    good; a line break reached the header of our mail and stopped `decide` with a traceback).
    The row is refused by name and nothing of the file is imported."""
    from mailbot.store.registers import RegisterImportError, import_operators, import_sources

    if register == "operators":
        lines = (SAMPLES_DIR / "operators.csv").read_text(encoding="utf-8").splitlines()
    else:
        lines = SOURCES_CSV.splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index("連絡者メール")] = f'"{value}"'
    bad = tmp_path / f"bad_{register}.csv"
    bad.write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n", encoding="utf-8")
    load = import_operators if register == "operators" else import_sources
    with pytest.raises(
        RegisterImportError, match=r"row 2: 連絡者メール .* is not one mail address"
    ):
        load(desk.store, bad, desk.now())
