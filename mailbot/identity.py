"""Who the desk says it is: the operator's block on notices and the window (窓口) each
mailbox's mail is signed as, both from rules/operator.toml (data staff may edit).

Seed 000 names the window of code@ 「電力広域的運営推進機関 運用部 マスター担当」; seed 004's
notices name 企画部 and its telephone number. A deployment's operator.toml written before
`[windows]` existed signs with the shipped file's windows, the seeds' own words.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mailbot.config import RULES_DIR
from mailbot.errors import ConfigError
from mailbot.rulefile import RulesFile


@dataclass(frozen=True)
class Window:
    """How one mailbox's mail names the desk: `name` in the greeting (「…でございます。」),
    `signature` the lines of the signature block above the mailbox's address."""

    name: str
    signature: tuple[str, ...]


@dataclass(frozen=True)
class OperatorBlock:
    name: str
    postal_code: str
    address: str
    department: str
    phone: str
    email: str
    fonts: tuple[str, ...]
    windows: dict[str, Window] | None = None

    def window(self, mailbox_local: str) -> Window:
        """The window `mailbox_local` (code, youryou_rikuase_long) signs as; the operator's
        name and address block when the file names none for it."""
        found = (self.windows or {}).get(mailbox_local)
        if found is not None:
            return found
        return Window(self.name, (self.name, f"〒{self.postal_code} {self.address}"))


def load_operator(rules_dir: Path, default_email: str) -> OperatorBlock:
    """The operator's block of rules/operator.toml; its mail address defaults to the desk's."""
    block = OPERATOR_RULES.load(rules_dir)
    return block if block.email else replace(block, email=default_email)


def load_window(rules_dir: Path, mailbox_local: str) -> Window:
    """The window `mailbox_local`'s mail is signed as (`OperatorBlock.window`)."""
    block = OPERATOR_RULES.load(rules_dir)
    if block.windows is None and rules_dir != RULES_DIR:
        block = replace(block, windows=OPERATOR_RULES.load(RULES_DIR).windows)
    return block.window(mailbox_local)


def _windows(raw: Any, path: Path) -> dict[str, Window] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: windows", "must be a table of mailboxes")
    out = {}
    for local, table in raw.items():
        where = f"{path}: windows.{local}"
        name = table.get("name") if isinstance(table, dict) else None
        lines = table.get("signature", []) if isinstance(table, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(where, "needs name = the window's name")
        if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
            raise ConfigError(where, "signature must be a list of lines")
        out[local] = Window(name.strip(), tuple(lines))
    return out


def _parse_operator(path: Path) -> OperatorBlock:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        op = data["operator"]
        return OperatorBlock(
            name=op["name"],
            postal_code=op["postal_code"],
            address=op["address"],
            department=op["department"],
            phone=op["phone"],
            email=op.get("email") or "",
            fonts=tuple(data.get("notice", {}).get("fonts", [])),
            windows=_windows(data.get("windows"), path),
        )
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from exc
    except (KeyError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), f"missing or malformed: {exc}") from exc


OPERATOR_RULES = RulesFile("operator.toml", _parse_operator)
