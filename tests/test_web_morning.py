"""The desk's morning (issue 26) through Flask's test client on a real SQLite file: decisions
and replies previewed before they are taken, typed text kept on the server through a 409 and a
reload, canned replies, one step to reply + claim + close, who else has the case open."""

from __future__ import annotations

import re

from mailbot.clock import Clock, parse_instant
from mailbot.config import load_config
from mailbot.desk.web.app import create_app
from tests.test_web import (
    NOW,
    case_json,
    client,
    csrf_of,
    desk,
    get,
    login,
    outbox_subjects,
    post,
    version_of,
)

__all__ = ["desk"]


def form(page: str, **values: str) -> dict[str, str]:
    return {"csrf": csrf_of(page), "version": version_of(page)} | values


def outbox_count() -> int:
    return len(outbox_subjects())


def test_a_decision_is_previewed_with_its_mail_and_sending_time_and_nothing_is_kept(desk):
    """Issue 26: "no confirmation before a code notice goes … the page does not say that the
    notice waits for the 09:00 window"."""
    late = create_app(load_config(None), Clock(parse_instant("2026-11-25T18:30"))).test_client()
    c = login(late, "sato")
    page = get(c, "/cases/1").text
    before = outbox_count()
    shown = post(c, "/cases/1/decide", form(page, action="issue-code", step="preview"))
    assert shown.status_code == 200
    html = shown.text
    assert "まだ記録も送信もしていません" in html and "事業者コードの通知" in html
    assert "送信予定 2026年11月26日（木） 09:00" in html  # the window of the next business morning
    assert "容量市場向け事業者コード" in html  # the notice's own text
    assert outbox_count() == before and case_json("1")["status"] == "complete"
    done = post(c, "/cases/1/decide", form(html, action="issue-code", arg="", reason=""))
    assert done.status_code == 303
    assert case_json("1")["status"] != "complete" and outbox_count() == before + 1


def test_a_409_keeps_the_typed_reply_and_a_reload_shows_it_again(desk):
    """Issue 26: "the second one's typed reply is thrown away with the 409"."""
    a, b = login(client(), "sato"), login(client(), "suzuki")
    page_a, page_b = get(a, "/cases/3").text, get(b, "/cases/3").text
    assert post(a, "/cases/3/claim", form(page_a)).status_code == 303
    typed = "ご質問の件、本日中にお電話いたします。"
    refused = post(b, "/cases/3/reply", form(page_b, text=typed, step="send"))
    assert refused.status_code == 409
    assert typed in refused.text
    assert typed in get(b, "/cases/3").text  # a reload: the draft is kept on the server
    assert typed not in get(a, "/cases/3").text  # per staff member
    # a draft saved without sending, kept for a reload
    later = typed + "（追記）"
    saved = post(b, "/cases/3/reply", form(get(b, "/cases/3").text, text=later, step="draft"))
    assert saved.status_code == 303 and "drafted" in saved.headers["Location"]
    assert (
        later in get(b, "/cases/3").text
        and "返信の下書きを保存しました" in get(b, "/cases/3?done=drafted").text
    )
    fresh = get(b, "/cases/3").text
    assert post(b, "/cases/3/reply", form(fresh, text=typed, step="send")).status_code == 303
    assert 'id="reply-text"></textarea>' in get(b, "/cases/3").text  # sent: the draft is gone


def test_a_canned_reply_fills_the_box_is_previewed_and_sent_with_claim_and_close(desk):
    c = login(client(), "sato")
    page = get(c, "/cases/2").text
    assert "修正方法のご案内（お電話の後）" in page
    filled = get(c, "/cases/2?template=correction_by_phone").text
    text = re.search(r'id="reply-text">([^<]*)</textarea>', filled).group(1)
    assert "先ほどはお電話にてありがとうございました" in text
    assert "事業者名略称" in text  # the case's own problem, through a placeholder
    assert get(c, "/cases/2?template=../../etc/passwd").status_code == 404
    shown = post(c, "/cases/2/reply", form(filled, text=text, claim="1", step="preview"))
    assert shown.status_code == 200, re.findall(r'class="error">[^<]*', shown.text)
    assert "担当者からの返信" in shown.text
    assert "【受付番号 MB-000002】Re: " in shown.text
    assert "送信と同時に自分が担当になります" in shown.text
    assert case_json("2")["owner"] is None
    sent = post(c, "/cases/2/reply", form(shown.text, text=text, claim="1"))
    assert sent.status_code == 303
    after = case_json("2")
    assert after["owner"] == "sato" and after["status"] == "needs_correction"
    assert outbox_subjects()[-1].startswith("【受付番号 MB-000002】Re: ")
    # the question: reply, take it and end it in one step
    page = get(c, "/cases/3").text
    assert '<option value="close">対応終了にする</option>' in page
    done = post(
        c, "/cases/3/reply", form(page, text="ご案内のとおりです。", claim="1", then="close")
    )
    assert done.status_code == 303
    assert (case_json("3")["owner"], case_json("3")["status"]) == ("sato", "closed")
    # a state that takes no 対応終了 refuses the whole step: no reply goes
    page = get(c, "/cases/1").text
    before = outbox_count()
    refused = post(c, "/cases/1/reply", form(page, text="x", then="close"))
    assert refused.status_code == 409 and outbox_count() == before


def test_who_else_has_the_case_open_is_shown_before_typing(desk):
    a, b = login(client(), "sato"), login(client(), "suzuki")
    assert "もこの案件を開いています" not in get(a, "/cases/2").text
    page = get(b, "/cases/2").text
    assert "いま 佐藤（sato） もこの案件を開いています" in page
    assert page.index('id="presence"') < page.index('id="reply-text"')
    later = create_app(load_config(None), Clock(parse_instant("2026-11-25T09:03"))).test_client()
    assert "もこの案件を開いています" not in get(login(later, "suzuki"), "/cases/2").text
    assert NOW == "2026-11-25T09:00"


def test_the_case_page_speaks_japanese_not_internal_ids(desk):
    """Issue 26: "English and ids leak: timeline participant_message,
    operator_code_application, receipt; issue-code beside buttons"."""
    c = login(client(), "sato")
    page = get(c, "/cases/1").text
    page = re.sub(r"<(script|style|pre)\b.*?</\1>", "", page, flags=re.S)
    visible = re.sub(r"<[^>]+>", " ", page)
    for internal in (
        "participant_message",
        "operator_code_application",
        "receipt",
        "issue-code",
        "mail_planned",
        "mail_received",
    ):
        assert internal not in visible, internal
    assert "受付のお知らせ" in visible and "コード発番・通知" in visible


def test_stats_show_workload_per_staff_and_service_levels_per_procedure(desk):
    c = login(client(), "sato")
    page = get(c, "/cases/1").text
    assert post(c, "/cases/1/claim", form(page)).status_code == 303
    page = get(c, "/cases/1").text
    assert post(c, "/cases/1/decide", form(page, action="issue-code")).status_code == 303
    page = get(c, "/cases/3").text
    assert (
        post(c, "/cases/3/reply", form(page, text="ご案内します。", claim="1")).status_code == 303
    )
    html = get(c, "/stats").text
    table = html[html.index('id="workload"') : html.index("</table>", html.index('id="workload"'))]
    cells = lambda who: re.findall(r"<td>([^<]*)</td>", table.split(who, 1)[1].split("</tr>")[0])  # noqa: E731
    # sato: MB-000001 decided (closed, so no longer open) and MB-000003 taken: one open case,
    # two answers (a decision and a reply) within 14 days
    assert cells("佐藤（sato）") == ["1", "0", "0", "2"]
    assert cells("未割当") == ["2", "0", "0", "0"]  # MB-000002 and MB-000004, nobody's
    levels = html[html.index('id="levels"') :]
    assert "容量市場向け事業者コード申請" in levels and "100%" in levels


def test_a_canned_reply_staff_broke_is_reported_on_the_page(desk):
    """A deployment's own canned reply (templates/replies/) is used before the shipped ones;
    one that does not render (or reaches beyond the sandbox) says so instead of failing the
    page."""
    from mailbot.config import DEFAULT_CONFIG, parse_config

    own = desk / "own-templates" / "replies"
    own.mkdir(parents=True)
    (own / "broken.txt.j2").write_text(
        "{% block title %}壊れた定型文{% endblock %}{% block body %}{{ case_number.__class__.__mro__ }}{% endblock %}",
        encoding="utf-8",
    )
    config = parse_config(
        DEFAULT_CONFIG + '\n[paths]\ntemplates = "own-templates"\n', "<test>", desk
    )
    c = login(create_app(config, Clock(parse_instant(NOW))).test_client(), "sato")
    assert "broken（表示できません）" in get(c, "/cases/2").text
    page = get(c, "/cases/2?template=broken")
    assert page.status_code == 200
    assert (
        "定型文「broken」を表示できません" in page.text
        and "object" not in re.findall(r'id="reply-text">([^<]*)<', page.text)[0]
    )
