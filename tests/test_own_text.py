"""The participant's own text (procedures/common.py `own_text`) stops at the first line that
opens a quoted original. Lines without a colon or a run of dashes skip the pattern (issue 17:
a long quoted history went through it line by line); where the text stops does not change."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.mail import Mail
from mailbot.procedures.common import _QUOTE_START, own_text

QUOTE_STARTS = (
    "-----Original Message-----",
    "--- 元のメッセージ ---",
    "From: 髙橋 <a@example.jp>",
    "差出人： 受付窓口",
    "On Tue, 24 Nov 2026 at 10:00, 受付 wrote:",
    "受付窓口 のメッセージ：",
    "2026年11月24日(火) 10:00 受付窓口 <code@example.jp>:",
)
OTHER = ("本文です。", "> 引用です", "  > From: 引用の中", "参加区分: 安定電源", "---", "wrote", "")


def by_pattern_alone(text: str) -> str:
    lines: list[str] = []
    for line in text.split("\n"):
        if _QUOTE_START.match(line):
            break
        if line.lstrip().startswith(">"):
            continue
        lines.append(line)
    return "\n".join(lines)


def mail(text: str) -> Mail:
    return Mail(
        message_id=None, subject="", from_addr="a@example.jp", from_name="", to=(), text=text
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(QUOTE_STARTS + OTHER) | st.text(max_size=30), max_size=12))
def test_own_text_stops_where_the_pattern_says(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert own_text(mail(text)) == by_pattern_alone(text)


def test_each_quote_start_ends_the_own_text() -> None:
    for start in QUOTE_STARTS:
        assert own_text(mail(f"申請します。\n{start}\n> 以前の本文")) == "申請します。"
