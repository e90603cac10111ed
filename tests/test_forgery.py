"""Issue 11 review: forgeries a stranger can put in a mail's headers, through the real pipeline
on a real SQLite file. A sender named only below a broken header line, an
Authentication-Results header our MTA did not stamp, a bounce citing a Message-ID we never
sent: none of them may continue a case, vouch for a sender or flood staff."""

from __future__ import annotations

import hashlib
import re

import pytest

from mailbot.config import DEFAULT_CONFIG, parse_config
from mailbot.context import Context
from mailbot.intake.runner import process_pending
from mailbot.mail.parse import parse
from mailbot.mail.trust import auth_verdict
from mailbot.outbox.planner import ALERTS_PER_DAY
from mailbot.outbox.send import flush_outbox, make_sender
from tests.support.desk import desk_with_operators, outbox, set_now
from tests.support.hostile import APPLY_SUBJECT
from tests.support.jpmail import build
from tests.test_trust import application as trust_application
from tests.test_trust import store, submit

CODE = "code@occto.or.jp"
VICTIM = "ichiro@takahashi-denryoku.co.jp"
ATTACKER = "eve@evil.example"
TRUST_OURS = '\n[trust]\nauthserv_ids = ["mx.occto.or.jp"]\n'


@pytest.fixture
def desk(tmp_path) -> Context:
    ctx = desk_with_operators(tmp_path, extra_config=TRUST_OURS)
    yield ctx
    ctx.close()


def application(sender: str = VICTIM, fields: dict | None = None, **kwargs) -> bytes:
    return trust_application(sender, fields, **kwargs)


def victim_case(ctx: Context) -> tuple[dict, str]:
    case = submit(ctx, application())
    assert case["status"] == "complete"
    [receipt] = outbox(ctx, "receipt")
    return case, receipt["message_id"]


# --- 1. a sender found only by the lenient re-read of a broken header block ----------------

HEADER_END = b"\r\n\r\n"


def _without_from(raw: bytes) -> tuple[list[bytes], bytes]:
    head, _, body = raw.partition(HEADER_END)
    lines = [line for line in head.split(b"\r\n") if not line.startswith(b"From:")]
    return lines, body


def smuggled(raw: bytes, how: str) -> bytes:
    """The attacker's own mail (its real header block has no From) with `From: <victim>`
    where only a lenient reader takes it for a header."""
    lines, body = _without_from(raw)
    lines.append(b"X-Mailer: Forger 1.0")  # the field a lenient reader joins the junk line to
    victim = f"From: <{VICTIM}>".encode()
    if how == "junk_line_then_from":
        lines += [b"this line is not a header", victim]
    elif how == "junk_first_line":
        lines = [b"---- Original email message ----", victim, *lines]
    elif how == "folded_from":
        lines += [b"junk", b"From:", f" <{VICTIM}>".encode()]
    elif how == "duplicate_from":
        subject = [line for line in lines if line.startswith(b"Subject:")]
        lines = [line for line in lines if line not in subject]
        lines = [b"From: undisclosed", *lines, b"junk", *subject, victim]
    elif how == "authentication_results_too":
        lines += [
            b"junk",
            victim,
            b"Authentication-Results: mx.occto.or.jp; dmarc=pass header.from=takahashi-denryoku.co.jp",
            f"Reply-To: {ATTACKER}".encode(),
        ]
    else:
        raise AssertionError(how)
    return b"\r\n".join(lines) + HEADER_END + body


SMUGGLES = [
    "junk_line_then_from",
    "junk_first_line",
    "folded_from",
    "duplicate_from",
    "authentication_results_too",
]


@pytest.mark.parametrize("how", SMUGGLES)
def test_a_from_below_a_broken_header_line_is_never_the_sender(how: str):
    mail = parse(smuggled(application(), how))
    assert mail.from_addr != VICTIM and mail.claimed_sender == VICTIM
    assert mail.authentication_results == () and mail.reply_to is None
    assert mail.subject == APPLY_SUBJECT, "the lenient read still recovers the subject"
    assert [a.filename for a in mail.attachments] == ["事業者マスタ申込書.xlsx"]


@pytest.mark.parametrize("how", SMUGGLES)
def test_a_from_below_a_broken_header_line_does_not_continue_the_victims_case(
    desk: Context, how: str
):
    case, receipt_id = victim_case(desk)
    attack = application(
        fields={"事業者名称": "乗っ取り商事株式会社"},
        in_reply_to=receipt_id,
        references=(receipt_id,),
        message_id="<smuggled@evil.example>",
    )
    subject_with_number = attack.replace(b"Subject: ", b"Subject: Re: [MB-000001] ", 1)
    held = submit(desk, smuggled(subject_with_number, how))
    assert held["id"] != case["id"] and held["status"] == "held"
    assert VICTIM in held["reason"] and "信用できません" in held["reason"]
    assert desk.store.case(case["id"])["data"] == case["data"]
    assert [r["kind"] for r in outbox(desk)] == ["receipt"], "nobody was answered"


def test_a_from_after_the_blank_line_is_body_text(desk: Context):
    case, _ = victim_case(desk)
    lines, body = _without_from(build("お問い合わせ", "本文です。"))
    raw = b"\r\n".join(lines) + HEADER_END + f"From: <{VICTIM}>\r\n".encode() + body
    mail = parse(raw)
    assert mail.from_addr == "" and mail.claimed_sender == ""
    held = submit(desk, raw)
    assert held["id"] != case["id"] and held["status"] == "held"
    assert [r["kind"] for r in outbox(desk)] == ["receipt"]


def test_a_mended_header_block_keeps_its_real_sender(desk: Context):
    """The lenient read exists for real broken mail: an unindented continuation of the subject
    above a From in the real header block still has that sender."""
    raw = application(VICTIM)
    head, _, body = raw.partition(HEADER_END)
    lines = head.split(b"\r\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(b"Subject:"))
    lines.insert(at, b"Subject-Less junk line")
    mail = parse(b"\r\n".join(lines) + HEADER_END + body)
    assert mail.from_addr == VICTIM and mail.claimed_sender == ""
    assert re.search(r"sender only below", " ".join(mail.defects)) is None


# --- 2. only our own MTA's aligned DMARC pass vouches for a From -----------------------------

OURS = "mx.occto.or.jp"
DOMAIN = "takahashi-denryoku.co.jp"


def ours(authserv_id: str) -> bool:
    return authserv_id == OURS


@pytest.mark.parametrize(
    ("why", "headers", "vouched", "failed"),
    [
        ("aligned pass", [f"{OURS}; dmarc=pass header.from={DOMAIN}"], True, False),
        ("spf and dkim pass say nothing of From", [f"{OURS}; spf=pass; dkim=pass"], False, False),
        (
            "pass for another From domain",
            [f"{OURS}; dmarc=pass header.from=evil.example"],
            False,
            False,
        ),
        ("pass with no header.from", [f"{OURS}; dmarc=pass"], False, False),
        ("stamped by a stranger", [f"evil.example; dmarc=pass header.from={DOMAIN}"], False, False),
        (
            "a stranger's fail holds too (it only holds the forger's own mail)",
            [f"evil.example; dmarc=fail header.from={DOMAIN}"],
            False,
            True,
        ),
        (
            "Exchange Online's fail, with no authserv-id",
            [
                "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=evil.example; dkim=none "
                "(message not signed) header.d=none;dmarc=fail action=none "
                f"header.from={DOMAIN};compauth=fail reason=000"
            ],
            False,
            True,
        ),
        ("any case", [f"MX.Occto.OR.jp 1; DMARC = Pass Header.From={DOMAIN.upper()}"], True, False),
        ("quoted value", [f'{OURS}; dmarc=pass header.from="{DOMAIN}"'], True, False),
        (
            "a comment is no result",
            [
                f"{OURS}; dmarc=none (dmarc=pass header.from={DOMAIN}; nested (x)) header.from={DOMAIN}"
            ],
            False,
            False,
        ),
        (
            "a quoted reason is no result",
            [f'{OURS}; spf=fail reason="x; dmarc=pass header.from={DOMAIN}"'],
            False,
            False,
        ),
        (
            "our header below a relay's",
            ["relay.example; spf=fail", f"{OURS}; dmarc=pass (p=none) header.from={DOMAIN}"],
            True,
            False,
        ),
        (
            "a fail in any header outweighs our pass",
            ["relay.example; dmarc=fail", f"{OURS}; dmarc=pass header.from={DOMAIN}"],
            False,
            True,
        ),
        (
            "only the topmost of ours",
            [
                f"{OURS}; dmarc=fail header.from={DOMAIN}",
                f"{OURS}; dmarc=pass header.from={DOMAIN}",
            ],
            False,
            True,
        ),
        (
            "a fail beside a pass",
            [f"{OURS}; dmarc=pass header.from={DOMAIN}; dmarc=fail header.from={DOMAIN}"],
            False,
            True,
        ),
        (
            "a pass beside a none",
            [f"{OURS}; dmarc=pass header.from={DOMAIN}; dmarc=none header.from={DOMAIN}"],
            False,
            False,
        ),
        (
            "a pass beside a pass for another domain",
            [f"{OURS}; dmarc=pass header.from={DOMAIN}; dmarc=pass header.from=evil.example"],
            False,
            False,
        ),
        ("nothing at all", [], False, False),
        ("no result", [f"{OURS}; none"], False, False),
    ],
)
def test_our_mtas_verdict_is_read_from_its_own_header_only(why, headers, vouched, failed):
    verdict = auth_verdict(headers, ours)
    assert verdict.vouches_for(VICTIM) is vouched, why
    assert verdict.dmarc_failed is failed, why


def test_only_a_configured_authserv_id_is_ours(tmp_path):
    """Unset, no header is ours: a host under our domain is no proof (Exchange Online and
    Google stamp other ids and never strip a forged `relay7.occto.or.jp` header)."""
    default = parse_config(DEFAULT_CONFIG, "<test>", tmp_path)
    assert not default.our_authserv_id("mx.occto.or.jp")
    assert not default.our_authserv_id("relay7.occto.or.jp")
    assert not default.our_authserv_id("occto.or.jp")
    forged = [
        "spf=pass smtp.mailfrom=evil.example; dkim=none; dmarc=none",
        f"relay7.occto.or.jp; dmarc=pass header.from={DOMAIN}",
    ]
    assert not auth_verdict(forged, default.our_authserv_id).vouches_for(VICTIM)
    config = parse_config(
        DEFAULT_CONFIG + '\n[trust]\nauthserv_ids = ["Gateway.ISP.example"]\n', "<test>", tmp_path
    )
    assert config.our_authserv_id("gateway.isp.example")
    assert not config.our_authserv_id("mx.occto.or.jp")


@pytest.mark.parametrize(
    "verdict",
    [
        f"{OURS}; spf=pass smtp.mailfrom=evil.example; dkim=pass header.d=evil.example",
        f"evil.example; dmarc=pass header.from={DOMAIN}",
        f"{OURS}; dmarc=pass header.from=evil.example",
    ],
)
def test_a_spoofed_from_is_not_vouched_for_by_spf_dkim_or_a_strangers_header(
    desk: Context, verdict: str
):
    """A spoofed From with the attacker's Reply-To, on the victim's case: before, an spf=pass
    or dkim=pass for the attacker's own domain counted as proof of From."""
    case, receipt_id = victim_case(desk)
    forged = application(
        fields={"事業者名称": "乗っ取り商事株式会社"},
        in_reply_to=receipt_id,
        headers={"Reply-To": ATTACKER, "Authentication-Results": verdict},
        message_id="<forged@evil.example>",
    )
    held = submit(desk, forged)
    assert held["id"] != case["id"] and held["status"] == "held"
    assert desk.store.case(case["id"])["data"] == case["data"]
    assert all(r["recipient"] != ATTACKER for r in outbox(desk))


def test_our_aligned_pass_lets_a_reply_to_elsewhere_through(desk: Context):
    """The participant's own colleague in Reply-To, From vouched for by our MTA: checked as
    usual (and answered to From only)."""
    case, receipt_id = victim_case(desk)
    again = submit(
        desk,
        application(
            in_reply_to=receipt_id,
            headers={
                "Reply-To": "assistant@gmail.com",
                "Authentication-Results": f"{OURS}; dmarc=pass header.from={DOMAIN}",
            },
            message_id="<again@takahashi-denryoku.co.jp>",
        ),
    )
    assert again["id"] == case["id"] and again["status"] == "complete"
    assert {r["recipient"] for r in outbox(desk)} == {VICTIM}


def test_a_dmarc_fail_in_any_header_holds_a_mail(desk: Context):
    """Fail-safe: a forged fail only holds the forger's own mail."""
    case = submit(
        desk, application(headers={"Authentication-Results": "relay.example; dmarc=fail"})
    )
    assert case["status"] == "held"


def test_exchange_onlines_dmarc_fail_holds_a_spoofed_mail(desk: Context):
    """Exchange Online stamps no authserv-id; its verdict on the spoofed From still holds."""
    case, receipt_id = victim_case(desk)
    exo = (
        "spf=pass (sender IP is 192.0.2.1) smtp.mailfrom=evil.example; dkim=none "
        f"(message not signed) header.d=none;dmarc=fail action=none header.from={DOMAIN};"
        "compauth=fail reason=000"
    )
    forged = application(
        fields={"事業者名称": "乗っ取り商事株式会社"},
        in_reply_to=receipt_id,
        message_id="<spoof@evil.example>",
        headers={"Authentication-Results": exo},
    )
    held = submit(desk, forged)
    assert held["id"] != case["id"] and held["status"] == "held"
    assert desk.store.case(case["id"])["data"] == case["data"]


# --- 4. forged bounces ------------------------------------------------------------------------


def bounce(cited: str, n: int = 0, reporter: str = "mx.evil.example") -> bytes:
    """A delivery status report as Postfix writes one, citing `cited` as the returned mail."""
    return (
        f"From: MAILER-DAEMON@{reporter}\r\nTo: {CODE}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn.{n}@{reporter}>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nUser unknown\r\n"
        f"--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; {VICTIM}\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {cited}\r\n\r\n--b--\r\n"
    ).encode()


def staff_alerts(ctx: Context) -> list[dict]:
    return outbox(ctx, "staff_undeliverable")


def forged_id(n: int, domain: str = "occto.or.jp") -> str:
    return f"<mailbot.1.{hashlib.md5(str(n).encode()).hexdigest()}@{domain}>"


def test_a_hundred_forged_bounces_tell_no_one_and_mark_nothing(desk: Context):
    _, receipt_id = victim_case(desk)
    flush_outbox(desk, make_sender(desk))
    forged = [forged_id(n, "occto.or.jp" if n % 2 else "evil.example") for n in range(98)]
    # our real id at a foreign domain, and an id only ever seen on an incoming mail
    forged.append(receipt_id.replace("occto.or.jp", "evil.example"))
    incoming = forged_id(999)
    submit(desk, build("お問い合わせ", "本文", from_addr=VICTIM, message_id=incoming))
    forged.append(incoming)
    store(desk, *(bounce(cited, n) for n, cited in enumerate(forged)))
    results = process_pending(desk)
    assert len(results) == 100
    assert staff_alerts(desk) == []
    assert [r["state"] for r in outbox(desk, "receipt")] == ["sent"]
    cases = {r.case_id for r in results} | {1, 2}
    assert not [c for c in cases for e in desk.store.events(c) if e["kind"] == "bounced"]


def test_a_hundred_bounces_of_one_real_reply_tell_staff_once(desk: Context):
    case, receipt_id = victim_case(desk)
    flush_outbox(desk, make_sender(desk))
    store(desk, *(bounce(receipt_id, n) for n in range(100)))
    process_pending(desk)
    assert outbox(desk, "receipt")[0]["state"] == "bounced"
    assert [a["recipient"] for a in staff_alerts(desk)] == list(desk.config.staff_addresses)
    kinds = [e["kind"] for e in desk.store.events(case["id"])]
    assert kinds.count("bounced") == 100 and kinds.count("staff_told_undeliverable") == 1


def test_staff_alerts_for_bounces_are_bounded_per_day_across_cases(desk: Context):
    """Many real replies bouncing at once (a flood of applications under forged From
    addresses brings real bounces): at most ALERTS_PER_DAY alerts a day, every reply still
    marked bounced on its case; the budget is a rolling day."""
    receipts = []
    for n in range(ALERTS_PER_DAY + 5):
        submit(desk, application(f"applicant{n}@example{n}.co.jp"))
        receipts.append(outbox(desk, "receipt")[-1]["message_id"])
    flush_outbox(desk, make_sender(desk))
    store(desk, *(bounce(mid, n) for n, mid in enumerate(receipts)))
    process_pending(desk)
    staff = len(desk.config.staff_addresses)
    assert len(staff_alerts(desk)) == ALERTS_PER_DAY * staff
    assert {r["state"] for r in outbox(desk, "receipt")} == {"bounced"}
    withheld = [
        e for c in range(1, len(receipts) + 1) for e in desk.store.events(c)
        if e["kind"] == "staff_alert_withheld"
    ]  # fmt: skip
    assert len(withheld) == 5
    set_now(desk, "2026-11-21T10:01")
    submit(desk, application("late@example-late.co.jp"))
    flush_outbox(desk, make_sender(desk))
    store(desk, bounce(outbox(desk, "receipt")[-1]["message_id"], 999))
    process_pending(desk)
    assert len(staff_alerts(desk)) == (ALERTS_PER_DAY + 1) * staff


# --- 5. an address inside an encoded-word display name -----------------------------------------


def _with_from(raw: bytes, value: str) -> bytes:
    head, _, body = raw.partition(HEADER_END)
    lines = [
        f"From: {value}".encode() if line.startswith(b"From:") else line
        for line in head.split(b"\r\n")
    ]
    return b"\r\n".join(lines) + HEADER_END + body


def test_an_address_in_a_display_name_does_not_continue_the_victims_case(desk: Context):
    """Our MTA passed DMARC for the attacker's own domain, the address the From field really
    holds; the victim's address, written inside an encoded-word with a CR before it, is text."""
    case, receipt_id = victim_case(desk)
    raw = application(
        ATTACKER,
        fields={"事業者名称": "乗っ取り商事株式会社"},
        in_reply_to=receipt_id,
        message_id="<z@evil.example>",
        headers={"Authentication-Results": f"{OURS}; dmarc=pass header.from=evil.example"},
    )
    after = submit(desk, _with_from(raw, f"=?utf-8?q?x=0D=0AFrom:_{VICTIM}?= <{ATTACKER}>"))
    assert after["id"] != case["id"]
    assert desk.store.case(case["id"])["data"] == case["data"]


def test_an_address_in_a_display_name_is_never_mailed(desk: Context):
    third = "keiri@other-company.co.jp"
    raw = application(
        ATTACKER,
        message_id="<n@evil.example>",
        headers={"Authentication-Results": f"{OURS}; dmarc=pass header.from=evil.example"},
    )
    submit(desk, _with_from(raw, f"=?utf-8?q?=0Dg:_{third};?= <{ATTACKER}>"))
    assert third not in {r["recipient"] for r in outbox(desk)}


# --- 6. the sender is the one address of the one From field ------------------------------------


def _takeover(desk: Context, receipt_id: str, headers: dict, mid: str) -> bytes:
    return application(
        ATTACKER,
        fields={"事業者名称": "乗っ取り商事株式会社"},
        in_reply_to=receipt_id,
        message_id=f"<{mid}@evil.example>",
        headers=headers,
    )


def _held_apart(desk: Context, case: dict, after: dict) -> None:
    assert after["id"] != case["id"] and after["status"] == "held", after
    assert desk.store.case(case["id"])["data"] == case["data"]
    assert outbox(desk) == outbox(desk, "receipt"), "nothing answered"


@pytest.mark.parametrize(
    "from_value", ["Takahashi Ichiro", "<>", "ichiro at takahashi-denryoku.co.jp"]
)
@pytest.mark.parametrize("fallback", ["Sender", "Reply-To"])
def test_sender_or_reply_to_never_stand_in_for_a_from_without_address(
    desk: Context, from_value: str, fallback: str
):
    """Our MTA's DMARC check had no From domain to judge; the address in Sender or Reply-To is
    one nobody checked."""
    case, receipt_id = victim_case(desk)
    headers = {
        fallback: VICTIM,
        "Authentication-Results": f"{OURS}; spf=pass smtp.mailfrom=evil.example; dmarc=none",
    }
    raw = _with_from(_takeover(desk, receipt_id, headers, "x"), from_value)
    assert parse(raw).from_addr == ""
    after = submit(desk, raw)
    _held_apart(desk, case, after)
    assert "差出人" in after["reason"]


@pytest.mark.parametrize(
    "from_value",
    [f"{VICTIM} <{ATTACKER}>", f"{VICTIM}, {ATTACKER}", f"Ichiro <{VICTIM}> <{ATTACKER}>"],
)
def test_a_from_field_with_two_addresses_has_no_sender(desk: Context, from_value: str):
    case, receipt_id = victim_case(desk)
    headers = {"Authentication-Results": f"{OURS}; dmarc=pass header.from=evil.example"}
    raw = _with_from(_takeover(desk, receipt_id, headers, "y"), from_value)
    assert parse(raw).from_addr == ""
    _held_apart(desk, case, submit(desk, raw))


def test_two_from_fields_have_no_sender(desk: Context):
    """RFC 5322 §3.6: exactly one From field."""
    case, receipt_id = victim_case(desk)
    headers = {"Authentication-Results": f"{OURS}; dmarc=pass header.from=evil.example"}
    raw = f"From: <{VICTIM}>\r\n".encode() + _takeover(desk, receipt_id, headers, "w")
    assert parse(raw).from_addr == ""
    _held_apart(desk, case, submit(desk, raw))


def test_our_mtas_verdict_on_another_from_domain_holds_the_mail(desk: Context):
    """Our MTA judged a From domain that is not the one we read: the two parsers disagree on
    the field, and the address we read was never checked."""
    case, receipt_id = victim_case(desk)
    headers = {"Authentication-Results": f"{OURS}; dmarc=pass header.from=evil.example"}
    raw = application(
        fields={"事業者名称": "乗っ取り商事株式会社"},
        in_reply_to=receipt_id,
        message_id="<v@evil.example>",
        headers=headers,
    )
    _held_apart(desk, case, submit(desk, raw))


# --- 7. a bounce marks the mail it returns -------------------------------------------------------


def returned(raw_sent: bytes, n: int, how: str) -> bytes:
    """A real delivery report for `raw_sent`, with its headers returned as text/rfc822-headers
    (Postfix) or the whole mail as message/rfc822 (Exchange)."""
    head = raw_sent.split(b"\r\n\r\n", 1)[0].decode()
    kind, part = (
        ("text/rfc822-headers", f"{head}\r\n")
        if how == "headers"
        else ("message/rfc822", raw_sent.decode())
    )
    return (
        f"From: MAILER-DAEMON@mx.takahashi-denryoku.co.jp\r\nTo: {CODE}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn.{n}@mx.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
        ' boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nMailbox full\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Final-Recipient: rfc822; {VICTIM}\r\nAction: failed\r\nStatus: 5.2.2\r\n\r\n"
        f"--b\r\nContent-Type: {kind}\r\n\r\n{part}\r\n--b--\r\n"
    ).encode()


@pytest.mark.parametrize("how", ["headers", "whole mail"])
def test_a_bounce_of_a_follow_up_reply_marks_that_reply(desk: Context, how: str):
    """Our second reply cites the receipt (In-Reply-To, References) above its own Message-ID;
    the bounce marks the returned mail's Message-ID field, not the first id of ours in it."""
    _, receipt_id = victim_case(desk)
    flush_outbox(desk, make_sender(desk))
    submit(
        desk,
        application(
            fields={"事業者名称": "高橋電力株式会社X"},
            in_reply_to=receipt_id,
            references=(receipt_id,),
            message_id="<again@takahashi-denryoku.co.jp>",
        ),
    )
    flush_outbox(desk, make_sender(desk))
    second = [r for r in outbox(desk) if r["message_id"] != receipt_id][-1]
    assert receipt_id.encode() in second["raw"]
    store(desk, returned(second["raw"], 1, how))
    process_pending(desk)
    states = {r["message_id"]: r["state"] for r in outbox(desk)}
    assert (states[second["message_id"]], states[receipt_id]) == ("bounced", "sent")


# --- 8. Authentication-Results is never RFC 2047-decoded ----------------------------------------

SMUGGLED_LOCAL = "=?us-ascii?q?x=3B_dmarc=3Dpass_header.from=3Dtakahashi-denryoku.co.jp=3B?="
SMUGGLED = (
    f"{OURS}; spf=pass smtp.mailfrom={SMUGGLED_LOCAL}@evil.example; dkim=none; "
    f"dmarc=none header.from={DOMAIN}"
)


def test_an_encoded_word_in_authentication_results_is_no_result():
    """`=?us-ascii?q?…?=` is a legal local-part our MTA copies into smtp.mailfrom=; decoded,
    it would add a dmarc=pass for any domain without a DMARC record."""
    raw = (
        f"From: <{VICTIM}>\r\nTo: {CODE}\r\nSubject: s\r\n"
        f"Authentication-Results: {SMUGGLED}\r\n\r\nbody\r\n"
    ).encode()
    mail = parse(raw)
    assert mail.authentication_results == (SMUGGLED,)
    assert not auth_verdict(mail.authentication_results, ours).vouches_for(VICTIM)


def test_an_encoded_word_in_authentication_results_does_not_lift_the_reply_to_hold(
    desk: Context,
):
    case, receipt_id = victim_case(desk)
    forged = application(
        fields={"事業者名称": "乗っ取り商事株式会社"},
        in_reply_to=receipt_id,
        message_id="<ar@evil.example>",
        headers={"Reply-To": ATTACKER, "Authentication-Results": SMUGGLED},
    )
    held = submit(desk, forged)
    assert held["id"] != case["id"] and held["status"] == "held"


def test_an_application_from_an_8_bit_address_is_held_not_quarantined(desk: Context):
    """The hostile corpus's mutations put 8-bit bytes in a From address: the receipt could not
    be composed (no SMTPUTF8), so the mail was quarantined with an encoder's error. It is held
    for staff with a reason they can read, and nothing is answered."""
    raw = application().replace(VICTIM.encode(), "ichirô@takahashi-denryoku.co.jp".encode())
    case = submit(desk, raw)
    assert case["status"] == "held"
    assert "英数字以外" in case["reason"]
    assert outbox(desk) == []


def test_two_processes_never_send_the_same_outbox_at_once(desk: Context, monkeypatch):
    """The daemon and a staff command both flush the outbox; each read the same due rows and
    sent them, so a reply could go twice. One holds the database's sending turn; the other
    leaves the mail due and it goes once."""
    import mailbot.outbox.send as send

    submit(desk, application())
    assert [m["state"] for m in outbox(desk)] == ["pending"]
    monkeypatch.setattr(send, "SEND_LOCK_WAIT", 0.1)
    with send.sending_turn(desk.store.path, 0) as held:
        assert held
        assert flush_outbox(desk, make_sender(desk)) == (0, 0)
    assert [m["state"] for m in outbox(desk)] == ["pending"]
    assert flush_outbox(desk, make_sender(desk)) == (1, 0)
    assert [m["state"] for m in outbox(desk)] == ["sent"]
