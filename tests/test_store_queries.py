"""The store's named reads and writes on SQLite and PostgreSQL, its placeholders, and
the rule that SQL is written only inside `tierwise.store`."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

import tierwise
from tierwise.record import AttemptRecord, CostBreakdown, Decision, RequestRecord
from tierwise.store import Feedback, RecordWriter, Store, open_store, to_pusd
from tierwise.store.guard import StoreUnavailableError, guarded_store
from tierwise.store.inspect import select
from tierwise.store.sql import Bind, Dialect
from tierwise.store.tables import CalibrationRow, EventRow, JudgmentRow

SOURCE = Path(tierwise.__file__).parent
SQL = re.compile(
    r"\bSELECT\s[\s\S]*\bFROM\s|\bINSERT\s+INTO\s|\bUPDATE\s+\w+\s+SET\s|\bDELETE\s+FROM\s"
    r"|\b(?:CREATE|ALTER|DROP)\s+(?:TABLE|INDEX|SCHEMA)\b"
)
RAW_CALLS = {"query", "execute", "executemany", "fetch", "fetchrow", "fetchval", "_fetch", "_run"}
DRIVERS = {"sqlite3", "asyncpg", "tierwise.store.inspect"}
SINCE = 1_700_000_000.0


def served(
    request_id: str,
    at: float,
    tier: str,
    *,
    route: str = "auto",
    router: str = "emb",
    variant: str | None = None,
    unit: str | None = None,
    cost: str = "0.002",
    fault: str | None = None,
) -> RequestRecord:
    """A request answered by `tier`'s model, after a failed attempt on `fault`."""
    model = f"{tier}-model"
    attempts = [AttemptRecord(f"{tier}-1", tier, model, "openai", cost_usd=Decimal(cost))]
    if fault:
        failed = AttemptRecord(f"{tier}-0", tier, model, "openai", outcome="error", trigger=fault)
        attempts.insert(0, failed)
    return RequestRecord(
        request_id,
        route,
        decision=Decision(tier, scores={tier: 0.75}, router=router),
        attempts=attempts,
        final_deployment=f"{tier}-1",
        final_tier=tier,
        cost=CostBreakdown(attempts_usd=Decimal(cost), baseline_usd=Decimal("0.01")),
        latency_ms=at - SINCE + 1.0,
        started_at=at,
        variant=variant,
        experiment="ab" if variant else None,
        unit_key=unit,
        prompt=f"prompt of {request_id}",
        prompt_sketch=[0.5, 0.25],
    )


def failed(request_id: str, at: float) -> RequestRecord:
    attempt = AttemptRecord(
        "cheap-1", "cheap", "cheap-model", "openai", outcome="error", trigger="upstream_5xx"
    )
    return RequestRecord(
        request_id,
        "auto",
        decision=Decision("cheap", router="emb"),
        attempts=[attempt],
        status="error",
        error="upstream said 500",
        latency_ms=9.0,
        started_at=at,
    )


async def rate(store: Store, request_id: str, *scores: float) -> None:
    for i, score in enumerate(scores):
        rating = Feedback(f"{request_id}-f{i}", request_id, SINCE + 500, score, str(score))
        assert await store.add_feedback(rating) == request_id


def calibration(cid: str, at: float, route: str, applied: bool) -> CalibrationRow:
    return CalibrationRow(
        calibration_id=cid,
        created_at=at,
        route=route,
        parameter="margin",
        old_value=None if cid == "c1" else 0.1,
        new_value=0.2,
        applied=applied,
        evidence=orjson.dumps({"why": "share? $1"}).decode(),
        actor="drift-monitor",
    )


async def test_calibrations_read_newest_first_per_route_and_applied_oldest_first(
    store: Store,
) -> None:
    for cid, at, route, applied in (
        ("c1", 1.0, "auto?", False),
        ("c2", 2.0, "auto?", True),
        ("c3", 3.0, "other", True),
        ("c4", 4.0, "auto?", False),
    ):
        await store.add_calibration(calibration(cid, at, route, applied))
    assert [r["calibration_id"] for r in await store.calibrations()] == ["c4", "c3", "c2", "c1"]
    newest = await store.calibrations("auto?", limit=2)
    assert [r["calibration_id"] for r in newest] == ["c4", "c2"]
    assert newest[1]["applied"] is True and newest[0]["applied"] is False
    assert orjson.loads(newest[0]["evidence"]) == {"why": "share? $1"}
    oldest = (await store.calibrations("auto?"))[-1]
    assert oldest["old_value"] is None and oldest["created_at"] == 1.0
    entries = await store.applied_calibrations()
    assert [(r["calibration_id"], r["route"]) for r in entries] == [
        ("c2", "auto?"),
        ("c3", "other"),
    ]


async def test_experiment_events_and_judgments_round_trip(store: Store) -> None:
    for at, action in ((10.0, "create"), (20.0, "start")):
        event = EventRow(
            experiment="ab",
            created_at=at,
            action=action,
            definition='{"name": "ab"}' if action == "create" else None,
            serving=None,
            reason="",
            actor="cli",
        )
        await store.add_experiment_event(event)
    events = await store.experiment_events()
    assert [(e["action"], e["created_at"], e["definition"]) for e in events] == [
        ("create", 10.0, '{"name": "ab"}'),
        ("start", 20.0, None),
    ]
    assert [e["action"] for e in await store.experiment_events(after=10.0)] == ["start"]
    for request_id, variant, score, usd in (
        ("a1", "a", 1.0, "0.5"),
        ("a1", "a", 0.0, "9"),
        ("b1", "b", None, "0.25"),
    ):
        verdict = JudgmentRow(
            request_id=request_id,
            created_at=SINCE,
            experiment="ab",
            variant=variant,
            score=score,
            cost_pusd=to_pusd(Decimal(usd)),
            judge="judge-model",
            detail="SAME",
        )
        await store.add_judgment(verdict)
    assert await store.judge_costs("ab") == {"a": pytest.approx(0.5), "b": pytest.approx(0.25)}
    assert await store.judge_costs("other") == {}


async def test_drift_and_replay_reads(store: Store) -> None:
    await store.record(
        [
            served("r1", SINCE + 100, "strong"),
            served("r2", SINCE + 200, "cheap"),
            served("r3", SINCE + 300, "cheap", route="other"),
            served("r4", SINCE + 150, "cheap", router="rules"),
            failed("e1", SINCE + 250),
        ]
    )
    await rate(store, "r1", 1.0, 0.0)
    await rate(store, "r2", 1.0)
    assert await store.first_request_at("auto", "emb") == SINCE + 100
    assert await store.first_request_at("auto", "nobody") is None
    window = await store.drift_window("auto", "emb", SINCE + 100, SINCE + 250)
    assert [(r["target"], r["tier"], r["feedback"]) for r in window] == [
        ("cheap", "cheap", 1.0),
        ("strong", "strong", 0.5),
    ]
    assert orjson.loads(window[0]["sketch"] or "") == [0.5, 0.25]
    assert orjson.loads(window[1]["scores"] or "") == {"strong": 0.75}
    assert len(await store.drift_window("auto", "emb", SINCE, SINCE + 400, limit=1)) == 1
    requests = await store.served_requests()
    assert [r["request_id"] for r in requests] == ["r1", "r4", "r2", "r3"]
    assert requests[0]["final_model"] == "strong-model"
    assert requests[0]["cost_pusd"] == to_pusd(Decimal("0.002"))
    assert [r["request_id"] for r in await store.served_requests("other")] == ["r3"]
    assert (await store.count_requests(), await store.count_requests("auto")) == (5, 4)
    assert await store.mean_feedback() == {"r1": 0.5, "r2": 1.0}


async def test_experiment_statistics_over_units(store: Store) -> None:
    await store.record(
        [
            served("a1", SINCE + 1, "cheap", variant="a", unit="u1", cost="0.001"),
            served("a2", SINCE + 2, "cheap", variant="a", unit="u1", cost="0.003"),
            served("a3", SINCE + 3, "cheap", variant="a", unit="u2", fault="upstream_5xx"),
            served("b1", SINCE + 4, "strong", variant="b", cost="0.004"),
        ]
    )
    await rate(store, "a1", 0.5)
    totals = {t["variant"]: t for t in await store.variant_totals("ab")}
    assert (totals["a"]["n"], totals["a"]["fallbacks"], totals["a"]["escalations"]) == (3, 1, 0)
    assert totals["a"]["baseline"] == pytest.approx(0.03)
    assert (totals["a"]["first_at"], totals["a"]["last_at"]) == (SINCE + 1, SINCE + 3)
    assert totals["b"]["n"] == 1
    cost = await store.unit_moments("ab", "cost")
    assert cost["a"]["k"] == 2 and cost["b"]["k"] == 1
    a = cost["a"]
    assert (a["s"], a["c"], a["s2"], a["c2"], a["sc"]) == pytest.approx(
        (0.006, 3.0, 0.004**2 + 0.002**2, 5.0, 0.01)
    )
    satisfaction = await store.unit_moments("ab", "satisfaction")
    assert set(satisfaction) == {"a"} and satisfaction["a"]["s"] == pytest.approx(0.5)
    sums = sorted(
        (u["s"], u["c"]) for u in await store.unit_sums("ab", "cost") if u["variant"] == "a"
    )
    assert sums == [pytest.approx((0.002, 1.0)), pytest.approx((0.004, 2.0))]
    assert len(await store.unit_sums("ab", "cost", limit=1)) == 1
    with pytest.raises(ValueError, match="unknown experiment metric"):
        await store.unit_moments("ab", "happiness")


async def test_report_reads_group_bucket_and_list_failures(store: Store) -> None:
    await store.record(
        [
            served("r1", SINCE + 10, "cheap", fault="rate_limited"),
            served("r2", SINCE + 70, "strong"),
            failed("e1", SINCE + 130),
            served("late", SINCE + 180, "cheap"),
        ]
    )
    await rate(store, "r1", 1.0, 0.5)
    until = SINCE + 180
    groups = {(g["route"], g["tier"]): g for g in await store.report_groups(SINCE, until)}
    assert set(groups) == {("auto", "cheap"), ("auto", "strong"), ("auto", None)}
    cheap = groups[("auto", "cheap")]
    assert (cheap["n"], cheap["fallbacks"], cheap["spend"]) == (1, 1, to_pusd(Decimal("0.002")))
    assert groups[("auto", None)]["errors"] == 1 and cheap["lat_sum"] == 11.0
    buckets = await store.report_buckets(SINCE, until, 60)
    assert sorted((b["bucket"], b["n"]) for b in buckets) == [(0, 1), (1, 1), (2, 1)]
    feedback = await store.report_feedback(SINCE, until)
    assert [(f["tier"], f["n"], f["total"]) for f in feedback] == [("cheap", 2, 1.5)]
    triggers = {t["trigger"]: t for t in await store.report_triggers(SINCE, until)}
    assert triggers["rate_limited"]["fallbacks"] == 1 and triggers["upstream_5xx"]["n"] == 1
    newest = await store.report_latencies(SINCE, until, 2)
    assert [s["ms"] for s in newest] == [9.0, 71.0]
    (failure,) = await store.report_failures(SINCE, until, 5)
    assert (failure["request_id"], failure["error"]) == ("e1", "upstream said 500")
    attempts = await store.attempts_of(["r1", "e1", "unknown"])
    assert [(a["request_id"], a["seq"], a["outcome"]) for a in attempts] == [
        ("e1", 0, "error"),
        ("r1", 0, "error"),
        ("r1", 1, "ok"),
    ]
    assert await store.attempts_of([]) == []


async def test_placeholders_leave_question_marks_and_dollars_in_the_text_alone(
    store: Store,
) -> None:
    rows = await select(store, "SELECT '?' AS mark, '$1' AS dollar, CAST({} AS INTEGER) AS v", 7)
    assert rows == [{"mark": "?", "dollar": "$1", "v": 7}]


async def test_a_guarded_store_turns_an_outage_during_a_named_call_into_a_503(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.db"
    writer = RecordWriter(open_store(f"sqlite:///{path}"))
    await writer.start()
    guarded = guarded_store(writer, "the report")
    try:
        assert await guarded.count_requests() == 0
        await writer.store.close()
        path.unlink()
        path.mkdir()
        with pytest.raises(StoreUnavailableError, match="so the report is unavailable"):
            await guarded.calibrations()
        assert writer.outage is not None and not writer.available
        with pytest.raises(StoreUnavailableError):
            await guarded.add_calibration(calibration("c1", 1.0, "auto", False))
    finally:
        await writer.close()


def test_a_bind_numbers_each_value_in_its_dialect() -> None:
    for dialect, marks in ((Dialect.SQLITE, "?1 ?2 ?3"), (Dialect.POSTGRES, "$1 $2 $3")):
        q = Bind(dialect)
        assert f"{q('a')} {q(None)} {q(3)}" == marks and q.values == ["a", None, 3]
        assert Bind(dialect).many(["x", "y"]) == ", ".join(marks.split()[:2])


def sql_outside_store(root: Path) -> list[str]:
    """Every place under `root` (a copy of the package) outside `store/` that writes
    SQL, runs a statement on a connection or store, or imports a database driver."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.relative_to(root).parts[0] == "store":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found += [f"{path.relative_to(root)}:{line}: {what}" for line, what in _offences(tree)]
    return found


def _offences(tree: ast.AST) -> list[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant | ast.JoinedStr) and SQL.search(_text(node)):
            found.add((node.lineno, "SQL in a string"))
        elif isinstance(node, ast.Call) and _raw_call(node):
            found.add((node.lineno, "a statement run outside the store"))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names.append(node.module or "")
            found.update((node.lineno, f"imports {n}") for n in names if n in DRIVERS)
    return sorted(found)


def _text(node: ast.Constant | ast.JoinedStr) -> str:
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else ""
    parts = [v.value if isinstance(v, ast.Constant) else "x" for v in node.values]
    return "".join(str(p) for p in parts)


def _raw_call(node: ast.Call) -> bool:
    """A call like `x.query(...)` or `x.execute(SQL, ...)` whose statement is text."""
    if not isinstance(node.func, ast.Attribute):
        return False
    if node.func.attr not in RAW_CALLS or not node.args:
        return node.func.attr == "query"
    first = node.args[0]
    textual = (ast.Constant, ast.JoinedStr, ast.BinOp)
    constant = isinstance(first, ast.Name) and first.id.isupper()
    formatted = isinstance(first, ast.Call) and isinstance(first.func, ast.Attribute)
    return isinstance(first, textual) or constant or formatted or node.func.attr == "query"


def test_no_sql_outside_the_store() -> None:
    assert sql_outside_store(SOURCE) == []


def test_the_sql_scan_finds_statements_calls_and_drivers(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "ok.py").write_text('Q = "SELECT a FROM requests"\n')
    (tmp_path / "report.py").write_text(
        "import sqlite3\n"
        "from tierwise.store.inspect import select\n"
        'WINDOW = """SELECT r.route\n FROM requests r"""\n'
        "async def read(store, table):\n"
        '    await store.query(f"SELECT * FROM {table}")\n'
        "    await store.execute(WINDOW, ())\n"
        "    await store.fetch(WINDOW.format(where=''))\n"
        '    return f"DELETE FROM {table} WHERE x = 1"\n'
    )
    (tmp_path / "clean.py").write_text(
        '"""Select the cheapest tier from the request log; update the gateway."""\n'
        "async def go(pipe, gateway):\n"
        "    await pipe.execute()\n"
        "    return await gateway._run(gateway, 1)\n"
    )
    found = sql_outside_store(tmp_path)
    assert found == [
        "report.py:1: imports sqlite3",
        "report.py:2: imports tierwise.store.inspect",
        "report.py:3: SQL in a string",
        "report.py:6: SQL in a string",
        "report.py:6: a statement run outside the store",
        "report.py:7: a statement run outside the store",
        "report.py:8: a statement run outside the store",
        "report.py:9: SQL in a string",
    ]
