"""A real cheap model's own confidence signals on multiple-choice prompts, and whether
they transfer from one benchmark to another (RouterBench ARC-Challenge and Winogrande,
`routerbench_train.csv`; MBPP is skipped: its answers have no option label).

A local model of the embedded default (Qwen2.5-0.5B, SmolLM2-135M) answers each prompt
through a `Gateway` on the embedded default config, by deployment name, with logprobs
requested as the `confidence: logprob` check asks for them:

- once at temperature 0 (`--max-tokens`, default 8): the answer served. It is
  normalised to an option label (`tierwise.checks.normalise`) and compared with the gold
  label. Its confidence is `LogprobConfidence` (exp of the mean token logprob of the
  answer), the value the gateway computes; the probability of the first token is
  reported next to it;
- twice more at `--temperature` (default 0.7), each with its own seed: "two cheap
  samples agree" when both name the same option.

Gold labels come from `routerbench_train_responses.csv`: the normalised answer of every
model that scored 1 on the prompt. Prompts where none normalises, or where they name
different options, are dropped. A seeded sample of `--per-benchmark` prompts is drawn
per benchmark.

Reported per model and benchmark: accuracy of the temperature-0 answer; AUROC of each
signal for "the answer is correct" (ties count half, so agreement is a binary signal);
95% bootstrap intervals over prompts (`--resamples`, seeded). Transfer, for each
ordered pair of benchmarks: on benchmark A, the threshold that accepts the largest share
of answers whose accuracy is at least A's accuracy + 10 points (capped at 100%);
applied unchanged to benchmark B, its accepted share and accepted accuracy on B (with
intervals over B's prompts), next to B's own target and the share B's own threshold
would accept.

Answers are cached in OUT/answers__MODEL.jsonl, so a rerun only asks what is missing.

    .venv/bin/python bench/local_confidence.py --per-benchmark 250 --out /tmp/lc
        [--models qwen2.5-0.5b,smollm2-135m] [--data DIR] [--seed 0] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise import ChatRequest, Gateway, Message
from tierwise.checks.base import AnswerView
from tierwise.checks.confidence import LogprobConfidence
from tierwise.checks.normalise import normalise_choice, options
from tierwise.defaults import embedded_config
from tierwise.evaluation.answers import AnswerTable, read_answers
from tierwise.evaluation.signals import auroc
from tierwise.learning.outcomes import OutcomeTable, read_outcomes
from tierwise.types import ChatResponse

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
TABLE, ANSWERS = "routerbench_train.csv", "routerbench_train_responses.csv"
BENCHMARKS = ("routerbench/arc-challenge", "routerbench/winogrande")
SIGNALS = {
    "confidence": "logprob confidence (gateway)",
    "first": "first-token probability",
    "agree": "two samples agree",
}
MARGIN = 0.10

Vector = npt.NDArray[np.float64]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One sampled prompt with its gold option label."""

    prompt_id: str
    benchmark: str
    text: str
    gold: str


def gold_labels(table: OutcomeTable, answers: AnswerTable) -> tuple[dict[int, str], int, int]:
    """Gold option label by row of the benchmarks used: the normalised answer of every
    model that scored 1. Also counts rows without one and rows whose models disagree."""
    cols = [answers.models.index(m) for m in table.models]
    gold: dict[int, str] = {}
    missing = conflicting = 0
    for i in range(len(table)):
        if table.sources[i] not in BENCHMARKS:
            continue
        labels = options(table.texts[i])
        named = {
            normalise_choice(answers.texts[i][c], labels)
            for j, c in enumerate(cols)
            if table.scores[i, j] == 1.0
        } - {None}
        if not named:
            missing += 1
        elif len(named) > 1:
            conflicting += 1
        else:
            gold[i] = str(named.pop())
    return gold, missing, conflicting


def sample(table: OutcomeTable, gold: dict[int, str], size: int, seed: int) -> list[Prompt]:
    """Up to `size` prompts with a gold label per benchmark, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    out: list[Prompt] = []
    for benchmark in BENCHMARKS:
        pool = [i for i in sorted(gold) if table.sources[i] == benchmark]
        for k in rng.permutation(len(pool))[:size]:
            i = pool[int(k)]
            out.append(Prompt(table.prompt_ids[i], benchmark, table.texts[i], gold[i]))
    return out


def first_token_probability(response: ChatResponse) -> float | None:
    tokens = response.choices[0].logprobs if response.choices else None
    return math.exp(tokens[0].logprob) if tokens else None


async def ask(
    gateway: Gateway, model: str, prompt: Prompt, args: argparse.Namespace
) -> dict[str, Any]:
    """The temperature-0 answer with its confidences, and two seeded samples."""
    labels = options(prompt.text)
    messages = [Message("user", prompt.text)]
    greedy = ChatRequest(
        messages, model=model, max_tokens=args.max_tokens, temperature=0.0, logprobs=True
    )
    answer = (await gateway.chat(greedy)).response
    row: dict[str, Any] = {
        "id": prompt.prompt_id,
        "benchmark": prompt.benchmark,
        "gold": prompt.gold,
        "text": answer.text(),
        "label": normalise_choice(answer.text(), labels),
        "confidence": LogprobConfidence().confidence(AnswerView(greedy, answer, deployment=model)),
        "first": first_token_probability(answer),
    }
    for k in (1, 2):
        seed = zlib.crc32(f"{args.seed}:{prompt.prompt_id}:{k}".encode())
        sampled = greedy.with_changes(
            temperature=args.temperature, logprobs=False, extra={"seed": seed}
        )
        text = (await gateway.chat(sampled)).response.text()
        row[f"sample{k}"] = text
        row[f"label{k}"] = normalise_choice(text, labels)
    return row


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_tokens": args.max_tokens, "temperature": args.temperature, "seed": args.seed}


def load_cache(path: Path, wanted: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Cached rows by prompt id that were asked with the same settings."""
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return {r["id"]: r for r in rows if r.get("settings") == wanted}


async def ask_all(
    model: str, prompts: Sequence[Prompt], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every prompt's row for `model`, from the cache or asked now (and appended)."""
    path = args.out / f"answers__{model}.jsonl"
    wanted = settings(args)
    found = load_cache(path, wanted)
    todo = [p for p in prompts if p.prompt_id not in found]
    log(f"{model}: {len(prompts) - len(todo)} cached, {len(todo)} to ask")
    if todo:
        started = time.perf_counter()
        async with Gateway(embedded_config()) as gateway:
            with path.open("a", encoding="utf-8") as sink:
                for n, prompt in enumerate(todo, 1):
                    row = await ask(gateway, model, prompt, args)
                    row["settings"] = wanted
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
                    found[prompt.prompt_id] = row
                    if n % 25 == 0 or n == len(todo):
                        spent = time.perf_counter() - started
                        log(f"{model}: {n}/{len(todo)} in {spent:.0f}s")
    return [found[p.prompt_id] for p in prompts]


@dataclass(frozen=True, slots=True)
class Scored:
    """One model on one benchmark: correctness and each signal per prompt."""

    correct: Vector
    signals: dict[str, Vector]
    parsed: float
    commonest: tuple[str, float]


def scored(rows: Sequence[dict[str, Any]]) -> Scored:
    def value(v: object) -> float:
        return float("nan") if v is None else float(str(v))

    agree = [r["label1"] is not None and r["label1"] == r["label2"] for r in rows]
    labels = Counter(r["label"] for r in rows if r["label"] is not None)
    label, count = labels.most_common(1)[0] if labels else ("none", 0)
    return Scored(
        correct=np.array([r["label"] == r["gold"] for r in rows], dtype=np.float64),
        signals={
            "confidence": np.array([value(r["confidence"]) for r in rows]),
            "first": np.array([value(r["first"]) for r in rows]),
            "agree": np.array(agree, dtype=np.float64),
        },
        parsed=float(np.mean([r["label"] is not None for r in rows])),
        commonest=(label, count / len(rows)),
    )


def bootstrap(
    n: int, statistic: Callable[[npt.NDArray[np.intp]], float], resamples: int, seed: int
) -> tuple[float, float, float]:
    """The statistic on all n items, and the 2.5/97.5 percentiles over resamples."""
    rng = np.random.default_rng(seed)
    everything = np.arange(n, dtype=np.intp)
    values = np.array([statistic(rng.choice(everything, n)) for _ in range(resamples)])
    values = values[~np.isnan(values)]
    low, high = np.percentile(values, [2.5, 97.5]) if len(values) else (math.nan, math.nan)
    return statistic(everything), float(low), float(high)


def accuracy(s: Scored, idx: npt.NDArray[np.intp]) -> float:
    return float(s.correct[idx].mean())


def correct_auroc(s: Scored, signal: str, idx: npt.NDArray[np.intp]) -> float:
    """P(signal of a correct answer > that of a wrong one), ties half; NaN-signal
    prompts count as the lowest signal."""
    score = np.nan_to_num(s.signals[signal][idx], nan=-1.0)
    # `auroc` ranks its first argument's positive class above the rest.
    return auroc(s.correct[idx], score)


def choose_threshold(correct: Vector, score: Vector, target: float) -> float:
    """The threshold (accept score >= it) with the largest accepted share whose
    accepted accuracy is at least `target`; +inf (accept nothing) when none is."""
    score = np.nan_to_num(score, nan=-1.0)
    best, best_share = math.inf, 0.0
    for cut in np.unique(score):
        kept = score >= cut
        if correct[kept].mean() >= target - 1e-12 and kept.mean() > best_share:
            best, best_share = float(cut), float(kept.mean())
    return best


def accepted(correct: Vector, score: Vector, cut: float) -> tuple[float, float]:
    """(accepted share, accepted accuracy) at `cut`; accuracy NaN when none is kept."""
    kept = np.nan_to_num(score, nan=-1.0) >= cut
    return float(kept.mean()), float(correct[kept].mean()) if kept.any() else math.nan


def applied(
    correct: Vector, score: Vector, cut: float, resamples: int, seed: int
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Accepted share and accepted accuracy at `cut`, each with its interval."""

    def share(i: npt.NDArray[np.intp]) -> float:
        return accepted(correct[i], score[i], cut)[0]

    def kept_accuracy(i: npt.NDArray[np.intp]) -> float:
        return accepted(correct[i], score[i], cut)[1]

    n = len(correct)
    return bootstrap(n, share, resamples, seed), bootstrap(n, kept_accuracy, resamples, seed)


def _ci(v: tuple[float, float, float], percent: bool = False) -> str:
    if math.isnan(v[0]):
        return "none"
    a, lo, hi = (f"{100 * x:.1f}%" if percent else f"{x:.3f}" for x in v)
    return f"{a} ({lo}-{hi})"


def _short(benchmark: str) -> str:
    return benchmark.rsplit("/", 1)[-1]


def report(results: dict[str, dict[str, Scored]], resamples: int, seed: int) -> str:
    lines = [
        "| model | benchmark | prompts | answer names an option | commonest option | accuracy | "
        + " | ".join(f"AUROC, {name}" for name in SIGNALS.values())
        + " | samples agree: share | accuracy when they agree / not |",
        "| --- | --- | ---: | ---: | ---: | --- | " + "--- | " * len(SIGNALS) + "---: | --- |",
    ]
    for model, per in results.items():
        for benchmark, s in per.items():
            n = len(s.correct)
            acc = bootstrap(n, partial(accuracy, s), resamples, seed)
            cells = [
                _ci(bootstrap(n, partial(correct_auroc, s, g), resamples, seed)) for g in SIGNALS
            ]
            agree = s.signals["agree"] > 0.5
            split = " / ".join(
                f"{100 * s.correct[m].mean():.1f}%" if m.any() else "none" for m in (agree, ~agree)
            )
            lines.append(
                f"| {model} | {_short(benchmark)} | {n} | {100 * s.parsed:.1f}% | "
                f"{s.commonest[0]} {100 * s.commonest[1]:.0f}% | "
                f"{_ci(acc, True)} | {' | '.join(cells)} | {100 * agree.mean():.1f}% | {split} |"
            )
    lines += ["", *transfer(results, resamples, seed)]
    return "\n".join(lines)


def transfer(results: dict[str, dict[str, Scored]], resamples: int, seed: int) -> list[str]:
    lines = [
        f"Threshold chosen on A: largest accepted share with accepted accuracy >= A's "
        f"accuracy + {100 * MARGIN:.0f} points; applied unchanged to B.",
        "",
        "| model | signal | A -> B | target on A | threshold | share accepted on B | "
        "accuracy accepted on B | B's target | B's own threshold: share |",
        "| --- | --- | --- | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for model, per in results.items():
        for signal, name in SIGNALS.items():
            for a, b in ((x, y) for x in per for y in per if x != y):
                sa, sb = per[a], per[b]
                target_a = min(1.0, float(sa.correct.mean()) + MARGIN)
                target_b = min(1.0, float(sb.correct.mean()) + MARGIN)
                cut = choose_threshold(sa.correct, sa.signals[signal], target_a)
                score_b = sb.signals[signal]
                share, acc = applied(sb.correct, score_b, cut, resamples, seed)
                own = accepted(
                    sb.correct, score_b, choose_threshold(sb.correct, score_b, target_b)
                )[0]
                lines.append(
                    f"| {model} | {name} | {_short(a)} -> {_short(b)} | "
                    f"{100 * target_a:.1f}% | {cut:.3f} | {_ci(share, True)} | "
                    f"{_ci(acc, True)} | {100 * target_b:.1f}% | {100 * own:.1f}% |"
                )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    table = read_outcomes(args.data / TABLE)
    answers = read_answers(args.data / ANSWERS, table.prompt_ids, table.models)
    gold, missing, conflicting = gold_labels(table, answers)
    log(f"gold labels: {len(gold)}; no scored-1 option {missing}, conflicting {conflicting}")
    prompts = sample(table, gold, args.per_benchmark, args.seed)
    results: dict[str, dict[str, Scored]] = {}
    for model in args.models.split(","):
        rows = asyncio.run(ask_all(model, prompts, args))
        results[model] = {
            b: scored([r for r in rows if r["benchmark"] == b])
            for b in BENCHMARKS
            if any(r["benchmark"] == b for r in rows)
        }
    text = report(results, args.resamples, args.seed)
    (args.out / "local_confidence.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    log(f"done in {time.perf_counter() - began:.0f}s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("/tmp/lc"))
    parser.add_argument("--per-benchmark", type=int, default=250)
    parser.add_argument("--models", default="qwen2.5-0.5b,smollm2-135m")
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.7, help="of the two samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
