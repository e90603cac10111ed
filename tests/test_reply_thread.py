"""Issue 14: a reply staff or a job plans answers in the participant's own thread, read from
what the store kept when the mail was processed — never by parsing the stored raw mail again.
Databases from before schema step 9 are filled in by the migration."""

from __future__ import annotations

from email import message_from_bytes

from mailbot.context import Context
from mailbot.desk.decisions import decide
from mailbot.outbox.planner import case_thread
from mailbot.store import MIGRATIONS, Store
from mailbot.store.sqlite import _thread_columns
from tests.support.desk import outbox
from tests.test_trust import CORP, application, desk, submit  # noqa: F401

EARLIER = "<earlier@takahashi-denryoku.co.jp>"
OWN = "<own@takahashi-denryoku.co.jp>"


def _applied(ctx: Context) -> dict:
    return submit(ctx, application(message_id=OWN, references=(EARLIER,), in_reply_to=EARLIER))


def test_a_decision_answers_in_the_thread_kept_when_the_mail_was_processed(
    desk: Context,  # noqa: F811
):
    case = _applied(desk)
    desk.store.conn.execute("UPDATE messages SET raw = x'' WHERE case_id = ?", (case["id"],))
    thread = case_thread(desk, case["id"])
    assert (thread.message_id, thread.references) == (OWN, (EARLIER,))
    assert thread.recipient == CORP and thread.recipient_name
    decide(desk, case["id"], "issue-code", "5678", by="staff")
    [issued] = [m for m in outbox(desk) if m["kind"] != "receipt"]
    sent = message_from_bytes(issued["raw"])
    assert sent["In-Reply-To"] == OWN
    assert sent["References"].split() == [EARLIER, OWN]


def test_migration_nine_fills_in_the_thread_of_mails_processed_before_it(
    desk: Context,  # noqa: F811
):
    case = _applied(desk)
    path = desk.store.path
    conn = desk.store.conn
    conn.execute("DROP INDEX messages_waiting_by_key")  # steps 11 to 14, after this one
    conn.execute("DROP INDEX operators_name_key")
    conn.execute("DROP INDEX events_kind_at")
    conn.execute("DROP TABLE journal_folds")  # step 14
    conn.execute("DROP TABLE grid_codes")  # step 15
    conn.execute("ALTER TABLE operators DROP COLUMN issued_grid_codes")
    conn.execute("DROP TABLE reply_drafts")  # step 17 (16 refolds the search index)
    conn.execute("DROP TABLE case_viewers")
    conn.execute("DROP TABLE mailbox_status")  # step 18
    conn.execute("ALTER TABLE operators DROP COLUMN name_key")
    conn.execute("DROP TABLE mail_views")  # step 19
    for column in ("thread_references", "sender_name", "order_key", "answers_thread"):
        conn.execute(f"ALTER TABLE messages DROP COLUMN {column}")
    conn.execute(f"PRAGMA user_version = {MIGRATIONS.index(_thread_columns)}")
    reopened = Store(path)
    assert reopened.schema_version == len(MIGRATIONS)
    row = reopened.latest_done_message(case["id"])
    assert row["references"] == [EARLIER] and row["message_id"] == OWN
    assert row["sender_name"] == "山田 太郎"
    reopened.close()
