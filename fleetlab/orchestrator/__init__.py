"""The orchestrator: priority scheduling with preemption and resume, complexity-gated
delegation, and the self-improving decomposition policy.

```python
fleet = Fleet(store, get_model("sim:default"), FleetConfig(concurrency=4, policy="learned"))
submit_goal(store, "rename notes.txt to README.md", priority=80)
await fleet.run(until_idle=True)
```
"""

from fleetlab.orchestrator._config import FleetConfig, task_ref
from fleetlab.orchestrator._fleet import Fleet, FleetReport
from fleetlab.orchestrator._goals import Goal, load_goals, submit_goal, submit_goals
from fleetlab.orchestrator._schedules import (
    WEEKDAYS,
    Schedule,
    add_schedule,
    fire_due,
    list_schedules,
    remove_schedule,
)

__all__ = [
    "WEEKDAYS",
    "Fleet",
    "FleetConfig",
    "FleetReport",
    "Goal",
    "Schedule",
    "add_schedule",
    "fire_due",
    "list_schedules",
    "load_goals",
    "remove_schedule",
    "submit_goal",
    "submit_goals",
    "task_ref",
]
