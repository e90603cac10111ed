"""The web desk in a real browser: Debian's Chromium driven by Playwright against `mailbot web`
served by waitress on 127.0.0.1, beside `mailbot run --once` on the same SQLite file.

Staff log in, search a Japanese substring, claim a case, add a note, issue a code and see the
code notice in the case's outbox; screenshots of the queue and of the case are kept in the
test's tmp dir. Without Chromium this skips with the reason; under CI=true it fails instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest

from mailbot.cli import main
from tests.support.cycle import subject
from tests.support.samples import SAMPLES_DIR
from tests.support.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
NOW = "2026-11-25T09:00"
PASSWORD = "sato-password-1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _require_browser() -> None:
    why = None
    if not CHROMIUM.exists():
        why = "Chromium is not installed (apt-get install chromium); browser tests need it"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            why = "Playwright for Python is not installed (pip install -e '.[test]')"
    if why is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} — and CI=true, so this is an error, not a skip")
    pytest.skip(why)


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mailbot web exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"mailbot web did not listen on {port} within {timeout} s")


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _require_browser()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILBOT_NOW", raising=False)
    names = ("01_operator_code_complete.eml", "02_operator_code_flawed.eml", "05_question.eml")
    assert main(["--now", NOW, "deliver", *(str(SAMPLES_DIR / n) for n in names)]) == 0
    assert main(["--now", NOW, "run", "--once"]) == 0
    added = subprocess.run(
        [sys.executable, "-m", "mailbot", "staff", "add", "sato", "--name", "佐藤",
         "--password-stdin"],
        input=PASSWORD + "\n", text=True, capture_output=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    port = free_port()
    log = (tmp_path / "web.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--now", NOW, "web", "--port", str(port)],
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


def test_a_morning_at_the_desk_in_the_browser(served: str, tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="ja-JP", viewport={"width": 1280, "height": 900})
            page.goto(f"{served}/cases")
            expect(page).to_have_url(f"{served}/login")
            page.get_by_label("ログインID").fill("sato")
            page.get_by_label("パスワード").fill(PASSWORD)
            page.get_by_role("button", name="ログイン").click()
            expect(page).to_have_url(f"{served}/cases")
            # the default view leaves out MB-000002, which waits on the participant's correction
            expect(page.get_by_role("heading", name="案件一覧（2件）")).to_be_visible()
            page.screenshot(path=shots / "queue.png", full_page=True)

            page.get_by_label("検索").fill("髙橋電力")
            page.get_by_role("button", name="絞り込む").click()
            expect(page.get_by_role("heading", name="案件一覧（1件）")).to_be_visible()
            page.get_by_role("link", name="MB-000001").click()
            expect(
                page.get_by_role("heading", name="MB-000001 容量市場向け事業者コード申請")
            ).to_be_visible()

            page.get_by_role("button", name="自分が担当する").click()
            expect(page.locator(".notice")).to_have_text("担当になりました。")
            expect(page.locator("#owner")).to_have_text("sato")

            page.get_by_label("メモ").fill("登記簿で名称を確認済み（佐藤）")
            page.get_by_role("button", name="メモを追加").click()
            expect(page.locator(".timeline .note")).to_contain_text("登記簿で名称を確認済み")

            page.get_by_role("button", name="コード発番・通知").click()
            expect(page.locator(".mail.preview")).to_contain_text("事業者コードのお知らせ")
            page.get_by_role("button", name="確定する").click()
            expect(page.locator(".notice")).to_contain_text("判断を記録しました")
            notice = page.locator(".mail.out", has_text="事業者コードのお知らせ")
            expect(notice).to_contain_text("送信待ち")

            # `mailbot run` beside the web desk sends it; the case page then says so
            assert main(["--now", "2026-11-25T09:30", "run", "--once"]) == 0
            page.reload()
            expect(notice).to_contain_text("送信済み")
            expect(page.locator(".timeline")).to_contain_text("佐藤（sato）")
            page.screenshot(path=shots / "case.png", full_page=True)
        finally:
            browser.close()
    sent = [
        message_from_bytes(p.read_bytes())
        for p in (tmp_path / "data" / "outbox" / "new").iterdir()
        if "事業者コードのお知らせ" in subject(p.read_bytes())
    ]
    assert [m["To"] for m in sent] == ["ichiro@takahashi-denryoku.co.jp"]
    assert "登記簿" not in sent[0].get_payload(decode=True).decode("utf-8", "replace")
    for name in ("queue.png", "case.png"):
        assert (shots / name).stat().st_size > 10_000
    keep = os.environ.get("MAILBOT_SCREENSHOTS")
    if keep:
        shutil.copytree(shots, keep, dirs_exist_ok=True)
