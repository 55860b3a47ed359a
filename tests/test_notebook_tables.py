"""``fleetlab.charts.table``: a polars frame as a readable HTML table, and
``setup_notebook()``, which makes it (and offline charts) the notebook's default.

The expected texts are written out by hand; the table is read back with the standard library's
HTML parser, so a cell's text is what a browser would show.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient

from fleetlab import charts


class _Cells(HTMLParser):
    """Rows of (tag, text) cells, every element seen, and the caption."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self.caption = ""
        self._cell: list[str] | None = None
        self._in_caption = False
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "caption":
            self._in_caption = True
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None
        elif tag == "caption":
            self._in_caption = False
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_caption:
            self.caption += data


def _read(html: str) -> _Cells:
    parser = _Cells()
    parser.feed(html)
    parser.close()
    return parser


def test_numbers_are_written_for_people() -> None:
    frame = pl.DataFrame(
        {
            "variant": ["as_needed", "never"],
            "trials": [1234, 7],
            "success": [0.9799, 0.5],
            "success_diff": [0.023, -0.1],
            "mean_cost_usd": [0.0641, 1234.5],
            "cost_diff": [0.0012, -0.25],
            "mcnemar_p": [0.0004, 0.25],
            "mean_wall_s": [12.34, 12_540.0],
            "mean_agents": [1.5, 250.0],
            "clustered": [True, False],
            "note": ["wide interval", None],
        }
    )
    rows = _read(charts.table_html(frame)).rows
    assert rows == [
        [
            "Variant",
            "Trials",
            "Success",
            "Success diff",
            "Mean cost ($)",
            "Cost diff",
            "McNemar p",
            "Mean wall",
            "Mean agents",
            "Clustered",
            "Note",
        ],
        [
            "as_needed",
            "1,234",
            "98.0%",
            "+2.3 pp",
            "$0.0641",
            "+$0.0012",
            "<0.001",
            "12.3 s",
            "1.50",
            "yes",
            "wide interval",
        ],
        [
            "never",
            "7",
            "50.0%",
            "-10.0 pp",
            "$1,234.5000",
            "-$0.2500",
            "0.250",
            "3 h 29 m",
            "250",
            "no",
            "\u2014",
        ],
    ]


def test_no_dtype_row_and_no_elided_rows() -> None:
    frame = pl.DataFrame({"n": list(range(300)), "kind": ["x"] * 300})
    rows = _read(charts.table_html(frame)).rows
    assert len(rows) == 1 + 300  # the heading and every row: no "i64" row, no "…"
    assert rows[1] == ["0", "x"]
    assert rows[-1] == ["299", "x"]
    assert all("\u2026" not in cell for row in rows for cell in row)


def test_a_long_frame_says_how_much_is_shown() -> None:
    frame = pl.DataFrame({"n": list(range(30))})
    html = charts.table_html(frame, max_rows=10)
    assert len(_read(html).rows) == 1 + 10
    assert "first 10 of 30 rows" in html


def test_formats_labels_and_caption_override() -> None:
    frame = pl.DataFrame({"share": [0.25], "n": [3], "who": ["x"]})
    parsed = _read(
        charts.table_html(
            frame,
            formats={"share": "number", "n": "money", "who": lambda v: f"<{v}>"},
            labels={"n": "Goals"},
            caption="By kind",
        )
    )
    assert parsed.rows == [["Share", "Goals", "Who"], ["0.25", "$3.0000", "<x>"]]
    assert parsed.caption == "By kind"


def test_a_table_of_simulated_numbers_says_so_above_it() -> None:
    """As a chart of them does: from the frame's ``simulated`` column, or as told."""
    note = "SIMULATED model: not a measurement of Claude"
    sim = pl.DataFrame({"variant": ["never"], "success": [0.5], "simulated": [True]})
    real = sim.with_columns(pl.lit(False).alias("simulated"))
    plain = sim.drop("simulated")
    assert (
        _read(charts.table_html(sim, caption="Variants")).caption == f"Variants (simulated){note}"
    )
    assert _read(charts.table_html(sim)).caption == f"Simulated{note}"
    assert _read(charts.table_html(real, caption="Variants")).caption == "Variants"
    assert _read(charts.table_html(plain, caption="Variants")).caption == "Variants"
    told = charts.table(plain, caption="Variants", simulated=True).html
    assert _read(told).caption == f"Variants (simulated){note}"
    assert _read(charts.table_html(sim, simulated=False)).caption == ""
    assert "<caption>" not in charts.table_html(plain)
    # a column of another kind (0/1 read from SQL, text, nulls, lists) says what it can
    for column, says in (([0, 1], True), ([0], False), (["true"], True), (["no"], False),
                         ([None], False), ([[1]], False)):  # fmt: skip
        frame = pl.DataFrame({"n": [1] * len(column), "simulated": column})
        assert _read(charts.table_html(frame)).caption == ("Simulated" + note if says else "")


def test_a_format_for_no_column_or_an_unknown_format_is_refused() -> None:
    frame = pl.DataFrame({"n": [1]})
    with pytest.raises(ValueError, match=r"formats names no column \['m'\]"):
        charts.table_html(frame, formats={"m": "money"})
    with pytest.raises(ValueError, match="format 'dollars' of column 'n' is unknown"):
        charts.table_html(frame, formats={"n": "dollars"})


HOSTILE = [
    "<script>alert(1)</script>",
    "</table><h1>injected</h1>",
    "<img src=x onerror=alert(1)>",
    "# a Markdown heading\n[a link](https://example.com)",
    "'\"&amp; quotes",
]


def test_every_cell_and_heading_is_text_never_markup() -> None:
    frame = pl.DataFrame({"<b>col</b>": HOSTILE, "n": list(range(len(HOSTILE)))})
    parsed = _read(
        charts.table_html(frame, caption="<i>cap</i>", labels={"n": "<script>n</script>"})
    )
    # the only elements are the table's own: no script, img, h1, b or i made it through
    assert set(parsed.tags) <= {"div", "style", "table", "caption", "thead", "tbody", "tr"} | {
        "th",
        "td",
    }
    assert [row[0] for row in parsed.rows[1:]] == HOSTILE  # shown exactly as written
    assert parsed.rows[0] == ["B col b", "<script>n</script>"]  # a name's words; a label as is
    assert parsed.caption == "<i>cap</i>"


def test_durations_and_missing_values() -> None:
    frame = pl.DataFrame({"took": [timedelta(seconds=65), None], "cost_usd": [None, float("nan")]})
    assert _read(charts.table_html(frame)).rows[1:] == [["1 m 05 s", "\u2014"], ["\u2014"] * 2]


def test_setup_notebook_outside_a_kernel_switches_altair_to_the_offline_renderer() -> None:
    import altair as alt

    before = alt.renderers.active
    try:
        assert charts.setup_notebook() is None
        assert alt.renderers.active == "fleetlab-offline"
        chart = alt.Chart(pl.DataFrame({"x": [1], "y": [2]})).mark_point().encode(x="x", y="y")
        chart = chart.properties(title="</script><script>alert(1)</script>")
        bundle = chart._repr_mimebundle_()
        shown = bundle[0] if isinstance(bundle, tuple) else bundle
        html = shown["text/html"]
        assert "src=" not in html  # nothing to fetch: no script, image or frame from a URL
        assert "cdn.jsdelivr" not in html
        assert html.count("</script>") == 1  # the title cannot end the script early
    finally:
        alt.renderers.enable(before)


def test_the_offline_library_is_inline_and_defines_vega_embed() -> None:
    script = charts.vega_script_html()
    assert script.startswith("<script")
    assert script.count("</script>") == 1
    assert "vegaEmbed" in script
    assert "cdn.jsdelivr.net/npm/vega" not in script.split("if (!window.vegaEmbed)")[0]


@pytest.mark.slow
def test_in_a_kernel_frames_show_as_tables_and_charts_need_no_network(tmp_path: Path) -> None:
    cells = [
        "from fleetlab import charts\ncharts.setup_notebook()",
        "import polars as pl\npl.DataFrame({'mean_cost_usd': [0.0641], 'n': [1234]})",
        textwrap.dedent(
            """
            import altair as alt
            alt.Chart(pl.DataFrame({'x': [1], 'y': [2]})).mark_point().encode(x='x', y='y')
            """
        ),
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    setup, frame, chart = ([o.get("data", {}) for o in cell.outputs] for cell in nb.cells)
    assert len(setup) == 1
    assert "vegaEmbed" in setup[0]["text/html"]  # the library, shown by the setup cell
    [shown] = frame
    assert _read(shown["text/html"]).rows == [["Mean cost ($)", "N"], ["$0.0641", "1,234"]]
    [drawn] = chart
    assert drawn["text/plain"] == "<altair chart>"
    assert "src=" not in drawn["text/html"]
    assert "cdn.jsdelivr" not in drawn["text/html"]
