"""Statements shared by both engines."""

from __future__ import annotations

from tierwise.store.rows import ATTEMPT_COLUMNS, REQUEST_COLUMNS


def insert(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"


INSERT_REQUEST = insert("requests", REQUEST_COLUMNS)
INSERT_ATTEMPT = insert("attempts", ATTEMPT_COLUMNS)
INSERT_FEEDBACK = insert(
    "feedback",
    ("feedback_id", "request_id", "created_at", "score", "raw_score", "comment", "api_key"),
)
MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(id TEXT PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
)
OLD_IDS = "SELECT request_id FROM requests WHERE created_at < ?"
PRUNE = [
    "DELETE FROM attempts WHERE request_id IN (SELECT request_id FROM requests "
    "WHERE created_at < ?)",
    "DELETE FROM feedback WHERE request_id IN (SELECT request_id FROM requests "
    "WHERE created_at < ?)",
    "DELETE FROM judgments WHERE created_at < ?",
    "DELETE FROM requests WHERE created_at < ?",
]
EXISTS = "SELECT request_id FROM requests WHERE request_id = ?"
NEWEST_FOR_CLIENT_ID = (
    "SELECT request_id FROM requests WHERE client_request_id = ? "
    "ORDER BY created_at DESC, request_id DESC LIMIT 1"
)


def numbered(sql: str) -> str:
    """`?` placeholders as PostgreSQL's `$1, $2, ...`."""
    parts = sql.split("?")
    out = [parts[0]]
    for index, part in enumerate(parts[1:], start=1):
        out.append(f"${index}{part}")
    return "".join(out)
