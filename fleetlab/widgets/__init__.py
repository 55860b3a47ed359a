"""ipywidgets panels over the fleetlab API, for the notebooks in ``notebooks/``.

* ``FleetConsole``: submit goals, run and stop the fleet in the kernel's background, watch
  its status, read traces (``notebooks/fleet_console.ipynb``); a click on a row of its task
  table opens that goal's ``TraceViewer``.
* ``TraceViewer``: one goal's whole trace (timeline, agents, conversations, workspace diff).
* the A/B panel lives in ``fleetlab.widgets.ab`` (``notebooks/ab_decomposition.ipynb``).

Panels only render and call the package; the logic they drive lives in the layers below.
"""

from fleetlab.widgets.ab import ABPanel
from fleetlab.widgets.console import FleetConsole, model_choices, render_trace_html
from fleetlab.widgets.trace import TraceViewer

__all__ = [
    "ABPanel",
    "FleetConsole",
    "TraceViewer",
    "model_choices",
    "render_trace_html",
]
