"""Issue 11, attack by attack: what a stranger on the internet can mail to code@ and
youryou_rikuase_long@, rebuilt from the issue's description, through the real pipeline on a
real SQLite file. Each must fail safe: the desk goes on, the mail is stored with a reason,
no case is hijacked or wiped, nothing a stranger wrote becomes a formula or a header."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import replace
from email import message_from_bytes
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mailbot.cli import main
from mailbot.context import Context
from mailbot.desk.decisions import decide
from mailbot.desk.decisions_apply import apply_workbook
from mailbot.desk.report import build_report, write_xlsx
from mailbot.errors import DecisionError, MailbotError, StoreError
from mailbot.forms import workbook as wb
from mailbot.intake.retry import retry
from mailbot.intake.runner import process_pending
from mailbot.mail.trust import load_trust_rules
from mailbot.store.registers import import_operators, operator, operators_for_sender
from mailbot.text import single_line
from tests.support.desk import body_text, desk_with_operators, make_desk, outbox
from tests.support.forms import operator_form, to_bytes
from tests.support.hostile import (
    APPLY_BODY,
    APPLY_SUBJECT,
    ECHO_NAME,
    FORMULA_SUBJECTS,
    OUT_OF_OFFICE,
    OUTLOOK_ID,
    ROBOT_SENDERS,
    WORKBOOK_ATTACKS,
    deep_multipart,
    unreadable_sender,
)
from tests.support.jpmail import XLSX, build
from tests.support.samples import TAKAHASHI

ROOT = Path(__file__).resolve().parent.parent
CODE = "code@occto.or.jp"
CORP = "ichiro@takahashi-denryoku.co.jp"


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = desk_with_operators(tmp_path)
    yield ctx
    ctx.close()


def store(ctx: Context, *raws: bytes) -> None:
    items = [(f"t:{hashlib.sha256(r).hexdigest()}", r) for r in raws]
    ctx.store.save_raw(CODE, items, ctx.now())


def submit(ctx: Context, raw: bytes) -> dict:
    store(ctx, raw)
    [result] = process_pending(ctx)
    case = ctx.store.case(result.case_id)
    assert case is not None
    return case


def application(sender: str = CORP, fields: dict | None = None, **kwargs) -> bytes:
    form = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI | (fields or {})))
    kwargs.setdefault("attachments", [("事業者マスタ申込書.xlsx", form, XLSX)])
    return build(APPLY_SUBJECT, APPLY_BODY, from_addr=sender, **kwargs)


def kinds(ctx: Context) -> list[str]:
    return [r["kind"] for r in outbox(ctx)]


def event_kinds(ctx: Context, case_id: int) -> list[str]:
    return [e["kind"] for e in ctx.store.events(case_id)]


# --- 1. one workbook must not abort the intake ---------------------------------------------


@pytest.mark.parametrize(
    ("xml", "rows", "columns", "cells"),
    [
        (b'<row r="3"><c r="xfd1048576"/></row>', 1048576, 16384, 2),
        (b'<row r="1048576"><c/><c/><c/></row>', 1048576, 3, 4),
        (b"<row><c/></row><row><c/><c/></row>", 2, 2, 5),
        (b'<x:row r="7"><x:c R="b7"/><x:c/></x:row>', 7, 2, 3),
        (b'<row r="2"><c r="C2"/><c/></row><row><c r="A3"/></row>', 3, 4, 5),
        (b'<row r="&#49;048576"><c r="&#x58;FD1048576"/></row>', 1048576, 16384, 2),
        (b'<row x:r="1"/><row x:r="1"/><row><c x:r="A1"/><c x:r="A1"/></row>', 3, 2, 5),
        (b'<row r="1"><c r="A1"/></row><mergeCell ref="b2:C4"/>', 4, 3, 7),
        (b'<row r="5"><c foo=">" r="CV5000"/></row>', 5000, 100, 2),
        (b'<row r="5"><c foo=" r=\'B1\' " r="CV5000"/></row>', 5000, 100, 2),
        (b'<mergeCell ref="$A$1:$CV$20000"/>', 20000, 100, 100 * 20000 - 1),
        (b'<mergeCell ref="A1:??"/>', 0, 0, wb.UNREADABLE_MERGE),
    ],
    ids=[
        "lower-case ref",
        "cells without r",
        "rows without r",
        "prefix; R is not r",
        "mixed",
        "character references",
        "x:r is not r",
        "a merged range counts each cell",
        "a quoted > does not end the tag",
        "a quoted r= inside another attribute is not the reference",
        "absolute ($) merged range",
        "an unreadable merged range counts as too large",
    ],
)
def test_preflight_places_cells_as_a_reader_does(xml, rows, columns, cells):
    assert wb.sheet_extent(b"<sheetData>" + xml + b"</sheetData>") == wb.Extent(
        rows, columns, cells
    )


@pytest.mark.parametrize("name", sorted(WORKBOOK_ATTACKS))
def test_no_far_or_unreferenced_cell_reaches_the_dense_reader(name):
    data = WORKBOOK_ATTACKS[name]()
    assert not wb._small_enough_for_calamine(data)


def test_too_many_cells_is_not_opened():
    [problem] = wb.inspect("申込書.xlsx", WORKBOOK_ATTACKS["too_many_cells"]())
    assert problem.kind == wb.TOO_MANY_CELLS
    assert "申込書.xlsx" in problem.message


MEASURE = textwrap.dedent(
    """
    import hashlib, resource, sys
    from pathlib import Path
    from tests.support.desk import make_desk
    from tests.support.hostile import WORKBOOK_ATTACKS
    from tests.support.jpmail import XLSX, build
    from mailbot.intake.runner import process_pending

    ctx = make_desk(Path(sys.argv[1]), "2026-11-20T10:00")
    raws = [
        build("【容量市場向け事業者コード申請】", "参加区分は、『安定電源』です。",
              from_addr=f"{name}@example.net",
              attachments=[("事業者マスタ申込書.xlsx", make(), XLSX)])
        for name, make in sorted(WORKBOOK_ATTACKS.items())
    ]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ctx.store.save_raw("code@occto.or.jp",
                       [(hashlib.sha256(r).hexdigest(), r) for r in raws], ctx.now())
    results = process_pending(ctx)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(len(results), (after - before) // 1024)
    """
)
MEMORY_CEILING_MB = 200


def run_script(code: str, tmp_path: Path, timeout: int) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter on the desk under `tmp_path`: a crash or a memory peak
    there is measured without taking the test process with it."""
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_hostile_workbooks_stay_under_a_memory_ceiling(tmp_path: Path):
    """Before: the dense reader asked for ~550 GB and the process died (exit 134) with no
    case stored. Now every such mail is a case, and the peak memory the batch adds is
    measured (ru_maxrss, the process's real peak) against a ceiling."""
    done = run_script(MEASURE, tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    count, grown_mb = (int(x) for x in done.stdout.split())
    assert count == len(WORKBOOK_ATTACKS)
    assert grown_mb < MEMORY_CEILING_MB


DAMAGED_JIS = textwrap.dedent(
    """
    import base64, hashlib, random, resource, sys
    from pathlib import Path
    from tests.support.desk import make_desk
    from mailbot.intake.runner import process_pending

    ctx = make_desk(Path(sys.argv[1]), "2026-11-20T10:00")
    body = b"\\x1b$B0!" + random.Random(7).randbytes(8 << 20)
    raw = (
        b"From: noise@example.net\\r\\nTo: code@occto.or.jp\\r\\nSubject: x\\r\\n"
        b"MIME-Version: 1.0\\r\\nContent-Type: text/plain; charset=iso-2022-jp\\r\\n"
        b"Content-Transfer-Encoding: base64\\r\\n\\r\\n" + base64.encodebytes(body)
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ctx.store.save_raw("code@occto.or.jp", [(hashlib.sha256(raw).hexdigest(), raw)], ctx.now())
    results = process_pending(ctx)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(len(results), (after - before) // 1024)
    """
)


def test_a_damaged_iso_2022_jp_body_stays_under_the_memory_ceiling(tmp_path: Path):
    """8 MB of 8-bit bytes after one ESC $ B: read one byte at a time (a string and a list
    entry per byte) it took ~0.5 GB; read a run at a time it is a case like any other."""
    done = run_script(DAMAGED_JIS, tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    count, grown_mb = (int(x) for x in done.stdout.split())
    assert count == 1
    assert grown_mb < MEMORY_CEILING_MB


CRASH = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import mailbot.intake.pipeline as pipeline
    from tests.support.desk import make_desk
    from mailbot.intake.runner import process_pending

    real = pipeline.parse
    def parse(raw):
        if b"X-Kill-Me" in raw:
            os.abort()  # fault injection: what a reader's allocation failure does
        return real(raw)
    pipeline.parse = parse
    ctx = make_desk(Path(sys.argv[1]), "2026-11-20T10:00")
    print(len(process_pending(ctx)))
    """
)


def test_a_mail_that_kills_the_process_twice_on_its_own_is_quarantined_on_the_next_try(
    tmp_path: Path,
):
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    killer = build("件名", "本文", from_addr="killer@example.net", headers={"X-Kill-Me": "1"})
    store(ctx, killer, application())
    ctx.close()

    def run() -> subprocess.CompletedProcess:
        return run_script(CRASH, tmp_path, timeout=300)

    assert run().returncode != 0  # in a batch with the application: either may be at fault
    assert run().returncode != 0  # alone: its first start
    assert run().returncode != 0  # alone: its second
    last = run()
    assert last.returncode == 0, last.stderr[-2000:]
    ctx = make_desk(tmp_path, "2026-11-20T10:00")
    rows = ctx.store.execute("SELECT state, outcome, case_id FROM messages ORDER BY id").fetchall()
    assert rows[0]["state"] == "quarantined"
    assert "started 2 times and never finished" in rows[0]["outcome"]
    assert rows[1]["state"] == "done"
    assert ctx.store.case(rows[1]["case_id"])["status"] == "complete"
    ctx.close()


def test_a_run_stopped_by_the_database_does_not_count_against_the_mail(
    desk: Context, monkeypatch: pytest.MonkeyPatch
):
    """Only a start that never finished counts; a database refusal (fault injected) or a
    Ctrl-C ends the run but takes the start back, so the mail is read normally later."""
    import mailbot.intake.pipeline as pipeline

    real = pipeline.parse
    store(desk, application())
    for fault in (StoreError("disk full"), StoreError("disk full"), KeyboardInterrupt()):

        def failing(raw: bytes, fault: BaseException = fault):
            raise fault

        monkeypatch.setattr(pipeline, "parse", failing)
        with pytest.raises(type(fault)):
            process_pending(desk)
    monkeypatch.setattr(pipeline, "parse", real)
    [result] = process_pending(desk)
    assert result.outcome == "complete"


# --- 2. formula injection into staff's Excel -----------------------------------------------


def test_nothing_a_participant_wrote_becomes_a_formula_in_the_report(desk: Context, tmp_path):
    for n, subject in enumerate(FORMULA_SUBJECTS):
        submit(desk, build(subject, "ご確認ください。", from_addr=f"f{n}@example.net"))
    submit(desk, build("お問い合わせ", "本文", from_addr="=1+2@evil.example"))
    store(desk, b"=WEBSERVICE(1)" + b"\x00" * 10 + deep_multipart(1000)[14:])
    process_pending(desk)
    path = tmp_path / "report.xlsx"
    write_xlsx(build_report(desk), path)
    with zipfile.ZipFile(path) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert all(b"<f>" not in z.read(n) and b"<f " not in z.read(n) for n in sheets)
    book = load_workbook(path)
    values = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
                values.append(cell.value)
    for subject in FORMULA_SUBJECTS:
        assert single_line(subject, 300) in values
    assert "=1+2@evil.example" in values


def test_a_subject_that_looks_like_an_excel_error_stays_text(desk: Context, tmp_path):
    """openpyxl types a string such as #N/A as an error value unless told it is text."""
    for n, subject in enumerate(("#N/A", "#REF!", "#DIV/0!")):
        submit(desk, build(subject, "ご確認ください。", from_addr=f"e{n}@example.net"))
    process_pending(desk)
    path = tmp_path / "report.xlsx"
    write_xlsx(build_report(desk), path)
    ws = load_workbook(path)["未処理案件"]
    subjects = {c.value: c.data_type for row in ws.iter_rows(min_row=2) for c in row}
    assert {subjects[s] for s in ("#N/A", "#REF!", "#DIV/0!")} == {"s"}


def test_control_characters_from_a_sender_do_not_stop_the_report(desk: Context, tmp_path):
    """Found by the hostile run: a subject or address with a control character made openpyxl
    refuse the whole report workbook."""
    with desk.store.transaction():
        desk.store.create_case(
            desk.now(),
            procedure="unrecognized",
            status="unrecognized",
            sender="suz\x1buk@example.org",
            subject="件名\x07\x00",
        )
    path = tmp_path / "report.xlsx"
    write_xlsx(build_report(desk), path)
    values = [c.value for row in load_workbook(path)["未処理案件"].iter_rows() for c in row]
    assert "suzuk@example.org" in values and "件名" in values


# --- 3. a follow-up must not wipe a complete application -----------------------------------


def _receipt_thread(ctx: Context) -> tuple[str, str]:
    [receipt] = outbox(ctx, "receipt")
    return receipt["message_id"], receipt["subject"]


def test_a_question_in_the_receipt_thread_is_a_message_on_the_case(desk: Context):
    case = submit(desk, application())
    assert case["status"] == "complete"
    mid, subject = _receipt_thread(desk)
    question = build(
        f"Re: {subject}",
        "お世話になっております。コードの通知はいつ頃になりますでしょうか。",
        from_addr=CORP,
        in_reply_to=mid,
        references=(mid,),
    )
    same = submit(desk, question)
    assert same["id"] == case["id"]
    assert same["status"] == "complete"
    assert same["data"] == case["data"] and same["problems"] == []
    assert kinds(desk) == ["receipt"]
    assert "participant_message" in event_kinds(desk, case["id"])
    decide(desk, case["id"], "issue-code", "5678", by="staff")
    assert operator(desk.store, "5678")["name"] == TAKAHASHI["事業者名称"]


@pytest.mark.parametrize("subject", OUT_OF_OFFICE)
def test_an_out_of_office_robot_in_the_thread_changes_nothing(desk: Context, subject: str):
    case = submit(desk, application())
    mid, _ = _receipt_thread(desk)
    robot = build(
        subject + " [MB-000001]",
        "ただいま不在にしております。12月1日以降に確認いたします。",
        from_addr=CORP,
        in_reply_to=mid,
    )
    store(desk, robot)
    [result] = process_pending(desk)
    assert result.procedure == "ignored"
    after = desk.store.case(case["id"])
    assert after["status"] == "complete" and after["data"] == case["data"]
    assert kinds(desk) == ["receipt"]


def test_a_corrected_form_in_the_thread_is_checked_again(desk: Context):
    case = submit(desk, application(fields={"事業者名略称": "髙橋電力"}))
    assert case["status"] == "needs_correction"
    [correction] = outbox(desk, "correction")
    again = submit(
        desk, application(in_reply_to=correction["message_id"], message_id="<fixed@x.co.jp>")
    )
    assert again["id"] == case["id"] and again["status"] == "complete"


# --- 4. identity by address, not by free-mail domain ---------------------------------------


def test_a_stranger_at_the_same_free_mail_domain_cannot_take_over_a_case(desk: Context):
    victim = submit(desk, application("victim@gmail.com"))
    assert victim["status"] == "complete"
    eve_form = TAKAHASHI | {"事業者名称": "イブ商事株式会社", "連絡者メール": "eve@gmail.com"}
    eve_book = to_bytes(operator_form(licenses=("発電",), fields=eve_form))
    eve = submit(
        desk,
        build(
            f"Re: {APPLY_SUBJECT} [MB-{victim['id']:06d}]",
            APPLY_BODY,
            from_addr="eve@gmail.com",
            attachments=[("事業者マスタ申込書.xlsx", eve_book, XLSX)],
        ),
    )
    assert eve["id"] != victim["id"] and eve["status"] == "held"
    assert "victim@gmail.com" in eve["reason"] and "eve@gmail.com" in eve["reason"]
    assert desk.store.case(victim["id"])["data"] == victim["data"]
    decide(desk, victim["id"], "issue-code", "5678", by="staff")
    assert operator(desk.store, "5678")["name"] == TAKAHASHI["事業者名称"]


def test_a_registered_free_mail_domain_makes_no_one_an_operator(desk: Context, tmp_path):
    path = tmp_path / "gmail.csv"
    path.write_text(
        "事業者コード,事業者名称,ドメイン名,連絡者メール\nG001,個人事業,gmail.com,owner@gmail.com\n",
        encoding="utf-8",
    )
    import_operators(desk.store, path, desk.now())
    free = load_trust_rules(desk.config.rules_dir).free_mail
    assert [op["code"] for op in operators_for_sender(desk.store, "owner@gmail.com", free)] == [
        "G001"
    ]
    assert operators_for_sender(desk.store, "eve@gmail.com", free) == []


def test_a_spoofed_from_with_a_foreign_reply_to_does_not_replace_a_form(desk: Context):
    case = submit(desk, application())
    mid, _ = _receipt_thread(desk)
    forged = application(
        fields={"事業者名称": "乗っ取り商事株式会社"},
        in_reply_to=mid,
        headers={"Reply-To": "attacker@evil.example"},
        message_id="<forged@evil.example>",
    )
    held = submit(desk, forged)
    assert held["id"] != case["id"] and held["status"] == "held"
    assert desk.store.case(case["id"])["data"] == case["data"]
    assert all(r["recipient"] != "attacker@evil.example" for r in outbox(desk))


# --- 5, 9, 10. who gets an answer, and what it may echo ------------------------------------


def test_replies_go_to_the_sender_never_to_a_foreign_reply_to(desk: Context):
    submit(
        desk,
        application("outsider@example.net", headers={"Reply-To": "ceo@victim-corp.example"}),
    )
    assert {r["recipient"] for r in outbox(desk)} == {"outsider@example.net"}


def test_the_daily_budget_counts_by_sender_whatever_the_reply_to(desk: Context):
    limit = desk.config.limits.auto_replies_per_sender_per_day
    store(
        desk,
        *(
            build(
                "お問い合わせ",
                f"質問 {n}",
                from_addr="spammer@example.net",
                headers={"Reply-To": f"target{n}@victim-corp.example"},
            )
            for n in range(limit + 10)
        ),
    )
    assert len(process_pending(desk)) == limit + 10
    assert len(outbox(desk)) <= limit
    assert all(r["recipient"] == "spammer@example.net" for r in outbox(desk))


def test_echoed_attachment_names_are_one_line_without_control_or_bidi(desk: Context):
    form = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI))
    submit(
        desk,
        build(
            APPLY_SUBJECT,
            APPLY_BODY,
            from_addr=CORP,
            attachments=[(ECHO_NAME, form, XLSX)],
        ),
    )
    [reply] = outbox(desk)
    text = body_text(reply["raw"])
    assert "申込書" in text and "gnp.xlsx" in text
    assert "\u202e" not in text and "\x00" not in text
    assert not any(line.lstrip().startswith("■ 口座変更") for line in text.splitlines())


def test_a_form_value_quoted_in_a_correction_carries_no_control_or_bidi(desk: Context):
    submit(desk, application(fields={"申請区分": "変更\u202e\u2066\u200f"}))
    [correction] = outbox(desk, "correction")
    text = body_text(correction["raw"])
    assert "記載：変更" in text
    assert not any(ch in text for ch in "\u202e\u2066\u200f")


@pytest.mark.parametrize(
    "sender", [*ROBOT_SENDERS, "capacity-desk@occto.or.jp", "youryou_rikuase_long@occto.or.jp"]
)
def test_robots_staff_and_our_own_addresses_get_no_reply(desk: Context, sender: str):
    case = submit(desk, application(sender))
    assert outbox(desk) == []
    assert case["status"] == "ignored" and case["reason"].startswith("not answered")


# --- 11. a Message-ID alone decides nothing ------------------------------------------------


def test_a_reused_message_id_from_someone_else_is_a_new_mail(desk: Context):
    stranger = submit(
        desk,
        build("こんにちは", "先に送ります", from_addr="x@evil.example", message_id="<dup@a.jp>"),
    )
    real = submit(desk, application(message_id="<dup@a.jp>"))
    assert real["id"] != stranger["id"]
    assert real["status"] == "complete" and real["sender"] == CORP
    assert "message_id_collision" in event_kinds(desk, real["id"])


def test_the_same_mail_twice_is_still_one_case(desk: Context):
    first = application(message_id="<once@takahashi-denryoku.co.jp>")
    copy = b"Received: from mx2 by mx.occto.or.jp; Fri, 20 Nov 2026 10:00:01 +0900\r\n" + first
    case = submit(desk, first)
    store(desk, copy)
    [result] = process_pending(desk)
    assert result.procedure == "duplicate" and result.case_id == case["id"]


# --- 6. codes normalised at every entry ----------------------------------------------------


def test_a_full_width_code_is_the_code_it_reads_as(desk: Context, tmp_path: Path):
    case = submit(desk, application())
    with pytest.raises(DecisionError, match="既に使われています"):
        decide(desk, case["id"], "issue-code", "１２３４", by="staff")
    assert operator(desk.store, "１２３４")["code"] == "1234"
    decide(desk, case["id"], "issue-code", "ａｂ１２", by="staff")
    assert operator(desk.store, "AB12") is not None
    codes = [r[0] for r in desk.store.execute("SELECT code FROM operators ORDER BY code")]
    assert codes == ["1234", "AB12"]


# --- 7, 12. nothing unreadable disappears --------------------------------------------------


def test_a_mail_nested_a_thousand_deep_is_quarantined_and_in_the_report(desk: Context, tmp_path):
    store(desk, deep_multipart(1000))
    [result] = process_pending(desk)
    assert result.procedure == "quarantined"
    assert "RecursionError" in result.outcome
    report = build_report(desk)
    assert [q["outcome"] for q in report.quarantined] == [result.outcome]
    assert any(r.case_id == result.case_id for r in report.rows)


@pytest.mark.parametrize("kind", ["no_from", "junk_first_line", "unindented_continuation"])
def test_no_mail_is_ignored_for_want_of_a_readable_sender(desk: Context, kind: str):
    store(desk, unreadable_sender(kind))
    [result] = process_pending(desk)
    case = desk.store.case(result.case_id)
    assert case["status"] != "ignored"
    if not case["sender"]:
        assert case["status"] == "held" and "差出人" in case["reason"]
        assert any(r.case_id == case["id"] for r in build_report(desk).rows)
    assert outbox(desk, "held") == [] or case["sender"]


def test_retry_takes_quarantined_mail_through_again_after_a_fix(desk: Context):
    big = application(message_id="<big@takahashi-denryoku.co.jp>")
    desk.config = replace(desk.config, limits=replace(desk.config.limits, max_message_bytes=100))
    store(desk, big)
    [first] = process_pending(desk)
    assert first.procedure == "quarantined"
    desk.config = replace(desk.config, limits=replace(desk.config.limits, max_message_bytes=10**7))
    [again] = retry(desk, None)
    assert again.outcome == "complete"
    assert desk.store.case(first.case_id)["status"] == "closed"
    assert "retried" in event_kinds(desk, first.case_id)


# --- 8. Outlook threading ------------------------------------------------------------------


def test_a_long_outlook_message_id_comes_back_as_it_was(desk: Context):
    submit(desk, application(message_id=OUTLOOK_ID))
    [receipt] = outbox(desk)
    msg = message_from_bytes(receipt["raw"])
    assert msg["In-Reply-To"] == OUTLOOK_ID
    assert OUTLOOK_ID in msg["References"].split()
    assert b"=?" not in receipt["raw"].split(b"In-Reply-To:", 1)[1].split(b"\r\nDate:")[0]
    head = receipt["raw"].split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))


# --- 13. decisions apply: the whole sheet or nothing ---------------------------------------


# Edits are written by column letter as staff see them; the letters name these headers.
_HEADERS = {
    "A": "受付番号",
    "K": "判断",
    "L": "判断の値（コード等）",
    "M": "コメント（理由）",
    "N": "version",
}


def _filled(ctx: Context, tmp_path: Path, edits: dict[str, object]) -> Path:
    path = tmp_path / "report.xlsx"
    write_xlsx(build_report(ctx), path)
    book = load_workbook(path)
    ws = book["未処理案件"]
    columns = {cell.value: cell.column for cell in ws[1]}
    for ref, value in edits.items():
        ws.cell(row=int(ref[1:]), column=columns[_HEADERS[ref[0]]], value=value)
    book.save(path)
    return path


@pytest.mark.parametrize(
    ("edits", "why"),
    [
        ({"A3": "MB-00000²"}, "受付番号が読めません"),
        ({"N3": "1²"}, "整数ではありません"),
        ({"N3": 1.9}, "整数ではありません"),
        ({"A4": "MB-000009", "N4": 1, "K4": "reject", "M4": "x"}, "このレポートに載っていません"),
    ],
    ids=["superscript case", "superscript version", "version 1.9", "case not in report"],
)
def test_decisions_apply_refuses_the_whole_sheet_for_one_bad_row(
    desk: Context, tmp_path: Path, edits: dict, why: str
):
    first = submit(desk, application())
    second = submit(desk, application("jiro@takahashi-denryoku.co.jp", message_id="<2@t.jp>"))
    path = _filled(
        desk,
        tmp_path,
        {"K2": "issue-code", "L2": "5678", "K3": "reject", "M3": "重複のため"} | edits,
    )
    results = apply_workbook(desk, path, by="staff")
    assert not any(r.ok for r in results)
    assert any(why in r.why for r in results)
    assert desk.store.case(first["id"])["status"] == "complete"
    assert desk.store.case(second["id"])["status"] == "complete"
    assert operator(desk.store, "5678") is None


def test_decide_with_a_superscript_case_number_says_so(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["decide", "MB-00000²", "reject", "--reason", "x"]) == 2
    assert "not a case number" in capsys.readouterr().err


def test_retry_of_one_held_case_and_never_of_a_live_one(desk: Context):
    store(desk, unreadable_sender("no_from"))
    [held] = process_pending(desk)
    [again] = retry(desk, held.case_id)
    assert again.case_id != held.case_id
    assert desk.store.case(held.case_id)["status"] == "closed"
    live = submit(desk, application())
    with pytest.raises(MailbotError, match="only a quarantined or held case"):
        retry(desk, live["id"])


def test_retry_cli_needs_a_case_or_quarantined(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["retry"]) == 2
    assert "--quarantined" in capsys.readouterr().err


def test_ingest_then_retry_quarantined_from_the_cli(capsys, monkeypatch, tmp_path):
    """A mail nested 1,000 deep is quarantined by `mailbot ingest`, listed by `cases`, and
    `mailbot retry --quarantined` takes it through again (still unreadable: quarantined anew,
    the old case closed), exit 0."""
    monkeypatch.chdir(tmp_path)
    eml = tmp_path / "deep.eml"
    eml.write_bytes(deep_multipart(1000))
    now = ["--now", "2026-11-20T10:00"]
    assert main([*now, "ingest", str(eml)]) == 0
    assert main([*now, "retry", "--quarantined"]) == 0
    assert "1 mail(s) taken through the pipeline again" in capsys.readouterr().out
    assert main([*now, "cases", "--json"]) == 0
    cases = json.loads(capsys.readouterr().out)
    assert [c["status"] for c in cases] == ["closed", "quarantined"]
