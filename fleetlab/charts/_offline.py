"""Charts and tables that render in a notebook with no network: the one call every notebook
and widget makes, ``fleetlab.charts.setup_notebook()``.

altair's default notebook output loads vega from a CDN (``https://cdn.jsdelivr.net``), so with
no network every chart fails with "Error loading script". ``setup_notebook()``:

* switches altair to the ``fleetlab-offline`` renderer: a chart's output is a ``<div>`` and a
  call to ``vegaEmbed``, which waits for the library instead of fetching it;
* displays the vega, vega-lite and vega-embed JavaScript inline (``vl-convert``'s bundle,
  ~1 MB, once per notebook; guarded, so a second copy is harmless);
* makes a polars ``DataFrame`` display as a formatted HTML table (``fleetlab.charts.table``:
  percentages, money, counts, human column names, every cell escaped).

In JupyterLab and in the HTML that nbconvert exports the charts then draw, interactive, with no
request leaving the machine. HTML reports inline the same bundle: ``vega_script_html()``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from functools import cache
from typing import Any, cast

from fleetlab.errors import one_line_errors

__all__ = [
    "OFFLINE_RENDERER",
    "enable_offline",
    "setup_notebook",
    "vega_bundle",
    "vega_script_html",
]

#: The name of the altair renderer ``enable_offline`` registers and enables.
OFFLINE_RENDERER = "fleetlab-offline"
_counter = itertools.count()


@cache
def _vl_version() -> str:
    from altair.utils._importers import vl_version_for_vl_convert

    return str(vl_version_for_vl_convert())


@cache
def vega_bundle() -> str:
    """The JavaScript of vega, vega-lite and vega-embed for the installed altair's vega-lite
    version (from ``vl-convert``, no network); running it defines ``vegaEmbed``."""
    import vl_convert

    return str(cast(Any, vl_convert).javascript_bundle(vl_version=_vl_version()))


def vega_script_html() -> str:
    """A ``<script>`` defining ``vegaEmbed`` (vega, vega-lite, vega-embed inline, ~1 MB).

    Wrapped in a function and guarded, so running it twice on one page is harmless; any
    ``</script`` inside is escaped, so the element cannot end early.
    """
    return (
        '<script type="text/javascript">\n'
        "if (!window.vegaEmbed) { (function () {\n"
        + vega_bundle().replace("</script", "<\\/script")
        + "\n})(); }\n</script>"
    )


_DRAW = """<div id="{id}" class="fleetlab-chart"></div>
<script type="text/javascript">
(function () {{
  var spec = {spec};
  var script = document.currentScript;
  var el = script && script.previousElementSibling;
  if (!el || el.id !== "{id}") {{ el = document.getElementById("{id}"); }}
  function draw() {{
    vegaEmbed(el, spec, {{"mode": "vega-lite", "actions": false}}).catch(function (err) {{
      el.textContent = "chart error: " + err;
    }});
  }}
  if (window.vegaEmbed) {{ draw(); return; }}
  var tries = 0;
  var timer = setInterval(function () {{
    if (window.vegaEmbed) {{ clearInterval(timer); draw(); }}
    else if (++tries > 200) {{
      clearInterval(timer);
      el.textContent = "The chart library is not loaded: run the cell that calls "
        + "fleetlab.charts.setup_notebook().";
    }}
  }}, 50);
}})();
</script>"""


def _offline_renderer(spec: dict[str, Any], **_: Any) -> dict[str, str]:
    text = json.dumps(spec, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:10]
    html = _DRAW.format(
        id=f"fleetlab-chart-{digest}-{next(_counter)}", spec=text.replace("</", "<\\/")
    )
    return {"text/html": html, "text/plain": "<altair chart>"}


class OfflineScript:
    """Displays the vega JavaScript (what ``enable_offline`` returns): display it once, before
    the first chart, in the notebook or in the ``ipywidgets.Output`` that shows charts."""

    def _repr_html_(self) -> str:
        return vega_script_html()

    def __repr__(self) -> str:
        return "<offline chart rendering enabled>"


def enable_offline() -> OfflineScript:
    """Make altair draw charts with no CDN (the ``fleetlab-offline`` renderer).

    Returns:
        The object carrying the chart library: display it once before the first chart.
    """
    import altair as alt

    if OFFLINE_RENDERER not in alt.renderers.names():
        alt.renderers.register(OFFLINE_RENDERER, _offline_renderer)
    alt.renderers.enable(OFFLINE_RENDERER)
    return OfflineScript()


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebook extra
        return None
    return get_ipython()


def setup_notebook() -> None:
    """Charts drawn offline and polars frames shown as formatted tables, in this notebook.

    Call it in the first code cell (``from fleetlab import charts; charts.setup_notebook()``).
    In an IPython kernel it displays the chart library (an output of that cell, so keep the
    call in a cell that runs before the charts) and registers the table formatter for
    ``polars.DataFrame``, and shows fleetlab's ``UserError`` as one line
    (``errors.one_line_errors``); elsewhere it only switches altair's renderer. Calling it
    again is harmless.
    """
    import polars as pl

    from fleetlab.charts._tables import table_html

    script = enable_offline()
    ip = _ipython()
    if ip is None:
        return
    ip.display_formatter.formatters["text/html"].for_type(pl.DataFrame, table_html)
    one_line_errors()  # a mistake in a cell (a bad file, a name) is one line, not a traceback
    from IPython.display import HTML, display

    display(HTML(script._repr_html_()))  # type: ignore[no-untyped-call]
