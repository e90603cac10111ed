"""アセスメント結果通知書 as a PDF (seed 004 図2-6, 図3-4), with a Japanese TrueType font
embedded as a subset: reportlab's built-in CID fonts are not embedded and render blank on many
viewers, so a notice is never produced without a real font."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib.resources import files
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from mailbot.errors import ConfigError
from mailbot.identity import OperatorBlock

FONT = "MailbotJapanese"
FONTS_DIR = Path(str(files("mailbot") / "fonts"))
"""Fonts shipped in the package: IPAexGothic (ipaexg.ttf) with its licence, the IPA Font
License v1.0, which allows redistribution unchanged with the licence attached."""
SHIPPED_FONT = "ipaexg.ttf"


def font_path(entry: str) -> Path:
    """An entry of `notice.fonts`: an absolute path is a font on this machine; a bare name
    (`ipaexg.ttf`) is one shipped in the package's fonts/ folder."""
    path = Path(entry)
    return path if path.is_absolute() else FONTS_DIR / path


@cache
def register_font(candidates: tuple[str, ...]) -> str:
    """Registers the first of `candidates` that exists, else the font shipped with mailbot, and
    returns its path. Raises ConfigError when none is there (a package whose fonts/ folder was
    stripped). The shipped font is the last resort, so a fresh machine with no Japanese font
    installed (and a deployment folder whose rules/operator.toml lists only system fonts)
    still prints the notice."""
    tried = [font_path(c) for c in candidates]
    for path in [*tried, FONTS_DIR / SHIPPED_FONT]:
        if path.is_file():
            pdfmetrics.registerFont(TTFont(FONT, str(path)))
            return str(path)
    raise ConfigError(
        "rules/operator.toml: notice.fonts",
        "no Japanese TrueType font found (tried: "
        + ", ".join(str(p) for p in [*tried, FONTS_DIR / SHIPPED_FONT])
        + "); reinstall mailbot or list a font there",
    )


@dataclass(frozen=True)
class NoticeDocument:
    """What the seed's notice shows, in its order. `detail` rows are (label, value, …) tuples."""

    title: str
    number: str
    issued_on: date
    operator_code: str
    operator_name: str
    result_heading: str
    result: str
    source_rows: tuple[tuple[str, str], ...]
    detail_heading: str = ""
    detail: tuple[tuple[str, ...], ...] = ()
    notes: tuple[str, ...] = field(default=())


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("base", fontName=FONT, fontSize=10.5, leading=15)
    return {
        "base": base,
        "title": ParagraphStyle("title", parent=base, fontSize=15, leading=22, alignment=TA_CENTER),
        "right": ParagraphStyle("right", parent=base, alignment=TA_RIGHT),
        "heading": ParagraphStyle("heading", parent=base, fontSize=11.5, spaceBefore=8),
        "result": ParagraphStyle("result", parent=base, fontSize=16, leading=24, leftIndent=12),
        "small": ParagraphStyle("small", parent=base, fontSize=9, leading=13),
    }


def _grid(rows: list[list[str]], widths: list[float]) -> Table:
    table = Table(rows, colWidths=widths)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), FONT, 10),
                ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
                ("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#F2F2F2")),
                ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
            ]
        )
    )
    return table


def render_notice(doc: NoticeDocument, operator: OperatorBlock) -> bytes:
    register_font(operator.fonts)
    s = _styles()
    out = io.BytesIO()
    pdf = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"{doc.title} 通知No {doc.number}",
        author=operator.name,
        invariant=True,
    )
    issued = f"{doc.issued_on.year}年{doc.issued_on.month}月{doc.issued_on.day}日"
    story = [
        Paragraph(doc.title, s["title"]),
        Spacer(1, 4 * mm),
        Paragraph(f"通知No {doc.number}", s["right"]),
        Paragraph(f"通知日 {issued}", s["right"]),
        Spacer(1, 3 * mm),
        Paragraph(operator.name, s["right"]),
        Paragraph(f"〒{operator.postal_code} {operator.address}", s["right"]),
        Paragraph(f"問い合わせ先 部署 {operator.department}", s["right"]),
        Paragraph(f"電話番号：{operator.phone}", s["right"]),
        Paragraph(f"E-Mail：{operator.email}", s["right"]),
        Spacer(1, 4 * mm),
        Paragraph(f"事業者コード {doc.operator_code}", s["base"]),
        Paragraph(f"事業者名 {doc.operator_name} 御中", s["base"]),
        Spacer(1, 3 * mm),
        Paragraph(f"■{doc.result_heading}", s["heading"]),
        Paragraph(doc.result, s["result"]),
    ]
    if doc.detail:
        story += [Paragraph(f"■{doc.detail_heading}", s["heading"]), Spacer(1, 1 * mm)]
        width = max(len(row) for row in doc.detail)
        cell = ParagraphStyle("cell", parent=s["base"], fontSize=9.5, leading=13)
        rows = [
            [Paragraph(text, cell) for text in row] + [""] * (width - len(row))
            for row in doc.detail
        ]
        widths = [48 * mm, 26 * mm, 22 * mm, 74 * mm][:width] if width == 4 else None
        table = _grid(rows, widths or [48 * mm] + [122 * mm / (width - 1)] * (width - 1))
        spans = [
            ("SPAN", (len(row) - 1, n), (width - 1, n))
            for n, row in enumerate(doc.detail)
            if len(row) < width
        ]
        table.setStyle(TableStyle(spans))
        story.append(table)
    story += [
        Paragraph("■対象電源情報", s["heading"]),
        Spacer(1, 1 * mm),
        _grid([list(r) for r in doc.source_rows], [45 * mm, 80 * mm]),
        Spacer(1, 5 * mm),
    ]
    story += [Paragraph(note, s["small"]) for note in doc.notes]
    pdf.build(story)
    return out.getvalue()
