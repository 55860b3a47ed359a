"""The SQLite schema, as migrations: each entry upgrades it by one version."""

from __future__ import annotations

# Each entry upgrades the schema by one version; ``PRAGMA user_version`` is the count applied.
MIGRATIONS: tuple[str, ...] = (
    # v1: tasks, checkpoints, events.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
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
        created_us INTEGER NOT NULL,
        started_us INTEGER,
        finished_us INTEGER,
        updated_us INTEGER NOT NULL,
        lease_owner TEXT,
        lease_expires_us INTEGER,
        heartbeat_us INTEGER,
        result TEXT,
        error TEXT,
        budget_usd REAL,
        budget_tokens INTEGER,
        tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        tree_tokens_in INTEGER NOT NULL DEFAULT 0,
        tree_tokens_out INTEGER NOT NULL DEFAULT 0,
        tree_cost_usd REAL NOT NULL DEFAULT 0,
        tree_agents INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE checkpoints (
        task_id TEXT NOT NULL REFERENCES tasks(id),
        turn INTEGER NOT NULL,
        created_us INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (task_id, turn)
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        ts_us INTEGER NOT NULL,
        kind TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        role TEXT NOT NULL,
        attrs TEXT NOT NULL
    );
    """,
    # v2: indexes for the scheduler's claim, status reports and trace look-ups.
    """
    CREATE INDEX tasks_claim ON tasks (status, priority DESC, created_us);
    CREATE INDEX tasks_trace ON tasks (trace_id);
    CREATE INDEX tasks_parent ON tasks (parent_id);
    CREATE INDEX tasks_created ON tasks (created_us);
    CREATE INDEX events_task ON events (task_id, seq);
    CREATE INDEX events_trace ON events (trace_id, seq);
    CREATE INDEX events_kind_ts ON events (kind, ts_us);
    """,
    # v3: the decomposition learner (state and history) and recurring goals.
    """
    CREATE TABLE learner_arms (
        bucket TEXT NOT NULL,
        arm TEXT NOT NULL,
        n INTEGER NOT NULL DEFAULT 0,
        reward_sum REAL NOT NULL DEFAULT 0,
        reward_sq REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (bucket, arm)
    );
    CREATE TABLE learner_updates (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_us INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        bucket TEXT NOT NULL,
        arm TEXT NOT NULL,
        reward REAL NOT NULL,
        success INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        mean_direct REAL,
        mean_decompose REAL,
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
        next_us INTEGER NOT NULL,
        created_us INTEGER NOT NULL
    );
    """,
    # v4: fencing tokens. Every claim of a task increments its epoch; a write made on the
    # task's behalf names the epoch it was claimed under and is refused once it is stale.
    """
    ALTER TABLE tasks ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    """,
    # v5: the fleet's workers (one row per worker process, on any host) and their
    # heartbeats, so `fleetlab workers` lists them.
    """
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_us INTEGER NOT NULL,
        heartbeat_us INTEGER NOT NULL,
        stopped_us INTEGER
    );
    """,
    # v6: the learner's arms are strategies (direct, decompose, as_needed): every arm's mean
    # after an update, and the warm starts that seeded it (from where, under which objective).
    """
    ALTER TABLE learner_updates ADD COLUMN means TEXT;
    CREATE TABLE learner_seeds (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_us INTEGER NOT NULL,
        source TEXT NOT NULL,
        bucket TEXT NOT NULL,
        arm TEXT NOT NULL,
        n INTEGER NOT NULL,
        reward_sum REAL NOT NULL,
        reward_sq REAL NOT NULL,
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
