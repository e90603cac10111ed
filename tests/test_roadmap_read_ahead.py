"""A revised roadmap the read-ahead worker opened (inspected and read into grids) is checked
from those grids; the main process no longer inspects and reads it a second time (issue 17).
The case comes out the same either way, whatever the attachment."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.forms.workbook import FORM_RULES
from mailbot.forms.workbook import Limits as WorkbookLimits
from mailbot.intake.pipeline import process_batch
from mailbot.intake.readahead import prepare
from tests.support.desk import desk_with_operators, load_sources
from tests.support.forms import roadmap_workbook
from tests.support.jpmail import XLSX, build
from tests.support.servers import LONG

ANSWER = (
    "電力広域的運営推進機関 担当者様\n・改訂後の脱炭素化ロードマップを提出します。\n\n■対象となる電源\n"
    "・事業者コード：A1B2\n・事業者情報に登録している事業者名称および担当者名：株式会社髙橋電力　髙橋一郎\n"
    "・容量を提供する電源等の区分：安定電源\n・電源等識別番号：L0000000001\n"
    "・電源等の名称：髙橋火力発電所1号機\n・応札年度：2023年度\n"
)
NAME = "L2023_A1B2_髙橋火力発電所1号機_D3_R1.xlsx"
ATTACHMENTS = {
    "as figure 3-3 lays it out": (NAME, roadmap_workbook),
    "misnamed": ("roadmap.xlsx", roadmap_workbook),
    "not a workbook": (NAME, lambda: b"PK\x03\x04 broken"),
    "no roadmap sheet": (NAME, lambda: roadmap_workbook(columns=("a", "b"))),
}


def checked(tmp_path: Path, raw: bytes, read_ahead: bool) -> tuple:
    ctx = desk_with_operators(tmp_path)
    try:
        load_sources(ctx, tmp_path)
        ctx.store.save_raw(LONG, [("test:1", raw)], ctx.now())
        [stored] = ctx.store.pending_messages()
        names = tuple(f.names for f in FORM_RULES.load(ctx.config.rules_dir).forms.values())
        limits = WorkbookLimits(max_bytes=ctx.config.limits.max_attachment_bytes)
        mail = prepare(raw, ctx.config.limits.max_message_bytes, limits, names)
        assert mail is not None and mail.attachments[0].opened is not None
        [result] = process_batch(ctx, [stored], [mail] if read_ahead else [])
        case = ctx.store.case(result.case_id)
        return case["procedure"], case["status"], case["problems"], case["data"]
    finally:
        ctx.close()


@pytest.mark.parametrize("what", sorted(ATTACHMENTS))
def test_the_roadmap_read_ahead_is_checked_as_one_read_here(tmp_path: Path, what: str) -> None:
    name, data = ATTACHMENTS[what]
    raw = build(
        "【長期脱炭素電源オークション/A1B2】脱炭素化ロードマップの改訂有無の回答",
        ANSWER,
        from_addr="ichiro@takahashi-power.co.jp",
        to=LONG,
        attachments=[(name, data(), XLSX)],
    )
    here = checked(tmp_path / "here", raw, read_ahead=False)
    ahead = checked(tmp_path / "ahead", raw, read_ahead=True)
    assert here[0] == "roadmap_revision_reply"
    assert ahead == here
