"""fleetlab: run and study a fleet of autonomous Claude agents.

The public API is re-exported here; everything else is reachable through its module
(``fleetlab.clock``, ``fleetlab.store``, ``fleetlab.telemetry``, ...).
"""

from fleetlab.api import run, run_async
from fleetlab.clock import (
    Clock,
    FakeClock,
    ScaledClock,
    SystemClock,
    WeekWindow,
    parse_week,
    week_of,
)
from fleetlab.errors import FleetlabError, UserError
from fleetlab.status import FleetStatus, fleet_status
from fleetlab.store import Store, Task
from fleetlab.telemetry import Event
from fleetlab.trace import TraceNode, load_trace

__version__ = "0.1.0"

__all__ = [
    "Clock",
    "Event",
    "FakeClock",
    "FleetStatus",
    "FleetlabError",
    "ScaledClock",
    "Store",
    "SystemClock",
    "Task",
    "TraceNode",
    "UserError",
    "WeekWindow",
    "__version__",
    "fleet_status",
    "load_trace",
    "parse_week",
    "run",
    "run_async",
    "week_of",
]
