"""The django-helpdesk side of `bench/peer.py`, run by bench/.peer-venv's Python (Django and
django-helpdesk live only there):

    peer_helpdesk.py setup PORT USER PASSWORD   # migrate, one IMAP queue on 127.0.0.1:PORT
    peer_helpdesk.py count                      # tickets, follow-ups, attachments as JSON

The timed step is `django-admin get_email` itself, started by peer.py as a process of its own,
as mailbot's `run --once` is."""

import json
import os
import sys

import django
from django.core.management import call_command


def setup(port: int, user: str, password: str) -> None:
    from helpdesk.models import Queue

    call_command("migrate", verbosity=0)
    Queue.objects.create(
        title="事業者コード申請",
        slug="code",
        email_address="code@occto.or.jp",
        allow_email_submission=True,
        email_box_type="imap",
        email_box_host="127.0.0.1",
        email_box_port=port,
        email_box_ssl=False,
        email_box_user=user,
        email_box_pass=password,
        email_box_imap_folder="INBOX",
        email_box_interval=0,
        logging_type="none",
    )


def count() -> dict:
    from helpdesk.models import FollowUp, FollowUpAttachment, Ticket

    return {
        "tickets": Ticket.objects.count(),
        "followups": FollowUp.objects.count(),
        "attachments": FollowUpAttachment.objects.count(),
        "xlsx_attachments": FollowUpAttachment.objects.filter(filename__endswith=".xlsx").count(),
    }


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer_settings")
    django.setup()
    if sys.argv[1] == "setup":
        setup(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        print(json.dumps(count()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
