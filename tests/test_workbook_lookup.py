"""A grid answers `row_after`, `range_of` and `Labels.find` from indexes built once per sheet
(issue 17: scanning every cell for each question was most of reading a form). The answers are
the plain scans' answers, on any sheet: overlapping merged ranges, ranges merged down from a
row above, a label written twice, stems and exact spellings side by side. And the preflight
opens each small part of a workbook once."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.forms import workbook as wb

WORDS = ("住所", "住所※", "住 所", "＊住所：", "電話番号", "電話番号(必須)", "○", "東京", "x")
LABELS = wb.Labels(["住所", "電話番号"], {"住所": ["所在地"]})


def scan_range_of(grid: wb.Grid, row: int, col: int) -> wb.Range:
    for rng in grid.merged:
        if rng[0] <= row <= rng[2] and rng[1] <= col <= rng[3]:
            return rng
    return (row, col, row, col)


def scan_row_after(grid: wb.Grid, row: int, col: int) -> list[tuple[int, wb.CellValue]]:
    items = {c: v for (r, c), v in grid.cells.items() if r == row and c > col}
    for top, left, bottom, right in grid.merged:
        if top < row <= bottom and right > col and (top, left) in grid.cells:
            items.setdefault(max(left, col + 1), grid.cells[(top, left)])
    return sorted(items.items())


def scan_find(labels: wb.Labels, grid: wb.Grid, label: str) -> wb.Spot | None:
    keys = labels._keys[label]
    for exact in (True, False):
        for (row, col), value in sorted(grid.cells.items()):
            if isinstance(value, str):
                key = wb.label_key(value) if exact else wb.label_stem(value)
                if key in keys:
                    return wb.Spot(label, scan_range_of(grid, row, col))
    return None


places = st.tuples(st.integers(1, 6), st.integers(1, 6))
ranges = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(0, 3), st.integers(0, 3)).map(
    lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3])
)
grids = st.builds(
    lambda cells, merged: wb.Grid("s", cells, tuple(merged)),
    st.dictionaries(places, st.one_of(st.sampled_from(WORDS), st.integers(0, 3)), max_size=20),
    st.lists(ranges, max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(grids)
def test_indexed_lookups_answer_as_the_scans_do(grid: wb.Grid) -> None:
    # the worker builds a grid's indexes and pickles it to the main process
    for seen in (grid, pickle.loads(pickle.dumps(grid))):
        for row in range(0, 11):
            for col in range(0, 11):
                assert seen.range_of(row, col) == scan_range_of(grid, row, col)
                assert seen.row_after(row, col) == scan_row_after(grid, row, col)
        for label in LABELS.labels:
            assert LABELS.find(seen, label) == scan_find(LABELS, grid, label)


def test_overlapping_merged_ranges_the_first_one_holds_the_cell() -> None:
    grid = wb.Grid("s", {(1, 1): "a", (1, 2): "b"}, ((1, 2, 3, 3), (1, 1, 2, 3)))
    assert grid.range_of(2, 2) == (1, 2, 3, 3)
    assert grid.range_of(2, 1) == (1, 1, 2, 3)
    assert grid.row_after(2, 0) == [(1, "a"), (2, "b")]


def test_the_preflight_inflates_each_small_part_once(monkeypatch) -> None:
    """The DTD check reads a part no longer than its prolog read whole; the extent scan then
    uses those bytes instead of opening the part again (issue 17: ~10 us per open, most parts
    of a form were opened twice). [Content_Types].xml is read once more, by name, for the
    macro check."""
    import zipfile
    from collections import Counter

    from tests.support.forms import operator_form, to_bytes

    data = to_bytes(operator_form(fields={"事業者名称": "株式会社開封回数"}))
    opened: Counter[str] = Counter()
    real_open = zipfile.ZipFile.open

    def counting(self, name, *args, **kwargs):
        opened[getattr(name, "filename", name)] += 1
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting)
    assert wb.inspect("申込書.xlsx", data) == []
    assert opened["xl/worksheets/sheet1.xml"] == 1
    assert max(n for part, n in opened.items() if part != "[Content_Types].xml") == 1
    assert opened["[Content_Types].xml"] == 2
