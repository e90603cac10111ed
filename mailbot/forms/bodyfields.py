"""Reading the labelled fields participants type into a mail body (■ headings, ・ items).

Participants copy the seed's template and fill it in many ways: `・事業者コード：ABCD`,
`事業者コード ABCD`, the value on the next line, full-width colons and digits. Pure functions;
the labels come from `rules/body_fields.toml`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mailbot.errors import ConfigError
from mailbot.rulefile import RulesFile
from mailbot.text import nfkc

_MARKERS = "■□◆◇●○・･-*•＊※>"
_SEPARATORS = ":：=＝ 　\t】」』)）"
_END = re.compile(r"^\s*(?:-{2,}|―{2,}|━{2,}|─{2,}|={2,}|以上\s*$)")


@dataclass(frozen=True)
class BodyField:
    key: str
    label: str
    aliases: tuple[str, ...] = ()
    multiline: bool = False

    @cached_property
    def spellings(self) -> tuple[str, ...]:
        """Normalised once per loaded rules file, not once per line of every body."""
        return tuple(_squash(s) for s in (self.label, *self.aliases))


_WHITESPACE = re.compile(r"\s+")


def _squash(text: str) -> str:
    return _WHITESPACE.sub("", nfkc(text))


def load_body_fields(path: Path) -> dict[str, tuple[BodyField, ...]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), str(exc)) from exc
    out: dict[str, tuple[BodyField, ...]] = {}
    for form, entries in data.items():
        try:
            out[form] = tuple(
                BodyField(
                    key=e["key"],
                    label=e["label"],
                    aliases=tuple(e.get("aliases", ())),
                    multiline=bool(e.get("multiline", False)),
                )
                for e in entries
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: {form}", f"each entry needs key and label ({exc})") from exc
    return out


def _strip_marker(line: str) -> tuple[bool, str]:
    text = line.strip()
    heading = text.startswith(("■", "□", "◆"))
    return heading, text.lstrip(_MARKERS + " 　\t")


def _match(rest: str, fields: tuple[BodyField, ...]) -> tuple[BodyField, str] | None:
    """The longest label the line starts with, and what follows it."""
    squashed = _squash(rest)
    best: tuple[int, BodyField] | None = None
    for field in fields:
        for spelling in field.spellings:
            if squashed.startswith(spelling) and (best is None or len(spelling) > best[0]):
                best = (len(spelling), field)
    if best is None:
        return None
    length, field = best
    consumed = 0
    for index, ch in enumerate(rest):
        if not ch.isspace():
            consumed += len(nfkc(ch))
        if consumed >= length:
            value = rest[index + 1 :]
            return field, value.lstrip(_SEPARATORS).strip()
    return field, ""


def extract(text: str, fields: tuple[BodyField, ...]) -> dict[str, str]:
    """Field key → value as written (the first occurrence wins; quoted `>` lines are skipped)."""
    lines = text.replace("\r\n", "\n").split("\n")
    found: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.lstrip().startswith(">"):
            continue
        _heading, rest = _strip_marker(line)
        hit = _match(rest, fields)
        if hit is None:
            continue
        field, value = hit
        if field.key in found:
            continue
        if field.multiline or not value:
            collected = [value] if value else []
            while index < len(lines):
                nxt = lines[index]
                is_heading, nrest = _strip_marker(nxt)
                if _END.match(nxt) or is_heading or (not field.multiline and _match(nrest, fields)):
                    break
                if not field.multiline and not nxt.strip():
                    if collected:
                        break
                    index += 1
                    continue
                collected.append(nxt.strip() if not field.multiline else nxt.rstrip())
                index += 1
                if not field.multiline:
                    break
            value = "\n".join(collected).strip()
        found[field.key] = value
    return found


def mentions(text: str, phrase: str) -> bool:
    """Whether the body says `phrase`, ignoring width, spaces and quoted lines."""
    body = "\n".join(ln for ln in text.split("\n") if not ln.lstrip().startswith(">"))
    return _squash(phrase) in _squash(body)


BODY_FIELDS = RulesFile("body_fields.toml", load_body_fields)
