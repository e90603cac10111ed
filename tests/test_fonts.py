"""A fresh machine prints the notice (issue 24: 「on a fresh machine `pip install` gives a desk
whose `assess` exits 3 (no Japanese font)」): IPAexGothic ships in the package with its licence,
and the notice is rendered and read back with no system font visible at all."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from email import message_from_bytes
from pathlib import Path

import pytest

from mailbot.longterm.notice_pdf import FONTS_DIR, SHIPPED_FONT, font_path, register_font
from tests.support.desk import SOURCES_CSV

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_FONT = Path("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf")
MAILBOT = Path(sys.executable).with_name("mailbot")


def test_the_font_ships_unchanged_with_its_whole_licence_beside_it():
    """IPA Font License v1.0 第3条2項: redistributed unchanged, under its own name, with a copy
    of the agreement attached."""
    font = FONTS_DIR / SHIPPED_FONT
    assert font.read_bytes()[:4] == b"\x00\x01\x00\x00"  # a TrueType outline font
    assert "IPAexGothic".encode("utf-16-be") in font.read_bytes()
    if DEBIAN_FONT.is_file():
        digest = hashlib.sha256
        assert digest(font.read_bytes()).digest() == digest(DEBIAN_FONT.read_bytes()).digest()
    licence = (FONTS_DIR / "IPA_Font_License_Agreement_v1.0.txt").read_text(encoding="utf-8")
    assert licence.startswith("IPAフォントライセンスv1.0\n")
    for heading in (
        "第1条",
        "第２条",
        "第３条",
        "第４条",
        "第５条",
        "IPA Font License Agreement v1.0",
    ):
        assert heading in licence, heading
    for article in range(1, 6):
        assert f"Article {article} (" in licence
    assert licence.rstrip().endswith("2.This Agreement shall be construed under the laws of Japan.")
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = package_data["tool"]["setuptools"]["package-data"]["mailbot"]
    assert {"fonts/ipaexg.ttf", "fonts/IPA_Font_License_Agreement_v1.0.txt"} <= set(shipped)


def test_the_shipped_font_is_the_last_resort_after_the_listed_ones(tmp_path: Path):
    """A deployment folder made before the font shipped lists only system fonts in its own
    rules/operator.toml; none is installed, and the notice still has its font."""
    assert font_path("ipaexg.ttf") == FONTS_DIR / "ipaexg.ttf"
    assert font_path("/usr/share/fonts/x.ttf") == Path("/usr/share/fonts/x.ttf")
    missing = str(tmp_path / "no-such-font.ttf")
    assert register_font((missing,)) == str(FONTS_DIR / SHIPPED_FONT)
    assert register_font(("ipaexg.ttf",)) == str(FONTS_DIR / SHIPPED_FONT)


def without_system_fonts(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Runs `script` in a mount namespace where /usr/share/fonts (and the other font folders)
    are empty, as on a machine where no font package was ever installed."""
    empty = cwd / "no-fonts"
    empty.mkdir()
    hide = "".join(
        f"mount --bind {empty} {folder} && "
        for folder in ("/usr/share/fonts", "/usr/local/share/fonts")
        if Path(folder).is_dir()
    )
    return subprocess.run(
        ["unshare", "--mount", "--", "sh", "-ec", f"{hide}{script}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "MAILBOT_NOW"},
        timeout=300,
    )


def _can_hide_fonts(tmp_path: Path) -> str | None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return "hiding /usr/share/fonts needs root and unshare(1)"
    probe = without_system_fonts("true", tmp_path)
    if probe.returncode != 0:
        return f"unshare --mount refused here: {probe.stderr.strip()}"
    shutil.rmtree(tmp_path / "no-fonts")
    return None


def test_the_notice_is_printed_with_no_system_font_visible(tmp_path: Path):
    why = _can_hide_fonts(tmp_path)
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} — and CI=true, so this is an error, not a skip")
        pytest.skip(why)
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is needed to read the notice back")
    (tmp_path / "sources.csv").write_text(SOURCES_CSV, encoding="utf-8-sig")
    mailbot = f"{MAILBOT} --now 2026-11-30T10:00"
    done = without_system_fonts(
        'test -z "$(find /usr/share/fonts -type f)" && '
        f"{mailbot} sources import sources.csv && "
        f"{mailbot} assess supply-start L0000000001 --from-fy 2027 --to-fy 2030 "
        "--changed-on 2024/06/10 && "
        f"{mailbot} run --once && {mailbot} doctor --offline",
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "notice font" in done.stdout and str(FONTS_DIR / SHIPPED_FONT) in done.stdout
    [notice] = [
        message_from_bytes(path.read_bytes())
        for path in (tmp_path / "data" / "outbox" / "new").iterdir()
        if b"application/pdf" in path.read_bytes()
    ]
    [pdf] = [p for p in notice.walk() if p.get_content_type() == "application/pdf"]
    (tmp_path / "notice.pdf").write_bytes(pdf.get_payload(decode=True))
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "notice.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for expected in ("アセスメント結果通知書", "株式会社髙橋電力", "不合格", "5営業日以内"):
        assert expected in text, expected
    fonts = subprocess.run(
        ["pdffonts", str(tmp_path / "notice.pdf")], capture_output=True, text=True, check=True
    ).stdout
    assert any("IPAexGothic" in line and " yes yes " in line for line in fonts.splitlines())
