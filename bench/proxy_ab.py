"""CPU per proxied request of `tierwise serve` from two source trees, alternating
under the same `wrk` load: a before/after check of a change on the request path.

Uses `bench/proxy_overhead.py`'s lean upstream, servers and measurement (request
log off, one worker each on CPU 0). Rounds alternate A B B A A B ..., so drift on a
shared machine hits both alike; the table gives every round and the median.

    git worktree add /tmp/tw-before HEAD~1   # or any other tree to compare with
    .venv/bin/python bench/proxy_ab.py /tmp/tw-before/src src --rounds 5 --seconds 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path

import proxy_overhead as po  # bench/ is on the path when this script runs

Started = tuple[subprocess.Popen[bytes], po.Target]


def starter(src: Path, name: str, port: int) -> Callable[[Path, str], Started]:
    def start(directory: Path, upstream: str) -> Started:
        os.environ["PYTHONPATH"] = str(src.resolve())
        try:
            process, target = po.start_tierwise(directory, upstream, log=False, port=port)
        finally:
            os.environ.pop("PYTHONPATH", None)
        target.name = name
        return process, target

    return start


def run(args: argparse.Namespace) -> str:
    starters = [starter(args.before, "before", 18081), starter(args.after, "after", 18082)]
    lines = ["| tree | mode | c | CPU ms/req per round | median | median req/s |"]
    lines.append("|---|---|---:|---|---:|---:|")
    ratios = []
    with po.serving("tw-ab-", starters) as (directory, targets):
        pair = targets[1:]
        for stream in (False, True):
            cells: dict[str, list[po.Row]] = {"before": [], "after": []}
            for index in range(args.rounds * 2):
                target = pair[(index + index // 2) % 2]
                script = po.lua_script(directory, target, stream)
                row = po.measure(target, script, stream, args.concurrency, args.seconds)
                cells[target.name].append(row)
            mode = "stream" if stream else "plain"
            medians = {}
            for name, rows in cells.items():
                cpu = [r.cpu_ms or 0.0 for r in rows]
                medians[name] = statistics.median(cpu)
                rps = statistics.median(r.rps for r in rows)
                rounds = ", ".join(f"{c:.3f}" for c in cpu)
                lines.append(
                    f"| {name} | {mode} | {args.concurrency} | {rounds} "
                    f"| {medians[name]:.3f} | {rps:,.0f} |"
                )
            ratios.append(f"{mode} {medians['after'] / medians['before']:.3f}")
    lines += ["", f"after/before CPU: {', '.join(ratios)}; load {os.getloadavg()[0]:.2f}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("before", type=Path, help="a source tree (its `src` directory)")
    parser.add_argument("after", type=Path, help="another source tree")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--concurrency", type=int, default=16)
    print(run(parser.parse_args()))


if __name__ == "__main__":
    main()
