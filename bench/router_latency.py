"""Decision latency of tierwise's routers, pinned to one core.

Each router decides every prompt (two tiers, `cheap` and `strong`) after a warm-up that
loads its model and embeds its examples:

  heuristic                        HeuristicRouter (length and keywords)
  embedding hashing                EmbeddingRouter, hashed n-gram embedder
  embedding static                 the static embedder distilled from MiniLM (numpy only)
  embedding minilm, inline         all-MiniLM-L6-v2 (int8 ONNX), embedded on the loop
  embedding minilm, offload        the same in asyncio.to_thread (the minilm default)
  embedding minilm, cached repeat  a second pass over the same prompts (LRU hits)
  learned logistic hashing         LearnedRouter trained (logistic, hashing embedder) on
                                   the synthetic outcome table in tests/fixtures
  pretrained                       PretrainedRouter, the model shipped in the package
                                   (structure features; the heuristic on untrusted kinds);
                                   "defer off": the model decides every prompt

The uncached MiniLM rows run with the LRU cache off, so `--repeat N` measures each
prompt N times and keeps its best (filters preemption on a shared machine).
Prompts: the 805 of ../shared/data/prompts_alpacaeval.jsonl when present, else a
built-in list. Latency is wall time around `await router.decide(...)`; CPU is the
process's CPU time per decision; "loop stall" is the lateness of a 1 ms ticker task on
the same event loop over the first `--stall-prompts` prompts (what other requests wait);
"to cheap" is the share of prompts sent to the cheap tier. After the table: each
embedding router's p50 and p99 against MiniLM inline (the baseline, same run) and the
share of prompts on which it picks the same tier as MiniLM.

    .venv/bin/python bench/router_latency.py [--core N] [--limit N] [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tierwise.embeddings.cache import EmbeddingCache
from tierwise.errors import ConfigError
from tierwise.localmodels import LocalModelError
from tierwise.routing.base import Router
from tierwise.routing.embedding import EmbeddingRouter
from tierwise.routing.heuristic import HeuristicRouter
from tierwise.types import ChatRequest, Message

HERE = Path(__file__).resolve().parent
DEFAULT_PROMPTS = HERE.parent.parent / "shared" / "data" / "prompts_alpacaeval.jsonl"
TARGETS = ["cheap", "strong"]
BUILTIN = [
    "What are your hours?",
    "Hi there",
    "Thanks for your help",
    "How do I reset my password?",
    "Translate 'good morning' into French.",
    "Write a haiku about autumn leaves.",
    "Compare PostgreSQL and MongoDB for an event store and recommend one with tradeoffs.",
    "Debug this Python function and explain why it returns None for empty lists.",
    "Summarise the plot of Hamlet in three sentences.",
    "Design a rate limiter for a multi-region API gateway; discuss consistency.",
]


@dataclass(slots=True)
class Row:
    router: str
    latencies_ms: list[float]
    cpu_ms: float
    cheap_share: float
    stall_ms: list[float]
    targets: list[str]


Factory = Callable[[], Router]


def load_prompts(path: Path, limit: int | None) -> list[str]:
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            prompts = [json.loads(line)["prompt"] for line in fh if line.strip()]
    else:
        prompts = BUILTIN * 20
    return prompts[:limit] if limit else prompts


async def ticker(stop: asyncio.Event, lateness: list[float]) -> None:
    """Sleeps 1 ms at a time and records how late each wake-up was."""
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lateness.append(max(0.0, (time.perf_counter() - before) * 1000 - 1.0))


async def timed_pass(router: Router, requests: Sequence[ChatRequest], repeat: int) -> Row:
    """Latency (each prompt's best of `repeat` passes) and mean CPU per decision."""
    best = [float("inf")] * len(requests)
    targets = [""] * len(requests)
    cpu_start = time.process_time()
    for _ in range(repeat):
        for i, request in enumerate(requests):
            started = time.perf_counter()
            decision = await router.decide(request, TARGETS)
            best[i] = min(best[i], (time.perf_counter() - started) * 1000)
            targets[i] = decision.target
    cpu_ms = (time.process_time() - cpu_start) * 1000 / (len(requests) * repeat)
    cheap = targets.count("cheap") / len(requests)
    return Row(router.name, best, cpu_ms, cheap, [], targets)


async def stall_pass(router: Router, requests: Sequence[ChatRequest]) -> list[float]:
    """Lateness of a 1 ms ticker while the router decides `requests`, yielding to the
    loop between decisions as a request does."""
    stop, lateness = asyncio.Event(), list[float]()
    tick = asyncio.create_task(ticker(stop, lateness))
    await asyncio.sleep(0.005)
    lateness.clear()
    for request in requests:
        await router.decide(request, TARGETS)
        await asyncio.sleep(0)
    stop.set()
    await tick
    return lateness


async def ready(factory: Factory) -> Router:
    router = factory()
    if isinstance(router, EmbeddingRouter):
        router.warm_up()
        for i in range(5):
            await router.decide(ChatRequest([Message("user", f"warm-up {i}")]), TARGETS)
    return router


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def minilm_router(offload: bool, lru: bool) -> EmbeddingRouter:
    from tierwise.embeddings.minilm import MiniLMEmbedder

    embedder = MiniLMEmbedder(cache_size=4096 if lru else 0)
    return EmbeddingRouter(embedder, cache=EmbeddingCache(), offload=offload)


def learned_router() -> Router:
    """A logistic router on hashed embeddings, trained on the test fixture."""
    from tierwise.learning.outcomes import read_outcomes
    from tierwise.learning.store import make_embedder, save_router
    from tierwise.learning.train import train
    from tierwise.routing.learned import LearnedRouter

    fixture = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "outcomes_small.csv"
    path = Path(tempfile.mkdtemp(prefix="tw-router-")) / "router.npz"
    save_router(train(read_outcomes(fixture), "logistic", make_embedder("hashing")), path)
    models = {"cheap-model": "cheap", "strong-model": "strong"}
    return LearnedRouter.from_options(path=str(path), models=models, cost_weight=0.3)


def pretrained_router(defer: bool = True) -> Router:
    from tierwise.routing.pretrained import PretrainedRouter

    return PretrainedRouter(defer=defer)


def factories() -> list[tuple[str, Factory]]:
    out: list[tuple[str, Factory]] = [
        ("heuristic", HeuristicRouter),
        ("embedding hashing", lambda: EmbeddingRouter.from_options(embedder="hashing")),
        ("embedding static", lambda: EmbeddingRouter.from_options(embedder="static")),
        ("learned logistic hashing", learned_router),
        ("pretrained", pretrained_router),
        ("pretrained, defer off", lambda: pretrained_router(defer=False)),
    ]
    try:
        EmbeddingRouter.from_options(embedder="minilm").warm_up()
    except (ConfigError, LocalModelError) as exc:
        print(f"(MiniLM skipped: {exc})")
        return out
    out.append(("embedding minilm, inline", lambda: minilm_router(False, lru=False)))
    out.append(("embedding minilm, offload", lambda: minilm_router(True, lru=False)))
    out.append(("embedding minilm, cached repeat", lambda: minilm_router(True, lru=True)))
    return out


async def measure(prompts: Sequence[str], stall_prompts: int, repeat: int) -> list[Row]:
    requests = [ChatRequest([Message("user", p)]) for p in prompts]
    rows = []
    for name, factory in factories():
        router = await ready(factory)
        if name.endswith("cached repeat"):
            await timed_pass(router, requests, 1)
        row = await timed_pass(router, requests, repeat)
        row.router = name
        row.stall_ms = await stall_pass(router, requests[:stall_prompts])
        rows.append(row)
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| router | n | p50 ms | p90 ms | p99 ms | max ms | CPU ms/decision "
        "| loop stall p99 / max ms | to cheap |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lat, stall = r.latencies_ms, r.stall_ms
        lines.append(
            f"| {r.router} | {len(lat)} | {statistics.median(lat):.3f} "
            f"| {percentile(lat, 0.9):.3f} | {percentile(lat, 0.99):.3f} | {max(lat):.3f} "
            f"| {r.cpu_ms:.3f} | {percentile(stall, 0.99):.1f} / {max(stall, default=0):.1f} "
            f"| {r.cheap_share:.0%} |"
        )
    return "\n".join(lines)


def against_minilm(rows: Sequence[Row]) -> str:
    """p50 and p99 of each embedding router over MiniLM inline's, and decision agreement."""
    base = next((r for r in rows if r.router == "embedding minilm, inline"), None)
    if base is None:
        return "(no MiniLM row: no ratios)"
    lines = [
        "| router | p50 / MiniLM p50 | p99 / MiniLM p99 | same tier as MiniLM |",
        "|---|---:|---:|---:|",
    ]
    p50, p99 = statistics.median(base.latencies_ms), percentile(base.latencies_ms, 0.99)
    for r in rows:
        if r.router.startswith("embedding") and r is not base:
            same = sum(a == b for a, b in zip(r.targets, base.targets, strict=True))
            lines.append(
                f"| {r.router} | {statistics.median(r.latencies_ms) / p50:.4f} "
                f"| {percentile(r.latencies_ms, 0.99) / p99:.4f} "
                f"| {same / len(base.targets):.1%} |"
            )
    return "\n".join(lines)


def header(core: int, prompts: int, repeat: int) -> str:
    try:
        ort = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        ort = "absent"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, pinned to "
        f"core {core}; Python {platform.python_version()}, onnxruntime {ort}; "
        f"{prompts} prompts, latency best of {repeat} pass(es); load average at start {load}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--core", type=int, default=None, help="CPU to pin to (default: last)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N prompts")
    parser.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS)
    parser.add_argument("--stall-prompts", type=int, default=200, help="prompts per stall pass")
    parser.add_argument(
        "--repeat", type=int, default=1, help="passes; latency is each prompt's best"
    )
    args = parser.parse_args()
    core = args.core if args.core is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    prompts = load_prompts(args.prompts, args.limit)
    print(header(core, len(prompts), args.repeat))
    print()
    rows = asyncio.run(measure(prompts, args.stall_prompts, args.repeat))
    print(table(rows))
    print()
    print(against_minilm(rows))


if __name__ == "__main__":
    main()
