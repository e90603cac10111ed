"""mailbot.mail.parse against Zammad's parser test mails, field by field.

Zammad (a helpdesk) keeps ~100 real-world mails with the subject, sender, display name, body
and attachment names its parser reads from each (`test/data/mail/*.box` + `*.yml`). Their
licence is not ours, so the corpus is never committed: fetch it into a cache folder and point
`MAILBOT_ZAMMAD_CORPUS` at its `test/data/mail` (default
`~/.cache/mailbot/zammad/test/data/mail`). Needs PyYAML (the `test` extra).

Run: .venv/bin/python bench/zammad_corpus.py [--all] [--json bench/results/zammad_corpus.json]

Comparison rules (one per field; `tests/data/zammad_differences.toml` lists the mails where
mailbot deliberately reads a field differently, with the reason):
- subject: whitespace runs folded to one space, ends stripped.
- sender: the address, case-insensitively (one read only below a broken header line counts:
  mailbot reads it but never trusts it). name: the display name, whitespace folded.
- body: Zammad keeps sanitised HTML for HTML mail; both sides go through mailbot's
  html_to_text, then the words (each kana or kanji its own word) are compared as multisets: a match when at least
  95 % of Zammad's words are in mailbot's body. mailbot may hold more (it shows forwarded mails,
  delivery reports and text parts Zammad files as attachments inline). Zammad's "no visible
  content" placeholder means an empty body.
- attachments: the names as multisets, leaving out Zammad's own `message.html` copy of the HTML
  body and the message/* parts (forwarded mails and delivery reports), which mailbot shows
  inline in the body instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailbot.mail.parse import WORD, html_to_text, parse  # noqa: E402

FIELDS = ("subject", "sender", "name", "body", "attachments")
DIFFERENCES = ROOT / "tests" / "data" / "zammad_differences.toml"
DEFAULT_CORPUS = Path.home() / ".cache" / "mailbot" / "zammad" / "test" / "data" / "mail"
NO_CONTENT = "no visible content"
BODY_SHARE = 0.95


def corpus_dir() -> Path:
    return Path(os.environ.get("MAILBOT_ZAMMAD_CORPUS") or DEFAULT_CORPUS).expanduser()


def _load_yaml(path: Path) -> dict:
    import yaml

    class Loader(yaml.SafeLoader):
        """Zammad's files tag every mapping with a Ruby class: read them as plain dicts."""

    def construct(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> object:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", construct)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)


def _fold(text: str | None) -> str:
    return " ".join((text or "").split())


def _words(text: str) -> Counter[str]:
    return Counter(WORD.findall(text.lower()))


def body_matches(expected: str, expected_type: str, got: str) -> bool:
    if expected.strip() == NO_CONTENT:
        return not got.strip()
    want = _words(html_to_text(expected) if expected_type == "text/html" else expected)
    have = _words(got)
    if not want and not have:
        return True
    return sum((want & have).values()) >= BODY_SHARE * sum(want.values())


def _zammad_attachments(expected: dict) -> list[str]:
    names = []
    for attachment in expected.get("attachments") or []:
        prefs = attachment.get("preferences") or {}
        ctype = str(prefs.get("Content-Type") or "").lower()
        if attachment.get("filename") == "message.html" and not ctype:
            continue
        if str(ctype or prefs.get("Mime-Type") or "").lower().startswith("message/"):
            continue
        names.append(str(attachment.get("filename")))
    return sorted(names)


@dataclass
class Row:
    mail: str
    matches: dict[str, bool] = field(default_factory=dict)
    ours: dict[str, object] = field(default_factory=dict)
    zammad: dict[str, object] = field(default_factory=dict)
    replacement_chars: bool = False
    zammad_replacement_chars: bool = False


def compare(box: Path) -> Row:
    expected = _load_yaml(box.with_suffix(".yml"))
    mail = parse(box.read_bytes())
    ours_attachments = sorted(
        a.filename for a in mail.attachments if not a.content_type.startswith("message/")
    )
    zammad = {
        "subject": _fold(expected.get("subject")),
        "sender": str(expected.get("from_email") or "").lower(),
        "name": _fold(expected.get("from_display_name")),
        "body": str(expected.get("body") or ""),
        "attachments": _zammad_attachments(expected),
    }
    ours = {
        "subject": _fold(mail.subject),
        "sender": mail.from_addr or mail.claimed_sender,
        "name": _fold(mail.from_name),
        "body": mail.text,
        "attachments": ours_attachments,
    }
    row = Row(box.stem, ours=ours, zammad=zammad)
    for name in ("subject", "sender", "name", "attachments"):
        row.matches[name] = ours[name] == zammad[name]
    row.matches["body"] = body_matches(zammad["body"], str(expected.get("content_type")), mail.text)
    visible = (mail.subject, mail.from_name, mail.text, *ours_attachments)
    row.replacement_chars = any("\ufffd" in str(v) for v in visible)
    zammad_visible = (zammad["subject"], zammad["name"], zammad["body"], *zammad["attachments"])
    row.zammad_replacement_chars = any("\ufffd" in str(v) for v in zammad_visible)
    return row


def deliberate() -> dict[str, dict[str, str]]:
    """{mail: {field: why}} from tests/data/zammad_differences.toml."""
    table = tomllib.loads(DIFFERENCES.read_text(encoding="utf-8"))
    found: dict[str, dict[str, str]] = {}
    for entry in table.get("difference", []):
        found.setdefault(entry["mail"], {})[entry["field"]] = entry["why"]
    return found


def run(folder: Path) -> list[Row]:
    return [compare(box) for box in sorted(folder.glob("*.box"))]


def summary(rows: list[Row], known: dict[str, dict[str, str]]) -> dict[str, dict[str, int]]:
    figures: dict[str, dict[str, int]] = {}
    for name in FIELDS:
        matched = sum(row.matches[name] for row in rows)
        allowed = sum(
            1 for row in rows if not row.matches[name] and name in known.get(row.mail, {})
        )
        figures[name] = {"match": matched, "deliberate": allowed, "of": len(rows)}
    figures["replacement_chars_where_zammad_has_none"] = {
        "mails": sum(r.replacement_chars and not r.zammad_replacement_chars for r in rows)
    }
    figures["no_sender_where_zammad_has_one"] = {
        "mails": sum(not r.ours["sender"] and bool(r.zammad["sender"]) for r in rows)
    }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all", action="store_true", help="show every mismatch, also deliberate")
    parser.add_argument("--json", type=Path, help="write the figures and per-mail table here")
    args = parser.parse_args()
    folder = corpus_dir()
    if not folder.is_dir():
        print(f"no corpus at {folder}: set MAILBOT_ZAMMAD_CORPUS", file=sys.stderr)
        return 2
    rows = run(folder)
    known = deliberate()
    for row in rows:
        for name in FIELDS:
            if row.matches[name] or (name in known.get(row.mail, {}) and not args.all):
                continue
            mark = "deliberate" if name in known.get(row.mail, {}) else "MISMATCH"
            ours, theirs = row.ours[name], row.zammad[name]
            if name == "body":
                ours, theirs = str(ours)[:160], str(theirs)[:160]
            print(f"{row.mail:48} {name:11} {mark}\n    ours:   {ours!r}\n    zammad: {theirs!r}")
    figures = summary(rows, known)
    print()
    for name in FIELDS:
        f = figures[name]
        print(f"{name:11} {f['match']:3}/{f['of']}  (+{f['deliberate']} deliberate differences)")
    for key in ("replacement_chars_where_zammad_has_none", "no_sender_where_zammad_has_one"):
        print(f"{key}: {figures[key]['mails']}")
    if args.json:
        table = [{"mail": r.mail, **{k: r.matches[k] for k in FIELDS}} for r in rows]
        args.json.write_text(
            json.dumps({"figures": figures, "mails": table}, indent=1) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
