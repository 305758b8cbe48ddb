"""Replay a cascade chosen on RouterBench through the real gateway and compare every
decision with the offline evaluation.

The table is split by prompt text (5 folds, seed 0): folds 1-4 are the training table,
fold 0 the test table (both written to a temporary folder, never into the project).
`tierwise eval-cascade TEST --train TRAIN --write-route` chooses the policy for 95% of
GPT-4's accuracy on the training table. The gateway server then runs the written route
in front of the fake upstream, which answers each prompt with each model's recorded
answer and reports output tokens pricing to the table's cost (rounded to a nano-dollar:
the table's cells are binary floats); the openai SDK sends each test prompt. Printed:
prompts whose served model or models called (in order) differ from decisions.csv, and
the largest cost difference.

    .venv/bin/python bench/cascade_replay.py [--data DIR] [--target 0.95]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import yaml
from typer.testing import CliRunner

from tierwise.cli import app
from tierwise.config import parse_config
from tierwise.evaluation.answers import read_answers
from tierwise.learning.outcomes import read_outcomes
from tierwise.learning.train import fold_indices
from tierwise.server.run import running
from tierwise.testing import FakeUpstream

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
TABLE, ANSWERS = "routerbench_train.csv", "routerbench_train_responses.csv"
TOKEN_USD = Decimal("1e-9")
PRICE = {"input": "0", "output": "0.001"}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--target", type=float, default=0.95)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        train, test = split(args.data / TABLE, work)
        out = work / "eval"
        cli = ["eval-cascade", str(test), "--train", str(train), "--answers"]
        cli += [str(args.data / ANSWERS), "--out", str(out), "--target", str(args.target)]
        cli += ["--strong", "gpt-4-1106-preview", "--write-route", str(work / "route.yaml")]
        cli += ["--route-target", str(args.target)]
        result = CliRunner().invoke(app, cli)
        if result.exit_code:
            sys.exit(result.output)
        asyncio.run(compare(test, args.data / ANSWERS, out, work / "route.yaml", args.target))


def split(path: Path, work: Path) -> tuple[Path, Path]:
    """Training (folds 1-4) and test (fold 0) tables with the original columns."""
    csv.field_size_limit(sys.maxsize)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), list(reader)
    train, test = fold_indices(read_outcomes(path), 5, 0)[0]
    paths = (work / "train.csv", work / "test.csv")
    for target, index in zip(paths, (train, test), strict=True):
        with target.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, header)
            writer.writeheader()
            writer.writerows(rows[i] for i in index.tolist())
    return paths


async def compare(test: Path, answers: Path, out: Path, route: Path, target: float) -> None:
    table = read_outcomes(test)
    texts = read_answers(answers, table.prompt_ids, table.models)
    with out.joinpath("decisions.csv").open(newline="") as handle:
        label = f"target {target:g}"
        rows = {r["prompt_id"]: r for r in csv.DictReader(handle) if r["point"] == label}
    async with FakeUpstream(models=table.models) as fake:
        nano: dict[tuple[str, str], int] = {}
        for i, pid in enumerate(table.prompt_ids):
            for j, model in enumerate(table.models):
                tokens = round(Decimal(repr(float(table.costs[i, j]))) / TOKEN_USD)
                nano[(pid, model)] = tokens
                fake.script(model, table.texts[i], texts.texts[i][j], prompt_tokens=0,
                            completion_tokens=tokens)  # fmt: skip
        config = parse_config(gateway_data(yaml.safe_load(route.read_text()), fake, table.models))
        got = await replay(fake, config, table.prompt_ids, table.texts, rows)
    summarise(got, rows, nano)


def gateway_data(route: dict[str, Any], fake: FakeUpstream, models: Sequence[str]) -> Any:
    deployments = {
        m: {"model": m, "api_base": fake.base_url + "/v1", "price": PRICE} for m in models
    }
    return {**route, "deployments": deployments, "store": {"enabled": False}}


async def replay(
    fake: FakeUpstream,
    config: Any,
    ids: Sequence[str],
    texts: Sequence[str],
    rows: dict[str, dict[str, str]],
) -> dict[str, tuple[str, list[str], Decimal]]:
    out = {}
    async with running(config) as live:
        url = live.base_url + "/v1"
        async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
            for pid, text in zip(ids, texts, strict=True):
                if pid not in rows:
                    continue
                before = len(fake.requests)
                raw = await client.chat.completions.with_raw_response.create(
                    model="cascade", messages=[{"role": "user", "content": text}]
                )
                called = [r.model or "" for r in fake.requests[before:]]
                cost = Decimal(raw.headers["x-tierwise-cost-usd"])
                out[pid] = (raw.headers["x-tierwise-model"], called, cost)
    return out


def summarise(
    got: dict[str, tuple[str, list[str], Decimal]],
    rows: dict[str, dict[str, str]],
    nano: dict[tuple[str, str], int],
) -> None:
    served = sum(got[p][0] != r["model"] for p, r in rows.items())
    called = sum(got[p][1] != r["called"].split("+") for p, r in rows.items())
    exact = sum(
        got[p][2] != sum(nano[(p, m)] for m in r["called"].split("+")) * TOKEN_USD
        for p, r in rows.items()
    )
    worst = max(abs(float(got[p][2]) - float(r["cost"])) for p, r in rows.items())
    total = sum(float(r["cost"]) for r in rows.values())
    paid = sum(float(v[2]) for v in got.values())
    print(f"{len(rows)} test prompts replayed through the gateway")
    print(f"served model differs: {served}; models called (in order) differ: {called}")
    print(f"cost differs from the sum of the called models' nano-dollar costs: {exact}")
    print(f"largest |gateway - offline| cost per prompt: {worst:.2e} USD")
    print(f"total cost: gateway {paid:.6f} USD, offline {total:.6f} USD")


if __name__ == "__main__":
    main()
