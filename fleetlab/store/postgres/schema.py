"""The PostgreSQL schema, as migrations: each entry upgrades it by one version.

The same tables as the SQLite schema, in PostgreSQL's types: instants are BIGINT
microseconds (UTC), money DOUBLE PRECISION, event attributes JSONB (so ``attrs ->> 'key'``
reads them as on SQLite), and identity columns where SQLite has ``rowid`` order.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # v1: everything SQLite's v1-v5 hold, with indexes on the time columns the digest
    # filters on.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        parent_id TEXT REFERENCES tasks(id),
        root_id TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        depth INTEGER NOT NULL DEFAULT 0,
        role TEXT NOT NULL DEFAULT 'executor',
        title TEXT NOT NULL,
        spec TEXT NOT NULL DEFAULT '{}',
        priority INTEGER NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        preempt_streak INTEGER NOT NULL DEFAULT 0,
        created_us BIGINT NOT NULL,
        started_us BIGINT,
        finished_us BIGINT,
        updated_us BIGINT NOT NULL,
        lease_owner TEXT,
        lease_expires_us BIGINT,
        heartbeat_us BIGINT,
        result TEXT,
        error TEXT,
        budget_usd DOUBLE PRECISION,
        budget_tokens BIGINT,
        tokens_in BIGINT NOT NULL DEFAULT 0,
        tokens_out BIGINT NOT NULL DEFAULT 0,
        cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        tree_tokens_in BIGINT NOT NULL DEFAULT 0,
        tree_tokens_out BIGINT NOT NULL DEFAULT 0,
        tree_cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        tree_agents INTEGER NOT NULL DEFAULT 0,
        lease_epoch BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE checkpoints (
        task_id TEXT NOT NULL REFERENCES tasks(id),
        turn INTEGER NOT NULL,
        created_us BIGINT NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (task_id, turn)
    );
    CREATE TABLE events (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ts_us BIGINT NOT NULL,
        kind TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        role TEXT NOT NULL,
        attrs JSONB NOT NULL
    );
    CREATE INDEX tasks_claim ON tasks (status, priority DESC, created_us);
    CREATE INDEX tasks_trace ON tasks (trace_id);
    CREATE INDEX tasks_parent ON tasks (parent_id);
    CREATE INDEX tasks_created ON tasks (created_us);
    CREATE INDEX tasks_finished ON tasks (finished_us);
    CREATE INDEX events_task ON events (task_id, seq);
    CREATE INDEX events_trace ON events (trace_id, seq);
    CREATE INDEX events_kind_ts ON events (kind, ts_us);
    CREATE INDEX events_ts ON events (ts_us);
    CREATE TABLE learner_arms (
        bucket TEXT NOT NULL,
        arm TEXT NOT NULL,
        n BIGINT NOT NULL DEFAULT 0,
        reward_sum DOUBLE PRECISION NOT NULL DEFAULT 0,
        reward_sq DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (bucket, arm)
    );
    CREATE TABLE learner_updates (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts_us BIGINT NOT NULL,
        task_id TEXT NOT NULL,
        bucket TEXT NOT NULL,
        arm TEXT NOT NULL,
        reward DOUBLE PRECISION NOT NULL,
        success INTEGER NOT NULL,
        cost_usd DOUBLE PRECISION NOT NULL,
        mean_direct DOUBLE PRECISION,
        mean_decompose DOUBLE PRECISION,
        preferred TEXT
    );
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        spec TEXT NOT NULL,
        priority INTEGER NOT NULL,
        weekday INTEGER NOT NULL,
        at_time TEXT NOT NULL,
        zone TEXT NOT NULL,
        next_us BIGINT NOT NULL,
        created_us BIGINT NOT NULL
    );
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_us BIGINT NOT NULL,
        heartbeat_us BIGINT NOT NULL,
        stopped_us BIGINT
    );
    """,
    # v2 (SQLite's v6): every arm's mean after an update, and the learner's warm starts.
    """
    ALTER TABLE learner_updates ADD COLUMN means TEXT;
    CREATE TABLE learner_seeds (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        ts_us BIGINT NOT NULL,
        source TEXT NOT NULL,
        bucket TEXT NOT NULL,
        arm TEXT NOT NULL,
        n BIGINT NOT NULL,
        reward_sum DOUBLE PRECISION NOT NULL,
        reward_sq DOUBLE PRECISION NOT NULL,
        objective TEXT NOT NULL
    );
    """,
    # v7: whether a warm start's evidence came from a simulated model (1), a real one (0), or
    # is not known (NULL: seeded before v7), so every view of the learner can say so.
    """
    ALTER TABLE learner_seeds ADD COLUMN simulated INTEGER;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
