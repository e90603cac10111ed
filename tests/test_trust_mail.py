"""Issue 25 points 1–2 and issue 23 points 10 and 12, through the real pipeline on a real SQLite
file: what an outsider can make the desk mail to others (nothing of theirs with a link or an
address in it), a robot that keeps the desk answering from a new address each round (capped
per case and per thread, staff told once), a From with a control character (held, never
answered), and whose name the desk signs with (each seed's window)."""

from __future__ import annotations

import hashlib
import re
import shutil
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.config import RULES_DIR
from mailbot.context import Context
from mailbot.intake.runner import process_pending
from mailbot.mail.quoting import ADDRESS_MARK, URL_MARK, defang
from mailbot.mail.trust import load_trust_rules
from tests.support.desk import body_text, desk_with_operators, outbox
from tests.support.forms import operator_form, to_bytes
from tests.support.hostile import (
    APPLY_BODY,
    APPLY_SUBJECT,
    LOOP_ROBOT_VARIANTS,
    TOKEN_FORMS,
    control_from,
    hostile_token,
    robot_round,
)
from tests.support.jpmail import XLSX, build
from tests.support.samples import TAKAHASHI

CODE = "code@occto.or.jp"
LONG = "youryou_rikuase_long@occto.or.jp"
CORP = "ichiro@takahashi-denryoku.co.jp"
REGISTERED = (
    "taro@example.co.jp"  # tests/support/samples.py OPERATORS_CSV: ドメイン名 example.co.jp
)
TRUST_OURS = '\n[trust]\nauthserv_ids = ["mx.occto.or.jp"]\n'
DMARC_PASS = "mx.occto.or.jp; spf=pass smtp.mailfrom={d}; dmarc=pass header.from={d}"
OWN = frozenset({CODE, LONG})


@pytest.fixture
def desk(tmp_path: Path) -> Context:
    ctx = desk_with_operators(tmp_path, extra_config=TRUST_OURS)
    yield ctx
    ctx.close()


def store(ctx: Context, *raws: bytes, mailbox: str = CODE) -> None:
    items = [(f"t:{hashlib.sha256(r).hexdigest()}", r) for r in raws]
    ctx.store.save_raw(mailbox, items, ctx.now())


def submit(ctx: Context, raw: bytes, mailbox: str = CODE) -> dict:
    store(ctx, raw, mailbox=mailbox)
    [result] = process_pending(ctx)
    case = ctx.store.case(result.case_id)
    assert case is not None
    return case


def application(sender: str = CORP, fields: dict | None = None, **kwargs) -> bytes:
    form = to_bytes(operator_form(licenses=("発電",), fields=TAKAHASHI | (fields or {})))
    kwargs.setdefault("attachments", [("事業者マスタ申込書.xlsx", form, XLSX)])
    return build(kwargs.pop("subject", APPLY_SUBJECT), APPLY_BODY, from_addr=sender, **kwargs)


def participant_mails(ctx: Context) -> list[dict]:
    staff = set(ctx.config.staff_addresses)
    return [m for m in outbox(ctx) if m["recipient"] not in staff]


# --- issue 25.1: nothing of a stranger's with a link or an address in it --------------------


def test_the_issue_s_phishing_name_and_subject_never_reach_a_third_party(desk: Context):
    """「【重要】口座確認 https://… で再認証してください 様」: the receipt to a forged From at a
    domain with no DMARC opened with the display name and quoted the Subject under ■件名."""
    lure = "【重要】口座確認 https://evil.example/login で再認証してください"
    submit(
        desk,
        application(from_name=lure, subject=f"{APPLY_SUBJECT} {lure}", charset="utf-8"),
    )
    [receipt] = outbox(desk, "receipt")
    text = body_text(receipt["raw"])
    assert text.startswith("ご担当者様")
    assert "evil.example" not in text and "再認証" not in text and "■件名" not in text
    assert "■受付番号" in text and "MB-000001" in text


def test_a_verified_sender_is_quoted_as_before(desk: Context):
    """Registered ドメイン名 (example.co.jp) with our MTA's aligned dmarc=pass: the name and
    the subject are theirs to see."""
    headers = {"Authentication-Results": DMARC_PASS.format(d="example.co.jp")}
    submit(desk, application(REGISTERED, from_name="山田 太郎", headers=headers))
    assert body_text(outbox(desk)[0]["raw"]).startswith("山田 太郎 様")


def register_corp(ctx: Context, tmp_path: Path) -> None:
    """CORP's domain in the register, under a code whose license leaves a new code to apply
    for (区分なし（需要抑制） → 発電), so its application gets a receipt."""
    from mailbot.store.registers import import_operators

    path = tmp_path / "dr.csv"
    path.write_text(
        "事業者コード,事業者名称,ドメイン名,連絡者メール,ライセンス区分\n"
        "9001,髙橋DR株式会社,takahashi-denryoku.co.jp,ichiro@takahashi-denryoku.co.jp,"
        "区分なし（需要抑制）\n",
        encoding="utf-8",
    )
    import_operators(ctx.store, path, ctx.now())


CORP_PASS = {"Authentication-Results": DMARC_PASS.format(d="takahashi-denryoku.co.jp")}


def test_a_verified_sender_s_receipt_quotes_the_subject(desk: Context, tmp_path: Path):
    register_corp(desk, tmp_path)
    submit(desk, application(CORP, from_name="髙橋 一郎", headers=CORP_PASS))
    [receipt] = outbox(desk, "receipt")
    text = body_text(receipt["raw"])
    assert text.startswith("髙橋 一郎 様")
    assert f"■件名　　　　{APPLY_SUBJECT}" in text


def test_dmarc_pass_at_an_unregistered_domain_is_not_verified(desk: Context):
    """Anyone can pass DMARC for a domain of their own: only a registered operator's counts."""
    headers = {"Authentication-Results": DMARC_PASS.format(d="takahashi-denryoku.co.jp")}
    submit(desk, application(CORP, from_name="髙橋 一郎", headers=headers))
    assert body_text(outbox(desk)[0]["raw"]).startswith("ご担当者様")


def test_a_later_decision_mail_quotes_a_verified_sender_by_name(desk: Context, tmp_path: Path):
    from mailbot.desk.decisions import decide

    register_corp(desk, tmp_path)
    case = submit(desk, application(CORP, from_name="髙橋 一郎", headers=CORP_PASS))
    decide(desk, case["id"], "reject", reason="同一事業者で既にコードが発番されています", by="s")
    rejection = body_text(outbox(desk, "rejection")[0]["raw"])
    assert rejection.startswith("髙橋 一郎 様")


def test_staff_text_is_sent_as_written_to_anyone(desk: Context):
    """What staff write (a reason, a reply) may carry our links and addresses on purpose."""
    from mailbot.desk.decisions import decide

    case = submit(desk, application())
    reason = "詳細は https://www.occto.or.jp/ をご覧いただき、info@occto.or.jp までご連絡ください"
    decide(desk, case["id"], "reject", reason=reason, by="s")
    assert reason in body_text(outbox(desk, "rejection")[0]["raw"])


@pytest.mark.parametrize(
    ("written", "kept"),
    [
        ("https://evil.example/x で再認証", " で再認証"),
        ("hxxps://evil.example/x", ""),
        ("www.foo.com", ""),
        ("ｈｔｔｐｓ：／／ｅｖｉｌ．ｅｘａｍｐｌｅ／ｘ", ""),
        ("連絡先はa@b.example", "連絡先は"),
        ("ａ＠ｂ．ｅｘａｍｐｌｅ", ""),
        ("evil.example/reset", ""),
        ("ht\u200btps://evil.example", ""),
        ("evil。com", ""),
        ("evil\u00ad.example/x", ""),
        ("evil\u2024example", ""),
        ("192.0.2.1/login", ""),
        ("https://evil/x", ""),
        ("ｈｔｔｐ：／／evil", ""),
    ],
)
def test_defang_replaces_every_form_of_a_link_or_address(written: str, kept: str):
    out = defang(written)
    assert "evil" not in out and "foo" not in out and "b.example" not in out
    assert out.replace(URL_MARK, "").replace(ADDRESS_MARK, "") == kept


@pytest.mark.parametrize(
    "text", ["事業者マスタ申込書.xlsx", "株式会社髙橋電力", "03-1234-5678", "2026/11/25", "v1.2.3"]
)
def test_defang_leaves_file_names_and_ordinary_values(text: str):
    assert defang(text) == text


def test_defang_keeps_the_desk_s_own_addresses():
    assert defang("送付先は code@occto.or.jp です", OWN) == "送付先は code@occto.or.jp です"


def _markers(token: str) -> str:
    return re.sub(r"[^a-z]", "", unicodedata.normalize("NFKC", token).lower())


TEXT = st.text(alphabet=st.sampled_from("申込書口座確認重要 abc123_-【】「」：:/."), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    labels=st.lists(st.from_regex(r"[a-z]{4,8}", fullmatch=True), min_size=4, max_size=4),
    forms=st.lists(st.sampled_from(sorted(TOKEN_FORMS)), min_size=4, max_size=4),
    around=st.lists(TEXT, min_size=8, max_size=8),
    recognised=st.booleans(),
)
def test_no_stranger_link_or_address_in_any_automatic_mail_to_an_unverified_sender(
    tmp_path_factory, labels, forms, around, recognised
):
    """Display name, subject, attachment name and form values each carry a link or an
    address (https, hxxp, www., bare host/path, mail address, full-width forms, a zero-width
    space inside) between generated text. Every automatic mail, decoded and NFKC'd, carries
    none of the stranger's hosts, no `://` and no mail address but the desk's own."""
    ctx = desk_with_operators(tmp_path_factory.mktemp("q"), extra_config=TRUST_OURS)
    tokens = [hostile_token(form, f"{label}zz") for form, label in zip(forms, labels, strict=True)]
    name, subject, file_name, value = (
        f"{around[2 * n]}{tokens[n]}{around[2 * n + 1]}" for n in range(4)
    )
    form = to_bytes(
        operator_form(
            licenses=("発電",),
            fields=TAKAHASHI | {"事業者名略称": value, "連絡者メール": value, "住所": value},
        )
    )
    raw = build(
        f"{APPLY_SUBJECT}{subject}" if recognised else subject or "x",
        APPLY_BODY,
        from_addr="victim@no-dmarc.example",
        from_name=f"山田{name}",
        charset="utf-8",
        attachments=[(f"{file_name}.xlsx", form, XLSX)],
    )
    submit(ctx, raw)
    mails = participant_mails(ctx)
    assert mails, "the stranger was answered (this property is about what the answer says)"
    for mail in mails:
        text = unicodedata.normalize("NFKC", body_text(mail["raw"])).lower()
        for label in labels:
            assert f"{label}zz" not in text
        assert "://" not in text
        found = set(re.findall(r"[a-z0-9._%+\-]+@[a-z0-9.\-]+", text))
        assert found <= OWN, found
    ctx.close()


def test_a_reminder_days_later_quotes_no_link_of_an_unverified_sender(desk: Context):
    """The correction reminder (a job, days later) echoes the problems again: it is built by
    the same context builder as the correction request."""
    from mailbot.desk.jobs import run_due_jobs
    from tests.support.desk import set_now

    lure = "https://evil.example/pay"
    case = submit(
        desk,
        application(fields={"事業者名略称": f"{lure} 髙橋", "連絡者メール": "pay@evil.example"}),
    )
    assert case["status"] == "needs_correction"
    set_now(desk, "2026-11-30T09:30")
    run_due_jobs(desk)
    [reminder] = outbox(desk, "correction_reminder")
    texts = [body_text(m["raw"]) for m in participant_mails(desk)]
    assert len(texts) == 2 and "【事業者名略称】" in texts[1]
    for text in texts:
        assert "evil.example" not in unicodedata.normalize("NFKC", text)
    assert reminder["recipient"] == CORP


# --- issue 25.2: a robot answering from a new address each round ---------------------------


@pytest.mark.parametrize("variant", LOOP_ROBOT_VARIANTS)
def test_twelve_rounds_of_a_reply_robot_end_at_the_cap_and_staff_are_told_once(
    desk: Context, variant: str
):
    """A ticket robot answers in the thread from a new plus-address (or a new domain) each
    round, with no Auto-Submitted or List headers: each address was a new stranger with a
    held case and a budget of its own, 12 mails in 12 rounds."""
    first = submit(desk, application())
    rules = load_trust_rules(desk.config.rules_dir)
    for n in range(12):
        ours = [m for m in participant_mails(desk)]
        submit(desk, robot_round(variant, n, first=ours[0], latest=ours[-1]))
    mails = participant_mails(desk)
    assert len(mails) <= rules.automatic_per_thread
    staff = [m for m in outbox(desk) if m["kind"] == "staff_loop_stopped"]
    assert len(staff) <= len(desk.config.staff_addresses)
    if variant == "first_thread_new_plus_address":
        assert len(staff) == len(desk.config.staff_addresses) == 1
        assert "MB-000001" in body_text(staff[0]["raw"])
    assert desk.store.case(first["id"])["data"] == first["data"]


def test_a_stranger_writing_on_a_held_case_is_not_answered(desk: Context):
    submit(desk, application())
    [receipt] = outbox(desk, "receipt")
    stranger = build(
        "Re: x",
        "チケットを受け付けました。",
        from_addr="a@robot-one.example",
        in_reply_to=receipt["message_id"],
    )
    held = submit(desk, stranger)
    assert held["status"] == "held"
    [held_mail] = outbox(desk, "held")
    again = build(
        "Re: x",
        "チケットを受け付けました。",
        from_addr="b@robot-two.example",
        in_reply_to=held_mail["message_id"],
    )
    second = submit(desk, again)
    assert second["status"] == "held" and second["id"] != held["id"]
    assert [m["kind"] for m in outbox(desk)] == ["receipt", "held"]


def test_the_caps_are_data_in_trust_toml(tmp_path: Path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    path = rules / "trust.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "automatic_per_thread = 8", "automatic_per_thread = 3"
        ),
        encoding="utf-8",
    )
    ctx = desk_with_operators(tmp_path, extra_config=f'\n[paths]\nrules = "{rules}"\n')
    submit(ctx, application())
    for n in range(6):
        ours = participant_mails(ctx)
        submit(ctx, robot_round("first_thread_new_domain", n, first=ours[0], latest=ours[-1]))
    assert len(participant_mails(ctx)) == 3
    ctx.close()


# --- issue 23.10: a From with a NUL or control character ------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x01", "\x1b", "\x7f"])
def test_a_from_with_a_control_character_is_held_unanswered(desk: Context, char: str):
    """A reply was addressed to that byte string: it is an unusable sender."""
    case = submit(desk, control_from(char))
    assert case["status"] == "held"
    assert "制御文字" in case["reason"]
    assert outbox(desk) == []


# --- issue 23.12: each mailbox signs as its seed names the window ---------------------------

SEED_000 = "送付先（本件に関する問い合わせ窓口）：電力広域的運営推進機関 運用部 マスター担当 mail: code@occto.or.jp"
SEED_004 = (
    "電力広域的運営推進機関",
    "〒135-0061 東京都江東区豊洲6-2-15",
    "問い合わせ先 部署 企画部",
    "電話番号：03-6632-0902",
)
INVENTED = "電力広域的運営推進機関 容量市場 受付窓口"


def test_code_mail_is_signed_as_seed_000_names_its_window(desk: Context):
    window = SEED_000.split("：", 1)[1].removesuffix(" mail: code@occto.or.jp")
    submit(desk, application())
    text = body_text(outbox(desk)[0]["raw"])
    assert f"{window}でございます。" in text
    signature = text.rstrip().splitlines()[-5:]
    assert window in signature and "E-Mail：code@occto.or.jp" in signature
    assert INVENTED not in text
    assert from_name(outbox(desk)[0]["raw"]) == window


def test_long_term_mail_is_signed_as_seed_004_s_notices_name_the_window(desk: Context):
    question = build("ロードマップについて", "提出方法を教えてください。", from_addr=CORP, to=LONG)
    submit(desk, question, mailbox=LONG)
    text = body_text(outbox(desk)[0]["raw"])
    lines = text.rstrip().splitlines()
    for line in SEED_004:
        assert line in lines
    assert f"E-Mail：{LONG}" in lines
    assert "電力広域的運営推進機関 企画部でございます。" in text
    assert INVENTED not in text
    assert from_name(outbox(desk)[0]["raw"]) == "電力広域的運営推進機関 企画部"


def from_name(raw: bytes) -> str:
    from email import message_from_bytes, policy

    name = message_from_bytes(raw, policy=policy.default)["From"].addresses[0].display_name
    return " ".join(name.split())  # the stdlib keeps the space between encoded words too


def test_from_name_in_the_config_names_every_mailbox_s_from(tmp_path: Path):
    from mailbot.config import DEFAULT_CONFIG, parse_config
    from mailbot.context import Context as Ctx
    from tests.support.desk import Clock, parse_instant

    text = DEFAULT_CONFIG.replace("[outgoing]\n", '[outgoing]\nfrom_name = "容量市場 窓口"\n', 1)
    ctx = Ctx.open(parse_config(text, "<test>", tmp_path), Clock(parse_instant("2026-11-20T10:00")))
    submit(ctx, application())
    raw = outbox(ctx)[0]["raw"]
    assert from_name(raw) == "容量市場 窓口"
    assert "電力広域的運営推進機関 運用部 マスター担当でございます。" in body_text(raw)
    ctx.close()


def test_the_window_is_configurable_per_mailbox(tmp_path: Path):
    """Staff's own words in the signature (a link to the operator's site included) are the
    desk's, not the sender's: they go to unverified senders as written."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    path = rules / "operator.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        'name = "電力広域的運営推進機関 運用部 マスター担当"',
        'name = "電力広域的運営推進機関 運用部 コード担当"',
    ).replace(
        'signature = ["電力広域的運営推進機関 運用部 マスター担当", "〒135-0061 東京都江東区豊洲6-2-15"]',
        'signature = ["電力広域的運営推進機関 運用部 コード担当", "https://www.occto.or.jp/"]',
    )
    path.write_text(text, encoding="utf-8")
    ctx = desk_with_operators(tmp_path, extra_config=f'\n[paths]\nrules = "{rules}"\n')
    submit(ctx, application())
    body = body_text(outbox(ctx)[0]["raw"])
    assert "電力広域的運営推進機関 運用部 コード担当でございます。" in body
    assert "https://www.occto.or.jp/" in body.splitlines()
    ctx.close()


def test_an_operator_toml_without_windows_signs_with_the_seeds_words(tmp_path: Path):
    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    path = rules / "operator.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text[: text.index("[windows.code]")] + text[text.index("[notice]") :], encoding="utf-8"
    )
    ctx = desk_with_operators(tmp_path, extra_config=f'\n[paths]\nrules = "{rules}"\n')
    submit(ctx, application())
    assert "電力広域的運営推進機関 運用部 マスター担当でございます。" in body_text(
        outbox(ctx)[0]["raw"]
    )
    ctx.close()


@pytest.mark.parametrize(
    ("name", "old", "new", "says"),
    [
        (
            "trust.toml",
            "automatic_per_case = 6",
            "automatic_per_case = 0",
            "loops.automatic_per_case",
        ),
        (
            "trust.toml",
            "automatic_per_thread = 8",
            "automatic_per_thread = true",
            "loops.automatic_per_thread",
        ),
        (
            "operator.toml",
            'name = "電力広域的運営推進機関 企画部"',
            "",
            "windows.youryou_rikuase_long",
        ),
        (
            "operator.toml",
            'signature = ["電力広域的運営推進機関 運用部',
            'signature = [1, "',
            "windows.code",
        ),
    ],
)
def test_a_wrong_loop_limit_or_window_is_a_configuration_error(
    tmp_path: Path, name: str, old: str, new: str, says: str
):
    from mailbot.errors import ConfigError
    from mailbot.identity import OPERATOR_RULES
    from mailbot.mail.trust import TRUST_RULES

    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    path = rules / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    loader = TRUST_RULES if name == "trust.toml" else OPERATOR_RULES
    with pytest.raises(ConfigError, match=re.escape(says)):
        loader.load(rules)


def test_loop_alerts_to_staff_are_bounded_per_day(tmp_path: Path):
    """A stranger can start threads too: each thread that reaches its cap tells staff once,
    and no more than ALERTS_PER_DAY threads a day do (the rest say so on their case)."""
    from mailbot.outbox.planner import ALERTS_PER_DAY

    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    path = rules / "trust.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("automatic_per_thread = 8", "automatic_per_thread = 1"), "utf-8")
    ctx = desk_with_operators(tmp_path, extra_config=f'\n[paths]\nrules = "{rules}"\n')
    for t in range(ALERTS_PER_DAY + 2):
        submit(ctx, application(f"applicant{t}@company{t}.example"))
        [receipt] = [
            m for m in outbox(ctx, "receipt") if m["recipient"].startswith(f"applicant{t}@")
        ]
        submit(ctx, robot_round("first_thread_new_domain", t, first=receipt, latest=receipt))
    alerts = [m for m in outbox(ctx) if m["kind"] == "staff_loop_stopped"]
    assert len(alerts) == ALERTS_PER_DAY * len(ctx.config.staff_addresses)
    withheld = ctx.store.count_events("staff_alert_withheld", ctx.now().replace(year=2000))
    assert withheld == 2
    ctx.close()
