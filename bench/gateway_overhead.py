"""CPU time per request and throughput of tierwise's Gateway against a fake upstream.

Each client sends the same short chat request to the fake OpenAI-compatible upstream
(`tierwise.testing.FakeUpstream`), which runs in its own process on another core:

  raw aiohttp         pooled ClientSession, orjson body, orjson-parsed answer (baseline)
  raw aiohttp stream  the same request with `stream: true`, SSE lines parsed with orjson
  tierwise chat       Gateway.chat(): route `auto`, heuristic router, two tiers,
                      checks `empty` and `punt`, cost accounting and a record sink
  tierwise chat exploring  the same route exploring at random (share 0.05) with a
                      judge: the learning loop's request-path work (the exploring
                      router's draw and propensity, the caps, the grading draw);
                      grades are off the request path and not made here (no store)
  tierwise stream     Gateway.stream() on the same route, consumed to the end
  openai SDK          AsyncOpenAI(max_retries=0).chat.completions.create()
  litellm Router      Router.acompletion() with `openai/gpt-4o-mini` (--with-litellm;
                      runs in bench/.venv-litellm, created on first use)

CPU per request is the measuring process's CPU time (time.process_time, all threads)
over a cell of N requests, after a warm-up, divided by N. Rounds are interleaved across
clients; the table reports each client's lowest CPU and highest req/s over the rounds.

    .venv/bin/python bench/gateway_overhead.py [--with-litellm] [--write BENCHMARKS-table.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LITELLM_VENV = HERE / ".venv-litellm"
LITELLM_SPEC = "litellm==1.108.7"
MODEL = "gpt-4o-mini"
PROMPT = "What are your opening hours?"
BASELINE = "raw aiohttp"
CLIENTS = (
    "raw aiohttp",
    "raw aiohttp stream",
    "tierwise chat",
    "tierwise chat in an experiment",
    "tierwise chat exploring",
    "tierwise stream",
    "openai SDK",
)
LITELLM = "litellm Router"

CallFn = Callable[[], Awaitable[None]]
CloseFn = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Cell:
    client: str
    concurrency: int
    requests: int
    rps: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)


@dataclass(slots=True)
class Settings:
    requests: int
    rounds: int
    concurrency: list[int]
    warmup: int


def messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": PROMPT}]


def loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop], str]:
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop, "asyncio (uvloop not installed)"
    return uvloop.new_event_loop, f"uvloop {metadata.version('uvloop')}"


def run_async(main: Coroutine[Any, Any, Any]) -> Any:
    factory, _ = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def pin(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


async def raw_aiohttp(base: str) -> tuple[CallFn, CloseFn]:
    import aiohttp
    import orjson

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url, headers = base + "/v1/chat/completions", {"content-type": "application/json"}

    async def call() -> None:
        body = orjson.dumps({"model": MODEL, "messages": messages()})
        async with session.post(url, data=body, headers=headers) as response:
            answer = orjson.loads(await response.read())
        if response.status != 200 or not answer["choices"][0]["message"]["content"]:
            raise RuntimeError(f"raw aiohttp: unexpected answer {response.status}")

    return call, session.close


async def raw_aiohttp_stream(base: str) -> tuple[CallFn, CloseFn]:
    import aiohttp
    import orjson

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url, headers = base + "/v1/chat/completions", {"content-type": "application/json"}
    options = {"include_usage": True}

    async def call() -> None:
        payload = {
            "model": MODEL,
            "messages": messages(),
            "stream": True,
            "stream_options": options,
        }
        text: list[str] = []
        async with session.post(url, data=orjson.dumps(payload), headers=headers) as response:
            async for line in response.content:
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                for choice in orjson.loads(line[6:])["choices"]:
                    text.append(choice["delta"].get("content") or "")
        if not "".join(text):
            raise RuntimeError("raw aiohttp stream: empty answer")

    return call, session.close


def gateway_config(base: str) -> dict[str, Any]:
    v1 = base + "/v1"
    cheap, strong = {"input": "0.15", "output": "0.60"}, {"input": "2.50", "output": "10.00"}
    return {
        "deployments": {
            "mini": {"model": MODEL, "api_base": v1, "price": cheap},
            "big": {"model": "gpt-4o", "api_base": v1, "price": strong},
        },
        "tiers": {"cheap": ["mini"], "strong": ["big"]},
        "routes": {"auto": {"router": "heuristic", "checks": ["empty", "punt"]}},
    }


EXPERIMENT = {
    "route": "auto",
    "unit": "request",
    "control": "a",
    "variants": {"a": {}, "b": {"target": "auto"}},
}


EXPLORE = {"share": 0.05, "judge": "mini", "judge_share": 0.1}


def make_gateway(
    base: str, experiment: bool = False, explore: bool = False
) -> tuple[Any, Callable[[], Any]]:
    from tierwise import ChatRequest, Gateway, Message, RequestRecord, parse_config

    def account(record: RequestRecord) -> None:
        explored = record.decision is not None and record.decision.explored
        tier_ok = record.final_tier == "cheap" or (explore and explored)
        if record.status != "ok" or not tier_ok or not record.cost.total_usd:
            raise RuntimeError(f"tierwise: unexpected record {record}")
        if experiment and record.variant not in ("a", "b"):
            raise RuntimeError(f"tierwise: request outside the experiment {record}")

    config = gateway_config(base) | ({"experiments": {"ab": EXPERIMENT}} if experiment else {})
    if explore:
        config["routes"]["auto"]["explore"] = EXPLORE
    gateway = Gateway(parse_config(config), sinks=[account])
    return gateway, lambda: ChatRequest([Message("user", PROMPT)], model="auto")


async def tierwise_chat(
    base: str, experiment: bool = False, explore: bool = False
) -> tuple[CallFn, CloseFn]:
    gateway, request = make_gateway(base, experiment, explore)

    async def call() -> None:
        result = await gateway.chat(request())
        if not result.response.text():
            raise RuntimeError("tierwise chat: empty answer")

    return call, gateway.aclose


async def tierwise_stream(base: str) -> tuple[CallFn, CloseFn]:
    gateway, request = make_gateway(base)

    async def call() -> None:
        text: list[str] = []
        async with await gateway.stream(request()) as stream:
            async for delta in stream:
                text.append(delta.text)
        if not "".join(text):
            raise RuntimeError("tierwise stream: empty answer")

    return call, gateway.aclose


async def openai_sdk(base: str) -> tuple[CallFn, CloseFn]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base + "/v1", api_key="sk-bench", max_retries=0)

    async def call() -> None:
        response = await client.chat.completions.create(model=MODEL, messages=messages())  # type: ignore[arg-type]
        if not response.choices[0].message.content:
            raise RuntimeError("openai SDK: empty answer")

    return call, client.close


async def litellm_router(base: str) -> tuple[CallFn, CloseFn]:
    litellm: Any = importlib.import_module("litellm")
    litellm.suppress_debug_info = True
    params = {
        "model": "openai/" + MODEL,
        "api_base": base + "/v1",
        "api_key": "sk-bench",
        "max_retries": 0,
    }
    router = litellm.Router(
        model_list=[{"model_name": MODEL, "litellm_params": params}], num_retries=0
    )

    async def call() -> None:
        response = await router.acompletion(model=MODEL, messages=messages())
        if not response.choices[0].message.content:
            raise RuntimeError("litellm Router: empty answer")

    async def close() -> None:
        return None

    return call, close


FACTORIES: dict[str, Callable[[str], Awaitable[tuple[CallFn, CloseFn]]]] = {
    "raw aiohttp": raw_aiohttp,
    "raw aiohttp stream": raw_aiohttp_stream,
    "tierwise chat": tierwise_chat,
    "tierwise chat in an experiment": lambda base: tierwise_chat(base, experiment=True),
    "tierwise chat exploring": lambda base: tierwise_chat(base, explore=True),
    "tierwise stream": tierwise_stream,
    "openai SDK": openai_sdk,
    LITELLM: litellm_router,
}


async def drive(call: CallFn, concurrency: int, count: int, latencies: list[float]) -> None:
    left = [count]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(call: CallFn, cell: Cell, warmup: int) -> None:
    if warmup:
        await drive(call, cell.concurrency, warmup, [])
    gc.collect()
    latencies: list[float] = []
    cpu, wall = time.process_time(), time.perf_counter()
    await drive(call, cell.concurrency, cell.requests, latencies)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    cell.rps.append(cell.requests / wall)
    cell.cpu_ms.append(cpu / cell.requests * 1000)
    cell.latencies_ms.extend(latencies)


async def run_clients(names: Sequence[str], base: str, settings: Settings) -> list[Cell]:
    clients = {name: await FACTORIES[name](base) for name in names}
    cells = [Cell(n, c, settings.requests) for c in settings.concurrency for n in names]
    try:
        for concurrency in settings.concurrency:
            row = [cell for cell in cells if cell.concurrency == concurrency]
            warmup = max(settings.warmup, 2 * concurrency)
            for round_ in range(settings.rounds):
                for cell in row:
                    await measure(clients[cell.client][0], cell, 0 if round_ else warmup)
            print(f"  c={concurrency} done: {', '.join(names)}", file=sys.stderr, flush=True)
    finally:
        for _, close in clients.values():
            await close()
    return cells


async def serve_upstream() -> None:
    from tierwise.testing import FakeUpstream

    async with FakeUpstream(seed=1) as upstream:
        print(upstream.base_url, flush=True)
        while True:
            await asyncio.sleep(0.5)
            upstream.requests.clear()


def start_upstream(core: int | None) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--serve-upstream"]
    if core is not None:
        command += ["--pin", str(core)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    base = process.stdout.readline().strip()
    if not base.startswith("http://"):
        process.kill()
        raise RuntimeError("fake upstream did not start")
    return process, base


def importable(python: Path, module: str) -> bool:
    probe = [str(python), "-c", f"import {module}"]
    return (
        python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0
    )


def ensure_litellm_venv() -> Path:
    python = LITELLM_VENV / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if not importable(python, "litellm"):
        print(f"creating {LITELLM_VENV} with {LITELLM_SPEC}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        (LITELLM_VENV / ".gitignore").write_text("*\n")
        first = subprocess.run([*pip, LITELLM_SPEC], capture_output=True, text=True, check=False)
        if first.returncode != 0:
            print(f"{LITELLM_SPEC} failed; trying the newest litellm", file=sys.stderr, flush=True)
            subprocess.run([*pip, "litellm"], capture_output=True, text=True, check=True)
    uvloop = version("uvloop")
    if uvloop != "not installed" and not importable(python, "uvloop"):
        subprocess.run([*pip, f"uvloop=={uvloop}"], capture_output=True, check=False)
    return python


def litellm_python() -> tuple[Path | None, str]:
    try:
        return ensure_litellm_venv(), ""
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or "").strip().splitlines()[-3:]
        return None, f"installing litellm failed: {' / '.join(tail) or exc}"
    except OSError as exc:
        return None, f"creating {LITELLM_VENV.name} failed: {exc}"


def run_litellm(
    python: Path, base: str, settings: Settings, core: int | None
) -> tuple[list[Cell], str]:
    flags = {
        "--only": "litellm",
        "--upstream": base,
        "--requests": str(settings.requests),
        "--rounds": str(settings.rounds),
        "--concurrency": ",".join(map(str, settings.concurrency)),
        "--warmup": str(settings.warmup),
    }
    if core is not None:
        flags["--pin"] = str(core)
    command = [str(python), str(Path(__file__).resolve())]
    command += [part for pair in flags.items() for part in pair]
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr else "no output")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return [Cell(**cell) for cell in data["cells"]], data["version"]


def only_litellm(args: argparse.Namespace) -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    cells = run_async(run_clients([LITELLM], args.upstream, settings_of(args)))
    versions = f"litellm {version('litellm')}, event loop: {loop_factory()[1]}"
    out = {"cells": [asdict(cell) for cell in cells], "version": versions}
    print(json.dumps(out))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def table_rows(cells: list[Cell]) -> list[str]:
    base = {c.concurrency: c for c in cells if c.client == BASELINE}
    rows = []
    for cell in sorted(cells, key=lambda c: (c.concurrency, order_of(c.client))):
        ref = base.get(cell.concurrency)
        cpu = min(cell.cpu_ms)
        ratio = f"{cpu / min(ref.cpu_ms):.2f}x" if ref else "n/a"
        cols = [
            cell.client,
            str(cell.concurrency),
            f"{max(cell.rps):,.0f}",
            f"{cpu:.3f}",
            ratio,
            *latency_cols(cell, ref),
        ]
        rows.append("| " + " | ".join(cols) + " |")
    return rows


def latency_cols(cell: Cell, ref: Cell | None) -> list[str]:
    if cell.concurrency != 1:
        return ["", "", "", ""]
    p50, p99 = percentile(cell.latencies_ms, 0.5), percentile(cell.latencies_ms, 0.99)
    if ref is None:
        return [f"{p50:.2f}", f"{p99:.2f}", "n/a", "n/a"]
    r50, r99 = percentile(ref.latencies_ms, 0.5), percentile(ref.latencies_ms, 0.99)
    return [f"{p50:.2f}", f"{p99:.2f}", f"{p50 - r50:+.2f}", f"{p99 - r99:+.2f}"]


def order_of(client: str) -> int:
    return [*CLIENTS, LITELLM].index(client)


def render(cells: list[Cell], settings: Settings, notes: list[str]) -> str:
    header = [
        "| client | c | req/s | CPU ms/req | CPU vs raw | p50 ms | p99 ms | +p50 ms | +p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    intro = [
        f"Run {stamp}. N = {settings.requests:,} requests per cell and round, "
        f"{settings.rounds} interleaved rounds (best round shown: lowest CPU, highest req/s), "
        f"warm-up of max({settings.warmup}, 2*c) requests before a client's first round at each c.",
        "",
        *[f"- {note}" for note in notes],
        "",
    ]
    footer = [
        "",
        "c: concurrent asyncio tasks. CPU vs raw: CPU ms/req over raw aiohttp's (non-streaming) "
        "at the same c; for streaming, compare with `raw aiohttp stream`. Latency (c=1 only) "
        "pools all rounds; +p50/+p99: added over raw aiohttp.",
    ]
    return "\n".join([*intro, *header, *table_rows(cells), *footer]) + "\n"


def source_revision() -> str:
    git = ["git", "-C", str(HERE.parent)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
        clean = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "src"], check=False)
    except (OSError, subprocess.CalledProcessError):
        return "tierwise source: not a git checkout"
    dirty = "" if clean.returncode == 0 else " plus uncommitted changes in src/"
    return f"tierwise source: commit {head.stdout.strip()}{dirty}"


def environment_notes(client_core: int | None, upstream_core: int | None) -> list[str]:
    _, loop = loop_factory()
    pinning = "no pinning (fewer than 2 usable cores)"
    if client_core is not None:
        pinning = f"measuring process on CPU {client_core}, fake upstream on CPU {upstream_core}"
    return [
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPU(s) ({platform.processor() or platform.machine()}); {pinning}; "
        f"event loop: {loop}",
        f"aiohttp {version('aiohttp')}, openai {version('openai')}, tierwise {version('tierwise')}",
        source_revision(),
    ]


def settings_of(args: argparse.Namespace) -> Settings:
    levels = [int(c) for c in str(args.concurrency).split(",")]
    return Settings(args.requests, args.rounds, levels, args.warmup)


def choose_cores() -> tuple[int | None, int | None]:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return cores[0], cores[1]


def load_note(when: str) -> str:
    one, five, _ = os.getloadavg()
    return f"load average {when}: {one:.2f} (1 min), {five:.2f} (5 min)"


def litellm_cells(
    python: Path | None, why: str, base: str, settings: Settings, core: int | None
) -> tuple[list[Cell], str]:
    if python is None:
        return [], f"litellm not measured: {why}"
    try:
        cells, versions = run_litellm(python, base, settings, core)
    except (RuntimeError, ValueError) as exc:
        return [], f"litellm not measured: its run failed: {exc}"
    return cells, f"{versions}; in bench/{LITELLM_VENV.name}, same pinning"


def full_run(args: argparse.Namespace) -> str:
    settings = settings_of(args)
    python, why = litellm_python() if args.with_litellm else (None, "pass --with-litellm")
    client_core, upstream_core = choose_cores()
    pin(client_core)
    upstream, base = start_upstream(upstream_core)
    notes = [*environment_notes(client_core, upstream_core), load_note("at start")]
    names = [n.strip() for n in args.clients.split(",")] if args.clients else list(CLIENTS)
    try:
        cells = run_async(run_clients(names, base, settings))
        extra, note = litellm_cells(python, why, base, settings, client_core)
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)
    notes += [note, load_note("at end")]
    return render(cells + extra, settings, notes)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200, help="N per cell and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated levels")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--clients", help=f"comma-separated subset of: {', '.join(CLIENTS)}")
    parser.add_argument("--with-litellm", action="store_true")
    parser.add_argument("--write", type=Path, help="also write the table to this file")
    parser.add_argument("--only", choices=["litellm"], help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--pin", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    pin(args.pin)
    if args.serve_upstream:
        run_async(serve_upstream())
    elif args.only == "litellm":
        only_litellm(args)
    else:
        table = full_run(args)
        print(table, end="")
        if args.write:
            args.write.write_text(table)


if __name__ == "__main__":
    main()
