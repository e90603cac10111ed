"""Issue 26's morning, walked in a real Chromium (Playwright, Debian's /usr/bin/chromium) against
`mailbot web` on 127.0.0.1 beside `mailbot run` on the same SQLite file.

A participant whose application needs correcting writes back asking for a phone call: the case
becomes 要対応 and leads the queue, and the correction reminder that falls due meanwhile does
not go. Staff find 髙橋 by typing 高橋 and a case by its number, see the staff-only remark on the
case page, keep their typed reply through a 409 when a colleague takes the case, and send a
canned reply after previewing it. The README's screenshots come from this walk
(`MAILBOT_SCREENSHOTS=docs/screenshots`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbot.cli import main
from tests.support.cycle import subject
from tests.support.samples import SAMPLES_DIR
from tests.support.servers import free_port
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, _wait_for_port

NOW = "2026-11-25T09:00"
PASSWORDS = {"sato": "sato-password-1", "suzuki": "suzuki-password-2"}
CALL_ME = "至急ご回答をお願いします。修正の仕方が分からないため、お電話でご相談させてください。"


def _add_staff(cwd: Path, login: str, name: str) -> None:
    added = subprocess.run(
        [sys.executable, "-m", "mailbot", "staff", "add", login, "--name", name,
         "--password-stdin"],
        input=PASSWORDS[login] + "\n", text=True, capture_output=True, cwd=cwd, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr


def _outbox(tmp_path: Path) -> list[bytes]:
    return [p.read_bytes() for p in (tmp_path / "data" / "outbox" / "new").iterdir()]


def _follow_up(tmp_path: Path) -> Path:
    """みなとエナジー's answer to our correction request, in its thread."""
    [correction] = [r for r in _outbox(tmp_path) if "不備のご連絡" in subject(r)]
    asked = next(
        line.split(":", 1)[1].strip()
        for line in correction.decode("ascii", "replace").splitlines()
        if line.lower().startswith("message-id:")
    )
    msg = EmailMessage()
    msg["From"] = "佐々木 花子 <hanako@minato-energy.jp>"
    msg["To"] = "code@occto.or.jp"
    msg["Subject"] = "Re: " + subject(correction)
    msg["Date"] = "Wed, 25 Nov 2026 11:00:00 +0900"
    msg["Message-ID"] = "<call-me.20261125@minato-energy.jp>"
    msg["In-Reply-To"] = asked
    msg["References"] = asked
    msg.set_content(CALL_ME + "\n\nみなとエナジー 佐々木\n")
    path = tmp_path / "follow-up.eml"
    path.write_bytes(msg.as_bytes())
    return path


@pytest.fixture
def morning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _require_browser()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    names = ("01_operator_code_complete.eml", "02_operator_code_flawed.eml", "05_question.eml")
    assert main(["--now", NOW, "deliver", *(str(SAMPLES_DIR / n) for n in names)]) == 0
    assert main(["--now", NOW, "run", "--once"]) == 0
    assert main(["--now", NOW, "deliver", str(_follow_up(tmp_path))]) == 0
    assert main(["--now", "2026-11-25T11:00", "run", "--once"]) == 0
    # five business days after the correction request its reminder falls due; the
    # participant waits on us, so none goes
    assert main(["--now", "2026-12-03T09:30", "run", "--once"]) == 0
    assert not [r for r in _outbox(tmp_path) if "再送" in subject(r)]
    _add_staff(tmp_path, "sato", "佐藤")
    _add_staff(tmp_path, "suzuki", "鈴木")
    port = free_port()
    log = (tmp_path / "web.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--now", "2026-11-25T11:30", "web", "--port", str(port)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _login(browser, served: str, login: str):
    from playwright.sync_api import expect

    page = browser.new_context(locale="ja-JP", viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{served}/login")
    page.get_by_label("ログインID").fill(login)
    page.get_by_label("パスワード").fill(PASSWORDS[login])
    page.get_by_role("button", name="ログイン").click()
    expect(page).to_have_url(f"{served}/cases")
    return page


def test_the_morning_walk(morning: str, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    served = morning
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            sato = _login(browser, served, "sato")
            # the follow-up makes MB-000002 要対応 and first in the queue
            rows = sato.locator("table tr").filter(has=sato.locator("td"))
            expect(rows.first).to_contain_text("MB-000002")
            expect(rows.first).to_contain_text("新着・要対応")
            expect(rows.nth(1)).not_to_contain_text("新着")
            sato.screenshot(path=shots / "queue.png", full_page=True)

            # the keyboard (our one script, allowed by its hash in the CSP)
            refused: list[str] = []
            sato.on(
                "console",
                lambda m: refused.append(m.text) if "Content Security" in m.text else None,
            )
            sato.keyboard.press("j")
            expect(rows.first).to_have_class(re.compile(r"\bselected\b"))
            sato.keyboard.press("Enter")
            expect(sato).to_have_url(f"{served}/cases/2")
            sato.keyboard.press("r")
            expect(sato.locator("#reply-text")).to_be_focused()
            sato.goto(f"{served}/cases/1")
            sato.keyboard.press("c")
            expect(sato.locator(".notice")).to_have_text("担当になりました。")
            sato.goto(f"{served}/cases")
            sato.keyboard.press("/")
            expect(sato.get_by_label("検索")).to_be_focused()
            assert refused == []

            # search: 髙橋 from 高橋, and a case by its number
            sato.get_by_label("検索").fill("高橋")
            sato.get_by_role("button", name="絞り込む").click()
            expect(sato.get_by_role("heading", name="案件一覧（1件）")).to_be_visible()
            expect(sato.get_by_role("link", name="MB-000001")).to_be_visible()
            sato.get_by_label("検索").fill("MB-000003")
            sato.get_by_role("button", name="絞り込む").click()
            expect(sato.get_by_role("heading", name="案件一覧（1件）")).to_be_visible()
            sato.get_by_role("link", name="MB-000003").click()
            expect(sato.get_by_role("heading", name="MB-000003", exact=False)).to_be_visible()

            # the case page: the latest mail first, the remark beside its field
            sato.goto(f"{served}/cases/2")
            expect(sato.locator(".waiting-banner")).to_contain_text("まだ対応していません")
            expect(sato.locator(".mail.latest")).to_contain_text("お電話でご相談させてください")
            remark = sato.locator("#form tr.remark")
            expect(remark).to_contain_text("連絡者メール")
            expect(remark).to_contain_text("備考（担当者のみ）")
            expect(sato.locator("#form tr.problem")).to_contain_text("事業者名略称")
            sato.screenshot(path=shots / "case.png", full_page=True)

            # a colleague takes the case while sato types: the 409 keeps the text
            suzuki = _login(browser, served, "suzuki")
            suzuki.goto(f"{served}/cases/2")
            expect(suzuki.locator("#presence")).to_contain_text("佐藤（sato）")
            typed = "佐々木様、本日15時にお電話いたします。"
            sato.locator("#reply-text").fill(typed)
            suzuki.get_by_role("button", name="自分が担当する").click()
            expect(suzuki.locator(".notice")).to_have_text("担当になりました。")
            sato.get_by_role("button", name="プレビューして送信…").click()
            expect(sato.locator(".error")).to_contain_text("更新されています")
            expect(sato.locator("#reply-text")).to_have_value(typed)
            sato.screenshot(path=shots / "conflict.png", full_page=True)
            sato.goto(f"{served}/cases/2")
            expect(sato.locator("#reply-text")).to_have_value(typed)

            # a canned reply, previewed, then sent
            sato.get_by_label("定型文").select_option("correction_by_phone")
            sato.get_by_role("button", name="定型文を入れる").click()
            expect(sato.locator("#reply-text")).to_contain_text("先ほどはお電話にて")
            expect(sato.locator("#reply-text")).to_contain_text("事業者名略称")
            sato.get_by_role("button", name="プレビューして送信…").click()
            preview = sato.locator(".mail.preview")
            expect(preview).to_contain_text("【受付番号 MB-000002】Re: ")
            expect(preview).to_contain_text("受付窓口の佐藤です")
            expect(preview).not_to_contain_text("自動受付システム")
            sato.screenshot(path=shots / "preview.png", full_page=True)
            sato.get_by_role("button", name="確定する").click()
            expect(sato.locator(".notice")).to_contain_text("返信を送信キューに入れました")
            expect(sato.locator(".waiting-banner")).to_have_count(0)
            expect(sato.locator("#reply-text")).to_have_value("")
        finally:
            browser.close()
    assert main(["--now", "2026-11-25T11:40", "run", "--once"]) == 0
    replies = [r for r in _outbox(tmp_path) if "Re: " in subject(r) and "MB-000002" in subject(r)]
    assert len(replies) == 1
    for name in ("queue.png", "case.png", "conflict.png", "preview.png"):
        assert (shots / name).stat().st_size > 10_000
    keep = os.environ.get("MAILBOT_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
