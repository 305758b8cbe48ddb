"""Calibrate the semantic cache's similarity threshold on a paraphrase set, then
measure its hit rate and false-hit rate on pairs it was not calibrated on.

The set is tests/fixtures/paraphrases.jsonl: 30 paraphrase pairs (the same question
in other words) and 30 near-miss pairs (the same first question against a different
one that shares most words, e.g. "capital of France" / "capital of Germany"). The
pairs are split in two halves by anchor question (a seeded shuffle), so an anchor's
paraphrase and its near miss land in the same half. On the calibration half the
threshold is the lowest cosine similarity whose false-hit rate (near misses at or
above it) is at most `--max-false-hit`; on the other half a paraphrase at or above it
is a hit and a near miss at or above it is a false hit. Intervals are 95% Wilson
score intervals. `--folds` repeats the split with other seeds and reports the mean.

    .venv/bin/python bench/semantic_cache.py [--embedder static] [--max-false-hit 0.1]
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tierwise.routing.embedding import make_embedder

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "paraphrases.jsonl"
Pair = tuple[float, bool]


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def similarities(embedder_name: str) -> list[tuple[int, float, bool]]:
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    embedder = make_embedder(embedder_name)
    a = embedder.embed([r["a"] for r in rows])
    b = embedder.embed([r["b"] for r in rows])
    sims = np.sum(a * b, axis=1)
    return [
        (int(r["id"]), float(s), bool(r["paraphrase"])) for r, s in zip(rows, sims, strict=True)
    ]


def calibrate(pairs: list[Pair], max_false_hit: float) -> float:
    """The lowest threshold (a similarity in the set, or just above the top one) whose
    false-hit rate on `pairs` is at most `max_false_hit`."""
    negatives = sorted((s for s, same in pairs if not same), reverse=True)
    allowed = math.floor(max_false_hit * len(negatives))
    if allowed >= len(negatives):
        return min(s for s, _ in pairs)
    return negatives[allowed] + 1e-6


@dataclass(frozen=True)
class Rates:
    hits: int
    paraphrases: int
    false_hits: int
    near_misses: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.paraphrases

    @property
    def false_hit_rate(self) -> float:
        return self.false_hits / self.near_misses

    def line(self) -> str:
        hl, hh = wilson(self.hits, self.paraphrases)
        fl, fh = wilson(self.false_hits, self.near_misses)
        return (
            f"paraphrases {self.paraphrases}, near misses {self.near_misses}: "
            f"hit rate {self.hit_rate:.2f} [{hl:.2f}, {hh:.2f}], "
            f"false-hit rate {self.false_hit_rate:.2f} [{fl:.2f}, {fh:.2f}]"
        )


def rates(pairs: list[Pair], threshold: float) -> Rates:
    pos = [s for s, same in pairs if same]
    neg = [s for s, same in pairs if not same]
    hits, false = sum(s >= threshold for s in pos), sum(s >= threshold for s in neg)
    return Rates(hits, len(pos), false, len(neg))


def split(rows: list[tuple[int, float, bool]], seed: int) -> tuple[list[Pair], list[Pair]]:
    ids = sorted({i for i, _, _ in rows})
    random.Random(seed).shuffle(ids)
    first = set(ids[: len(ids) // 2])
    calib = [(s, same) for i, s, same in rows if i in first]
    test = [(s, same) for i, s, same in rows if i not in first]
    return calib, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="static")
    parser.add_argument("--max-false-hit", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folds", type=int, default=20)
    args = parser.parse_args()
    rows = similarities(args.embedder)
    calib, test = split(rows, args.seed)
    threshold = calibrate(calib, args.max_false_hit)
    print(f"embedder {args.embedder}, target false-hit rate <= {args.max_false_hit}")
    print(f"threshold (calibrated on half {args.seed}): {threshold:.4f}")
    for name, pairs in (("calibration half", calib), ("held-out half", test)):
        print(f"  {name:16s} {rates(pairs, threshold).line()}")
    held = []
    for seed in range(args.folds):
        c, t = split(rows, seed)
        th = calibrate(c, args.max_false_hit)
        r = rates(t, th)
        held.append((th, r.hit_rate, r.false_hit_rate))
    ths, hits, falses = (np.array(v, dtype=float) for v in zip(*held, strict=True))
    print(
        f"over {args.folds} splits (held-out halves): threshold median {np.median(ths):.3f}, "
        f"mean hit rate {hits.mean():.2f}, mean false-hit rate {falses.mean():.2f}"
    )


if __name__ == "__main__":
    main()
