"""``python -m fleetlab.bench.worker NAME JSON``: run one workload, print its result as JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

from fleetlab.bench import _concurrency, _reports, _workers, _workloads

WORKLOADS: dict[str, Any] = {
    **_workloads.WORKLOADS,
    **_concurrency.WORKLOADS,
    **_reports.WORKLOADS,
    **_workers.WORKLOADS,
}

if __name__ == "__main__":
    name, params = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(WORKLOADS[name](**params)))
