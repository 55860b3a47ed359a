"""Benchmarks, side by side in one run: ``python -m fleetlab.bench all`` (``make bench``).

Parts (each runnable alone): ``orchestration`` (durable turns per second against LangGraph
and against the raw SQLite commit rate), ``concurrency`` (1,000 agents with real model
latency against Little's law), ``reports`` (weekly metrics on a year of a busy fleet) and
``experiments`` (A/B trials per second). Results go to ``reports/bench/latest.md`` and
``latest.json``. Each workload runs in its own process, several times; figures are medians
and ratios measured in the same run, since these machines are shared and noisy.
"""
