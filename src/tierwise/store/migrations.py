"""Append-only schema migrations shared by SQLite and PostgreSQL.

Never edit or reorder an entry; add a new one at the end. Costs are stored as
integer pico-dollars (1e-12 USD) so sums in SQL stay exact on both engines.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "m001_initial",
        [
            """CREATE TABLE requests (
            request_id TEXT PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            route TEXT NOT NULL,
            router TEXT, decision_target TEXT, decision_reason TEXT, decision_scores TEXT,
            router_confident INTEGER,
            final_deployment TEXT, final_tier TEXT, final_model TEXT, provider TEXT,
            status TEXT NOT NULL, error TEXT,
            input_tokens BIGINT NOT NULL, output_tokens BIGINT NOT NULL,
            cached_tokens BIGINT NOT NULL,
            cost_pusd BIGINT NOT NULL, attempts_pusd BIGINT NOT NULL,
            checks_pusd BIGINT NOT NULL, router_pusd BIGINT NOT NULL,
            baseline_pusd BIGINT NOT NULL, savings_pusd BIGINT NOT NULL,
            latency_ms DOUBLE PRECISION, first_token_ms DOUBLE PRECISION,
            calls INTEGER NOT NULL, escalated INTEGER NOT NULL,
            variant TEXT, user_id TEXT, api_key TEXT,
            prompt TEXT, answer TEXT
        )""",
            "CREATE INDEX requests_created_at ON requests (created_at)",
            """CREATE TABLE attempts (
            request_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            deployment TEXT NOT NULL, tier TEXT, model TEXT, provider TEXT,
            called INTEGER NOT NULL, outcome TEXT NOT NULL, trigger TEXT, detail TEXT,
            status INTEGER, latency_ms DOUBLE PRECISION, first_token_ms DOUBLE PRECISION,
            input_tokens BIGINT, output_tokens BIGINT,
            cost_pusd BIGINT NOT NULL, check_pusd BIGINT NOT NULL,
            confidence DOUBLE PRECISION,
            PRIMARY KEY (request_id, seq)
        )""",
            """CREATE TABLE feedback (
            feedback_id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            score DOUBLE PRECISION NOT NULL,
            raw_score TEXT NOT NULL,
            comment TEXT,
            api_key TEXT
        )""",
            "CREATE INDEX feedback_request ON feedback (request_id)",
        ],
    ),
    (
        "m002_experiments_drift",
        [
            "ALTER TABLE requests ADD COLUMN experiment TEXT",
            "ALTER TABLE requests ADD COLUMN prompt_sketch TEXT",
            "CREATE INDEX requests_experiment ON requests (experiment, variant)",
            """CREATE TABLE experiment_events (
            experiment TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            action TEXT NOT NULL,
            definition TEXT,
            serving TEXT,
            reason TEXT,
            actor TEXT
        )""",
            "CREATE INDEX experiment_events_at ON experiment_events (created_at)",
            """CREATE TABLE calibrations (
            calibration_id TEXT PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            route TEXT NOT NULL,
            parameter TEXT NOT NULL,
            old_value DOUBLE PRECISION,
            new_value DOUBLE PRECISION NOT NULL,
            applied INTEGER NOT NULL,
            evidence TEXT NOT NULL,
            actor TEXT
        )""",
            "CREATE INDEX calibrations_route ON calibrations (route, created_at)",
            """CREATE TABLE judgments (
            request_id TEXT PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            experiment TEXT,
            variant TEXT,
            score DOUBLE PRECISION,
            cost_pusd BIGINT NOT NULL,
            judge TEXT,
            detail TEXT
        )""",
        ],
    ),
    (
        "m003_experiment_units",
        ["ALTER TABLE requests ADD COLUMN unit_key TEXT"],
    ),
    (
        "m004_client_request_ids",
        [
            "ALTER TABLE requests ADD COLUMN client_request_id TEXT",
            "CREATE INDEX requests_client_request_id ON requests (client_request_id, created_at)",
        ],
    ),
    (
        "m005_exploration",
        [
            "ALTER TABLE requests ADD COLUMN decision_propensity REAL",
            "ALTER TABLE requests ADD COLUMN explored INTEGER NOT NULL DEFAULT 0",
            # integer pico-dollars (1e-12 USD), like every cost column
            "ALTER TABLE requests ADD COLUMN exploration_cost_usd BIGINT NOT NULL DEFAULT 0",
        ],
    ),
    (
        "m006_learned_routers",
        [
            """CREATE TABLE learned_routers (
            router_id TEXT PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            route TEXT NOT NULL,
            models TEXT NOT NULL,
            body TEXT NOT NULL,
            summary TEXT
        )""",
        ],
    ),
    (
        "m007_cache_hits",
        ["ALTER TABLE requests ADD COLUMN cache TEXT"],
    ),
    (
        "m009_virtual_keys",
        [
            """CREATE TABLE virtual_keys (
            name TEXT PRIMARY KEY,
            key_sha256 TEXT NOT NULL UNIQUE,
            prefix TEXT NOT NULL,
            team TEXT,
            key_user TEXT,
            routes TEXT,
            models TEXT,
            budget_usd TEXT,
            budget_period TEXT,
            rpm BIGINT,
            tpm BIGINT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION
        )""",
            """CREATE TABLE key_events (
            event_id TEXT PRIMARY KEY,
            created_at DOUBLE PRECISION NOT NULL,
            name TEXT NOT NULL,
            action TEXT NOT NULL,
            actor TEXT,
            detail TEXT
        )""",
        ],
    ),
    (
        "m010_shadow_decisions",
        [
            """CREATE TABLE shadow_decisions (
            request_id TEXT NOT NULL,
            router_id TEXT NOT NULL,
            target TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (request_id, router_id)
        )""",
        ],
    ),
    (
        "m008_request_team",
        [
            "ALTER TABLE requests ADD COLUMN team TEXT",
            "CREATE INDEX requests_team ON requests (team, created_at)",
        ],
    ),
]
