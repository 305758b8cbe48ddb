"""CPU per proxied request, throughput and added latency of the tierwise gateway
server against the LiteLLM proxy and a direct call, measured in one run.

The gateway under test runs alone on CPU 0; `wrk` and a lean upstream
(`bench/lean_upstream.py`) share CPU 1. CPU per request is the gateway process's
user + system time (children included) over the requests `wrk` completed.
tierwise runs with routing, checks, metrics and its SQLite request log on.

    .venv/bin/python bench/proxy_overhead.py [--with-litellm] [--seconds 8] [--write FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LITELLM = HERE / ".venv-litellm" / "bin" / "litellm"
UPSTREAM_PORT, TIERWISE_PORT, LITELLM_PORT = 18099, 18080, 18090
PROMPT = "What are your opening hours?"
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Target:
    name: str
    url: str
    model: str
    headers: dict[str, str]
    pid: int | None


@dataclass(slots=True)
class Row:
    target: str
    mode: str
    concurrency: int
    requests: int
    rps: float
    cpu_ms: float | None
    p50_ms: float
    p99_ms: float


def free_port_or(port: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return port
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime + cutime + cstime) / TICKS


def wait_http(url: str, limit_s: float = 90.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def lua_script(directory: Path, target: Target, stream: bool) -> Path:
    body = {"model": target.model, "messages": [{"role": "user", "content": PROMPT}]}
    if stream:
        body["stream"] = True
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(json.dumps(body))}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in target.headers.items()]
    path = directory / f"{target.name.replace(' ', '_')}_{int(stream)}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def run_wrk(
    script: Path, url: str, concurrency: int, seconds: float
) -> tuple[int, float, dict[str, float]]:
    command = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    latency = {p: float(v) * scale[u] for p, v, u in LATENCY.findall(out)}
    return total, rps, latency


def measure(target: Target, script: Path, stream: bool, concurrency: int, seconds: float) -> Row:
    url = target.url + "/v1/chat/completions"
    run_wrk(script, url, concurrency, min(2.0, seconds))
    before = cpu_seconds(target.pid) if target.pid else 0.0
    total, rps, latency = run_wrk(script, url, concurrency, seconds)
    cpu = (cpu_seconds(target.pid) - before) * 1000 / total if target.pid and total else None
    return Row(
        target.name,
        "stream" if stream else "plain",
        concurrency,
        total,
        rps,
        cpu,
        latency.get("50", 0.0),
        latency.get("99", 0.0),
    )


def start(command: list[str], cpu: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        ["taskset", "-c", cpu, *command], stdout=handle, stderr=subprocess.STDOUT, env=env
    )


def start_tierwise(
    directory: Path, upstream: str, log: bool = True, port: int = TIERWISE_PORT
) -> tuple[subprocess.Popen[bytes], Target]:
    name = "tierwise" if log else "tierwise, no log"
    config = directory / f"{name.replace(' ', '_').replace(',', '')}.yaml"
    store = f'{{url: "sqlite:///{directory / "requests.db"}"}}' if log else "{enabled: false}"
    config.write_text(f"""
deployments:
  mini: {{model: gpt-4o-mini, api_base: "{upstream}/v1"}}
  big: {{model: gpt-4o, api_base: "{upstream}/v1"}}
tiers: {{cheap: [mini], strong: [big]}}
routes:
  auto: {{router: heuristic, baseline: big, checks: [empty, punt]}}
store: {store}
""")
    port = free_port_or(port)
    command = [
        sys.executable,
        "-m",
        "tierwise",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
    ]
    process = start(command, "0", dict(os.environ), directory / f"{config.stem}.log")
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health")
    return process, Target(name, url, "auto", {}, process.pid)


def start_tierwise_unlogged(
    directory: Path, upstream: str
) -> tuple[subprocess.Popen[bytes], Target]:
    return start_tierwise(directory, upstream, log=False, port=TIERWISE_PORT + 1)


def start_litellm(directory: Path, upstream: str) -> tuple[subprocess.Popen[bytes], Target]:
    config = directory / "litellm.yaml"
    config.write_text(f"""
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "{upstream}/v1", api_key: sk-fake}}
general_settings: {{master_key: sk-bench}}
""")
    port = free_port_or(LITELLM_PORT)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    command = [str(LITELLM), "--config", str(config), "--port", str(port), "--num_workers", "1"]
    process = start(command, "0", env, directory / "litellm.log")
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer sk-bench"}
    wait_http(url + "/health/liveliness", 180, auth)
    return process, Target("litellm proxy", url, "gpt-4o-mini", auth, process.pid)


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def table(rows: list[Row]) -> str:
    base = {(r.mode, r.concurrency): r for r in rows if r.target == "direct"}
    lines = [
        "| target | mode | c | req/s | CPU ms/req | +p50 ms | +p99 ms |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ref = base.get((r.mode, r.concurrency))
        cpu = f"{r.cpu_ms:.3f}" if r.cpu_ms is not None else "-"
        added = (
            f"{r.p50_ms - ref.p50_ms:+.2f} | {r.p99_ms - ref.p99_ms:+.2f}"
            if ref and r.target != "direct" and r.concurrency == 1
            else " | "
        )
        lines.append(
            f"| {r.target} | {r.mode} | {r.concurrency} | {r.rps:,.0f} | {cpu} | {added} |"
        )
    return "\n".join(lines)


Starter = Callable[[Path, str], tuple["subprocess.Popen[bytes]", Target]]


@contextlib.contextmanager
def serving(prefix: str, starters: list[Starter]) -> Iterator[tuple[Path, list[Target]]]:
    """The lean upstream (as the `direct` target) and one server per starter,
    stopped on exit."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port_or(UPSTREAM_PORT)
    upstream = f"http://127.0.0.1:{port}"
    command = [sys.executable, str(HERE / "lean_upstream.py"), "--port", str(port)]
    processes = [start(command, "1", dict(os.environ), directory / "upstream.log")]
    try:
        wait_http(upstream + "/v1/models", 30)
        targets = [Target("direct", upstream, "gpt-4o-mini", {}, None)]
        for starter in starters:
            process, target = starter(directory, upstream)
            processes.append(process)
            targets.append(target)
        yield directory, targets
    finally:
        stop_all(processes)


def run(args: argparse.Namespace) -> str:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is required: apt-get install wrk")
    starters: list[Starter] = [start_tierwise, start_tierwise_unlogged]
    if args.with_litellm:
        starters.append(start_litellm)
    with serving("tw-proxy-bench-", starters) as (directory, targets):
        rows = [
            measure(t, lua_script(directory, t, stream), stream, c, args.seconds)
            for stream in (False, True)
            for c in args.concurrency
            for t in targets
        ]
    header = (
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{args.seconds:g} s per cell after a 2 s warm-up; gateway on CPU 0, wrk and the "
        f"lean upstream on CPU 1; load average {os.getloadavg()[0]:.2f}."
    )
    return header + "\n\n" + table(rows) + "\n"


def log_ab(rounds: int, seconds: float, concurrency: int) -> str:
    """tierwise with and without its request log, alternating, `rounds` times each."""
    cells: dict[str, list[Row]] = {}
    with serving("tw-log-ab-", [start_tierwise, start_tierwise_unlogged]) as (directory, all_):
        targets = all_[1:]
        for index in range(rounds * 2):
            target = targets[(index + index // 2) % 2]
            row = measure(target, lua_script(directory, target, False), False, concurrency, seconds)
            cells.setdefault(target.name, []).append(row)
    return _ab_table(cells, concurrency)


def _ab_table(cells: dict[str, list[Row]], concurrency: int) -> str:
    lines = [
        f"c = {concurrency}, load average {os.getloadavg()[0]:.2f}",
        "",
        "| target | CPU ms/req per round | median | req/s per round |",
        "|---|---|---:|---|",
    ]
    for name, rows in cells.items():
        median = statistics.median(r.cpu_ms or 0.0 for r in rows)
        lines.append(
            f"| {name} | {', '.join(f'{r.cpu_ms:.3f}' for r in rows)} | {median:.3f} "
            f"| {', '.join(f'{r.rps:,.0f}' for r in rows)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--with-litellm", action="store_true")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--write", type=Path)
    parser.add_argument(
        "--log-ab",
        type=int,
        metavar="ROUNDS",
        help="only compare the request log on and off, alternating",
    )
    args = parser.parse_args()
    if args.log_ab:
        report = log_ab(args.log_ab, args.seconds, args.concurrency[-1])
        print(report)
        if args.write:
            args.write.write_text(report)
        return
    if args.with_litellm and not LITELLM.exists():
        raise SystemExit(
            f"{LITELLM} is missing: python3 -m venv bench/.venv-litellm && "
            "bench/.venv-litellm/bin/pip install 'litellm[proxy]==1.108.7'"
        )
    report = run(args)
    print(report)
    if args.write:
        args.write.write_text(report)


if __name__ == "__main__":
    main()
