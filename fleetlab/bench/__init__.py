"""Benchmarks, side by side in one run: ``python -m fleetlab.bench all`` (``make bench``).

Parts (each runnable alone): ``orchestration`` (durable turns per second against LangGraph's
checkpointers and against the raw commit rate), ``concurrency`` (1,000 agents with real model
latency against Little's law: one process on SQLite, three worker processes on one
PostgreSQL), ``reports`` (weekly metrics on a year of a busy fleet, the same rows on both
engines) and ``experiments`` (A/B trials per second). Every part runs on SQLite and on
PostgreSQL (a throwaway cluster, or ``--db URL``) unless ``--backends`` says otherwise.
Results go to ``reports/bench/latest.md`` and ``latest.json``. Each workload runs in its own
process, several times; figures are medians and ratios measured in the same run, since these
machines are shared and noisy.
"""
