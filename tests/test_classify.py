"""Subject and thread classification (SPEC §1), rows quoting the seeds' subjects."""

import pytest

from mailbot.config import RULES_DIR
from mailbot.routing import ThreadHit, classify, load_routing

ROUTING = load_routing(RULES_DIR)


@pytest.mark.parametrize(
    ("subject", "mailbox", "procedure", "code", "wrong"),
    [
        ("【容量市場向け事業者コード申請】", "code", "operator_code_application", None, False),
        ("Re: 【容量市場向け事業者コード申請】", "code", "operator_code_application", None, False),
        (
            "ＲＥ：ＦＷ：【容量市場向け事業者コード申請】",
            "code",
            "operator_code_application",
            None,
            False,
        ),
        ("転送: [容量市場向け事業者コード申請]", "code", "operator_code_application", None, False),
        (
            "【容量市場向け事業者コード申請】 ㈱髙橋電力",
            "code",
            "operator_code_application",
            None,
            False,
        ),
        (
            "【容量市場向けアグリゲータ用系統コード申請】",
            "code",
            "grid_code_application",
            None,
            False,
        ),
        (
            "【容量市場向け アグリゲータ用 系統コード申請】",
            "code",
            "grid_code_application",
            None,
            False,
        ),
        (
            "【長期脱炭素電源オークション/ABCD】供給力提供開始時期の遵守に係るアセスメント結果に対する異議申立",
            "youryou_rikuase_long",
            "supply_start_objection",
            "ABCD",
            False,
        ),
        (
            "【長期脱炭素電源オークション／ａｂｃｄ】脱炭素化ロードマップの遵守に係るアセスメント結果に対する異議申立",
            "youryou_rikuase_long",
            "roadmap_objection",
            "ABCD",
            False,
        ),
        (
            "返信：【長期脱炭素電源オークション/1234】脱炭素化ロードマップの改訂有無の回答",
            "youryou_rikuase_long",
            "roadmap_revision_reply",
            "1234",
            False,
        ),
        (
            "【容量市場向け事業者コード申請】",
            "youryou_rikuase_long",
            "operator_code_application",
            None,
            True,
        ),
        ("お問い合わせ", "code", "unrecognized", None, False),
        (
            "【長期脱炭素電源オークション/ABCDE】脱炭素化ロードマップの改訂有無の回答",
            "youryou_rikuase_long",
            "unrecognized",
            None,
            False,
        ),
    ],
)
def test_subjects(subject, mailbox, procedure, code, wrong):
    result = classify(ROUTING, subject, mailbox, None)
    assert result.procedure == procedure
    assert result.subject_code == code
    assert result.wrong_mailbox is wrong


def test_resubmission_joins_the_case_of_the_same_procedure():
    thread = ThreadHit(case_id=7, procedure="operator_code_application", outbound_kind="correction")
    result = classify(ROUTING, "Re: 【容量市場向け事業者コード申請】", "code", thread)
    assert (result.procedure, result.case_id) == ("operator_code_application", 7)


def test_other_procedure_in_a_thread_opens_a_new_case():
    thread = ThreadHit(
        case_id=7, procedure="operator_code_application", outbound_kind="code_notice"
    )
    result = classify(ROUTING, "Re: 【容量市場向けアグリゲータ用系統コード申請】", "code", thread)
    assert (result.procedure, result.case_id) == ("grid_code_application", None)


def test_mismatch_answer_is_matched_by_thread_only():
    thread = ThreadHit(case_id=9, procedure="mismatch_inquiry", outbound_kind="mismatch_inquiry")
    result = classify(ROUTING, "Re: 不一致に係るお問い合わせ", "youryou_rikuase_long", thread)
    assert (result.procedure, result.case_id) == ("mismatch_reply", 9)
    assert classify(
        ROUTING, "Re: 不一致に係るお問い合わせ", "youryou_rikuase_long", None
    ).procedure == ("unrecognized")


def test_thread_without_subject_match_continues_the_case():
    thread = ThreadHit(case_id=3, procedure="grid_code_application", outbound_kind="correction")
    result = classify(ROUTING, "修正版を送ります", "code", thread)
    assert (result.procedure, result.case_id) == ("grid_code_application", 3)
