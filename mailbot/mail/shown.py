"""What staff are shown of a received mail beside its body text: who sent it, to whom, the
subject, whether it was HTML, and each attachment by name, size and type.

Kept when the mail is processed (`mail_views.shown`, schema step 19) so that a case
page and `mailbot case` read a few hundred bytes per mail instead of parsing the raw mail on
every view: eight 20 MB mails on one thread made each view of that case 3.5 s and 249 MB.
"""

from __future__ import annotations

import json
from typing import Any

from mailbot.mail import Mail


def shown_of(mail: Mail) -> str:
    """The JSON kept in `mail_views.shown` for `mail`."""
    return json.dumps(
        {
            "subject": mail.subject,
            "from": f"{mail.from_name} <{mail.from_addr}>" if mail.from_name else mail.from_addr,
            "from_addr": mail.from_addr,
            "to": ", ".join(mail.to),
            "html": mail.content_type == "text/html",
            "files": [[a.filename, a.size, a.content_type] for a in mail.attachments],
        },
        ensure_ascii=False,
    )


def read_shown(text: str) -> dict[str, Any]:
    """`mail_views.shown` back as a dict."""
    found = json.loads(text)
    return {
        "subject": found.get("subject", ""),
        "from": found.get("from", ""),
        "from_addr": found.get("from_addr", ""),
        "to": found.get("to", ""),
        "html": bool(found.get("html")),
        "files": [tuple(f) for f in found.get("files", [])],
    }
