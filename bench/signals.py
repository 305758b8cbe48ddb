"""Signals that transfer across prompt sources: leave-one-benchmark-out on RouterBench
(routerbench_train.csv + routerbench_train_responses.csv: ARC-Challenge, Winogrande,
MBPP).

A two-step cascade: Mixtral-8x7B answers; a signal decides whether to keep its answer
or escalate to GPT-4. Signals, per prompt:

- structure: the `structure` embedder's 13 prompt-form features (a prompt-only signal);
- agreement: whether Mistral-7B's recorded answer normalises to the same answer as
  Mixtral's (`tierwise.checks.normalise`): a proxy for two samples of the cheap model;
  Mistral's cost is paid on every prompt when it is used;
- judge: Qwen2.5-0.5B's P("Yes") that Mixtral's answer is correct (the `judge` check);
- confidence: Qwen2.5-0.5B's probability of the option label Mixtral's answer names
  (multiple-choice prompts; none on code prompts, where it is imputed).

Each signal set is fitted (logistic regression on "cheap answer wrong") on two
benchmarks and applied once to the third. Reported on the held-out benchmark: AUROC of
predicting a wrong cheap answer, GPT-4's cost share at 95% of its accuracy on the
held-out curve, and the operating point of the threshold chosen on the training
benchmarks; 95% bootstrap intervals over held-out prompts. The local model scores a
fixed-seed sample and are cached in ~/.cache/tierwise/signals/ (rerun: instant).

    nice .venv/bin/python bench/signals.py [--data DIR] [--per-benchmark 120,120,80]
        [--score] [--resamples 1000] [--all-prompts]

Without `--score`, only cached prompts of the sample are evaluated.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.evaluation.answers import read_answers
from tierwise.evaluation.signal_scores import Item, cache_dir, load_cache, score_all
from tierwise.evaluation.signals import Problem, SignalSet, evaluate_all, markdown, sample_rows
from tierwise.learning.outcomes import OutcomeTable, read_outcomes

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
TABLE, ANSWERS = "routerbench_train.csv", "routerbench_train_responses.csv"
CHEAP, SECOND, STRONG = "mixtral-8x7b-chat", "mistral-7b-chat", "gpt-4-1106-preview"
JUDGE = "qwen2.5-0.5b"
BENCHMARKS = ("routerbench/arc-challenge", "routerbench/winogrande", "routerbench/mbpp")
SETS = (
    SignalSet("structure (prompt-only router)", ("structure",), router=True),
    SignalSet("structure", ("structure",)),
    SignalSet("agreement", ("agreement",)),
    SignalSet("judge", ("judge",)),
    SignalSet("confidence", ("confidence",)),
    SignalSet("judge + confidence", ("judge", "confidence")),
    SignalSet("agreement + judge + confidence", ("agreement", "judge", "confidence")),
    SignalSet("all four", ("structure", "agreement", "judge", "confidence")),
)
FREE = (
    SignalSet("structure (prompt-only router)", ("structure",), router=True),
    SignalSet("agreement", ("agreement",)),
    SignalSet("structure + agreement", ("structure", "agreement")),
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    table = read_outcomes(args.data / TABLE)
    answers = read_answers(args.data / ANSWERS, table.prompt_ids, table.models)
    sizes = dict(zip(BENCHMARKS, (int(n) for n in args.per_benchmark.split(",")), strict=True))
    rows = sample_rows(table, answers, (CHEAP, SECOND, STRONG), sizes, seed=args.seed)
    cheap = answers.models.index(CHEAP)
    items = [Item(table.prompt_ids[i], table.texts[i], answers.texts[i][cheap]) for i in rows]
    path = cache_dir() / f"{JUDGE}__{CHEAP}.jsonl"
    scores = asyncio.run(_score(items, path)) if args.score else load_cache(path)
    rows = np.array([i for i in rows if table.prompt_ids[i] in scores], dtype=np.intp)
    log(f"{len(rows)} prompts with local-model scores (cache {path})")
    problem = Problem.build(table, answers, rows, scores, (CHEAP, SECOND, STRONG))
    started = time.perf_counter()
    results = evaluate_all(problem, SETS, resamples=args.resamples, seed=args.seed)
    log(f"evaluated in {time.perf_counter() - started:.1f}s")
    print(markdown(problem, results))
    if args.all_prompts:
        everything = sample_rows(table, answers, (CHEAP, SECOND, STRONG), _all(table), args.seed)
        free = Problem.build(table, answers, everything, {}, (CHEAP, SECOND, STRONG))
        print("\nSignals without a local model, every prompt:\n")
        print(markdown(free, evaluate_all(free, FREE, resamples=args.resamples, seed=args.seed)))


def _all(table: OutcomeTable) -> dict[str, int]:
    return {b: len(table) for b in BENCHMARKS}


async def _score(items: Sequence[Item], path: Path) -> dict[str, dict[str, Any]]:
    from tierwise.localmodels import LOCAL_MODELS, resolve_model_file
    from tierwise.providers.llamacpp import LocalModelServer

    cached = load_cache(path)
    if all(item.prompt_id in cached for item in items):
        return cached
    model = resolve_model_file(LOCAL_MODELS[JUDGE])
    async with LocalModelServer(model, context_window=4096, parallel=1, threads=2) as server:
        return await score_all(server.base_url, items, path, log)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-benchmark", default="120,120,80", help="ARC,Winogrande,MBPP")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--score", action="store_true", help="run the local model")
    parser.add_argument(
        "--all-prompts", action="store_true", help="also signals without a local model, all prompts"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
