"""The 脱炭素化ロードマップ rules of seed 004 §3.1: the file name (表3-2) and the sheet (図3-3).

Pure: takes names, source facts and workbook grids; returns Problems. The wording and the
keywords live in `rules/roadmap.toml`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mailbot.errors import ConfigError
from mailbot.forms.workbook import Grid, label_key, label_stem
from mailbot.outcome import Problem
from mailbot.rulefile import RulesFile
from mailbot.text import nfkc

FILE_LABEL = "改訂後の脱炭素化ロードマップ"
# A column heading is a short cell: 「年度 (応札年度)」 filled in as 「2023年度(応札年度)」 (図3-3).
COLUMN_HEADING_MAX = 30
# Characters a premise sentence must carry besides keywords and punctuation to be an item.
PREMISE_CONTENT_MIN = 4
_HEADING = re.compile(r"[<＜]\s*前提条件\s*[>＞]")
_SENTENCE = re.compile(r"[\n。．・／;；]")
_FILLER = re.compile(r"[\s、，,:：()（）「」『』\[\]【】<>＜＞\-・/]")
# An item's own wording found in the text stands for the item as one character of the private
# use area (U+E000 + the item's index): it names the item without being content.
_ITEM_MARK = 0xE000
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


@dataclass(frozen=True)
class RoadmapRules:
    revised_statement: str
    unrevised_statement: str
    file_code: str
    max_file_name_length: int
    columns: tuple[str, ...]
    rows: tuple[str, ...]
    premises: tuple[tuple[str, tuple[str, ...]], ...]
    premise_wordings: tuple[tuple[str, int], ...]
    reminder_business_days_before_deadline: int
    mismatch_reminder_business_days: int


def load_roadmap_rules(path: Path) -> RoadmapRules:
    try:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
        return RoadmapRules(
            revised_statement=d["revised_statement"],
            unrevised_statement=d["unrevised_statement"],
            file_code=d["file_code"],
            max_file_name_length=int(d["max_file_name_length"]),
            columns=tuple(d["columns"]),
            rows=tuple(d["rows"]),
            premises=tuple((p["item"], tuple(p["keywords"])) for p in d["premises"]),
            premise_wordings=tuple(
                (w, i)
                for i, p in enumerate(d["premises"])
                for w in (p.get("as_written"), p["item"])
                if w
            ),
            reminder_business_days_before_deadline=int(d["reminder_business_days_before_deadline"]),
            mismatch_reminder_business_days=int(d["mismatch_reminder_business_days"]),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(str(path), f"not valid roadmap rules: {exc}") from exc


def expected_file_name(
    rules: RoadmapRules, auction_year: int, code: str, source_name: str, revision: int
) -> str:
    """L2023_ABCD_△△発電所_D3_R1, the source name shortened when the whole passes the limit."""
    head, tail = f"L{auction_year}_{code}_", f"_{rules.file_code}_R{revision}"
    room = rules.max_file_name_length - len(head) - len(tail)
    return head + source_name[: max(room, 1)] + tail


@dataclass(frozen=True)
class FileNameCheck:
    """What 表3-2 says of one file name: `problems` for the participant, `remarks` for staff
    only, and the 改訂回数 the name carries (None when it does not parse)."""

    problems: list[Problem]
    remarks: list[Problem]
    revision: int | None


def file_name_problems(
    rules: RoadmapRules,
    filename: str,
    auction_year: int,
    code: str,
    source_name: str,
    revision: int,
    *,
    revision_known: bool = True,
) -> FileNameCheck:
    """表3-2: 「電源等の名称を設定してください」, 備考 「ファイル名が50文字を超える場合は短縮」 —
    the seed says when to shorten, not how, so any shortening (a truncation, a 略称) of a name
    too long to fit is accepted; one that is not a truncation is a remark for staff to match it
    to the source. A name shortened though it fitted, but still made of the registered name's
    characters in order, is a remark too: only a name that is not the source's is corrected.
    With `revision_known` False (no 改訂回数 on record for the source) a higher R than the
    next one is a remark, not a correction: the desk cannot tell it is wrong."""
    stem = re.sub(r"\s+", "", nfkc(filename.rsplit(".", 1)[0]))
    expected = expected_file_name(rules, auction_year, code, nfkc(source_name), revision)
    pattern = re.compile(
        rf"^L(?P<year>\d{{4}})_(?P<code>[0-9A-Z]{{4}})_(?P<name>.+)_{rules.file_code}_R(?P<rev>\d+)$"
    )
    match = pattern.match(stem)
    example = f"（正しいファイル名の例：{expected}.xlsx）"
    if match is None:
        return FileNameCheck(
            [
                Problem(
                    "ファイル名",
                    "ファイル名が命名規則（オークション実施年度「L＋応札年度（西暦4桁）」_事業者コード_"
                    f"電源等の名称_D3_改訂回数「R＋回数」）に沿っておりません{example}。",
                )
            ],
            [],
            None,
        )
    p: list[Problem] = []
    remarks: list[Problem] = []
    if int(match["year"]) != auction_year:
        p.append(
            Problem(
                "ファイル名",
                f"ファイル名のオークション実施年度（L{match['year']}）が応札年度 {auction_year} と一致しておりません{example}。",
            )
        )
    if match["code"] != code:
        p.append(
            Problem(
                "ファイル名",
                f"ファイル名の事業者コード（{match['code']}）が {code} と一致しておりません{example}。",
            )
        )
    name = match["name"]
    full = re.sub(r"\s+", "", nfkc(source_name))
    fits = len(stem) - len(name) + len(full) <= rules.max_file_name_length
    if name != full and not (full.startswith(name) and not fits):
        if not fits or shortens(name, full):
            needless = f"（短縮しなくても{rules.max_file_name_length}文字以内）" if fits else ""
            remarks.append(
                Problem(
                    "ファイル名",
                    f"ファイル名の電源等の名称「{name}」は登録名「{source_name}」を短縮したもの"
                    f"です{needless}。同じ電源かご確認ください。",
                )
            )
        else:
            p.append(
                Problem(
                    "ファイル名",
                    f"ファイル名の電源等の名称（{name}）が登録されている電源等の名称（{source_name}）と一致しておりません{example}。",
                )
            )
    if len(stem) > rules.max_file_name_length:
        p.append(
            Problem(
                "ファイル名",
                f"ファイル名が{rules.max_file_name_length}文字を超えております。電源等の名称をご短縮ください{example}。",
            )
        )
    found = int(match["rev"])
    if found != revision:
        if not revision_known and found > revision:
            remarks.append(
                Problem(
                    "ファイル名",
                    f"改訂回数 R{found} のまま受け付けました（この電源の改訂回数の記録がなく、"
                    f"初回の改訂であれば R{revision}）。",
                )
            )
        else:
            p.append(
                Problem(
                    "ファイル名",
                    f"ファイル名末尾の改訂回数（R{found}）は R{revision} とご設定ください{example}。",
                )
            )
    return FileNameCheck(p, remarks, found)


def shortens(name: str, full: str) -> bool:
    """`name` is `full` with characters left out (a 略称 like 髙橋火力1号 of 髙橋火力発電所1号機)."""
    rest = iter(full)
    return bool(name) and all(ch in rest for ch in name)


def sheet_problems(rules: RoadmapRules, grids: list[Grid]) -> list[Problem]:
    """The 図3-3 layout: column and row headings, and the five minimum 前提条件 items."""
    best: tuple[int, Grid] | None = None
    for grid in grids:
        stems = {label_stem(v) for v in grid.cells.values() if isinstance(v, str)}
        stems |= {s.strip("<>＜＞") for s in stems}
        score = sum(nfkc(h) in stems for h in (*rules.columns, *rules.rows))
        if best is None or score > best[0]:
            best = (score, grid)
    if best is None:
        return [Problem(FILE_LABEL, "脱炭素化ロードマップのシートが見当たりません。")]
    grid = best[1]
    stems = {label_stem(v).strip("<>＜＞") for v in grid.cells.values() if isinstance(v, str)}
    headings = [label_key(str(v)) for v in grid.cells.values() if len(str(v)) <= COLUMN_HEADING_MAX]
    p: list[Problem] = []
    missing_cols = [
        h
        for h in rules.columns
        if nfkc(h) not in stems and not any(label_key(h) in cell for cell in headings)
    ]
    if missing_cols:
        p.append(
            Problem(
                FILE_LABEL,
                f"指定様式の列（{'、'.join(missing_cols)}）が見当たりません。指定様式をご使用ください。",
            )
        )
    missing_rows = [h for h in rules.rows if not _row_cells(grid, h)]
    if missing_rows:
        p.append(
            Problem(
                FILE_LABEL,
                f"指定様式の行（{'、'.join('<' + r + '>' for r in missing_rows)}）が見当たりません。指定様式をご使用ください。",
            )
        )
    uncovered = uncovered_premises(rules, _row_text(grid, "前提条件"))
    if "前提条件" not in missing_rows and uncovered:
        p.append(
            Problem(
                "前提条件",
                "前提条件に次の項目の記載が見当たりません（最低限記載が必要な項目）："
                + "／".join(uncovered),
            )
        )
    return p


def uncovered_premises(rules: RoadmapRules, text: str) -> list[str]:
    """The 図3-3 minimum items with no content; returns their names.

    An item is covered by a sentence that names it — one of its keywords, or its own wording
    as the form's 注 lists it, used as a label (「・前提条件：国内水素サプライチェーンの整備」) —
    and says something more than keywords and wordings. The ‹前提条件› heading, the form's own
    注 and the items' wording copied back alone are not content. The wording names its item
    rather than vanishing: the fifth item's wording 「前提条件」 is all that names it in a
    sentence written the seed's way."""
    text = _HEADING.sub("\n", _PRIVATE_USE.sub("", nfkc(text)))
    for wording, index in sorted(rules.premise_wordings, key=lambda w: len(w[0]), reverse=True):
        text = text.replace(nfkc(wording), chr(_ITEM_MARK + index))
    every_keyword = sorted({nfkc(w) for _item, words in rules.premises for w in words}, key=len)
    sentences = [s for s in _SENTENCE.split(text) if "最低限記載" not in s]

    def says_more(sentence: str) -> bool:
        rest = _PRIVATE_USE.sub("", sentence)
        for word in reversed(every_keyword):
            rest = rest.replace(word, "")
        return len(_FILLER.sub("", rest)) >= PREMISE_CONTENT_MIN

    def names(sentence: str, index: int, words: tuple[str, ...]) -> bool:
        return chr(_ITEM_MARK + index) in sentence or any(nfkc(w) in sentence for w in words)

    return [
        item
        for index, (item, words) in enumerate(rules.premises)
        if not any(says_more(s) for s in sentences if names(s, index, words))
    ]


def _row_cells(grid: Grid, heading: str) -> list[int]:
    """Rows whose heading cell is `<電源>` (the form writes the content after it in the same
    cell) or the bare heading."""
    key = label_key(heading)
    return [
        r
        for (r, _c), v in grid.cells.items()
        if isinstance(v, str)
        and (label_key(v).startswith(f"<{key}>") or label_stem(v).strip("<>") == key)
    ]


def _row_text(grid: Grid, heading: str) -> str:
    """Everything written on the heading's row and below it (the 注 text excluded)."""
    rows = _row_cells(grid, heading)
    if not rows:
        return ""
    start = min(rows)
    parts = [
        str(v)
        for (r, _c), v in sorted(grid.cells.items())
        if r >= start and not str(v).lstrip().startswith(("注", "注)"))
    ]
    return nfkc("".join(parts))


ROADMAP_RULES = RulesFile("roadmap.toml", load_roadmap_rules)
