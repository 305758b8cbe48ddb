"""CPU time of one exact response-cache lookup in memory: key normalisation, hash
and LRU lookup of a realistic chat request (a system prompt, three turns, a tool,
temperature 0), against `orjson.dumps` of the same request measured in the same run.

Each sample times `--batch` lookups with `time.process_time_ns` and divides; the
percentiles are over `--samples` samples. Half the lookups hit, half miss.

    .venv/bin/python bench/cache_lookup.py [--samples 2000] [--batch 100]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import orjson

from tierwise.cache import CachedAnswer, MemoryResponseCache, request_key
from tierwise.types import ChatRequest, ChatResponse, Choice, Message

SYSTEM = "You are a concise assistant for a travel booking site. " * 8
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Find flights between two airports on a date.",
            "parameters": {
                "type": "object",
                "properties": {
                    "origin": {"type": "string"},
                    "destination": {"type": "string"},
                    "date": {"type": "string", "format": "date"},
                },
                "required": ["origin", "destination", "date"],
            },
        },
    }
]


def request(i: int) -> ChatRequest:
    return ChatRequest(
        [
            Message("system", SYSTEM),
            Message("user", f"I need a flight from Lisbon to Oslo next week, option {i}."),
            Message("assistant", "Which day would you like to leave, and is the return open?"),
            Message("user", "Tuesday morning, one way, window seat if possible please."),
        ],
        model="auto",
        max_tokens=512,
        temperature=0,
        tools=TOOLS,
        user="user-42",
    )


def per_call_us(fn: Callable[[], object], samples: int, batch: int) -> list[float]:
    out = []
    for _ in range(samples):
        start = time.process_time_ns()
        for _ in range(batch):
            fn()
        out.append((time.process_time_ns() - start) / batch / 1000)
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    cache = MemoryResponseCache(10_000)
    answer = ChatResponse("", "m", [Choice(0, Message("assistant", "Booked."), "stop")])
    for i in range(5_000):
        cache.store(request_key("auto", request(i)), CachedAnswer(answer, "mini", "cheap", 0), 3600)
    hit, miss = request(7), request(10**6)
    toggle = [False]

    def lookup() -> object:
        toggle[0] = not toggle[0]
        return cache.lookup(request_key("auto", hit if toggle[0] else miss))

    def baseline() -> object:
        return orjson.dumps(hit)

    assert lookup() is not None and lookup() is None
    for name, fn in (("orjson.dumps(request)", baseline), ("exact lookup", lookup)):
        values = per_call_us(fn, args.samples, args.batch)
        print(
            f"{name:22s} p50 {pct(values, 50):6.2f} us  p99 {pct(values, 99):6.2f} us  "
            f"mean {statistics.fmean(values):6.2f} us"
        )
    print("target: exact lookup <= 50 us (0.05 ms) of CPU")


if __name__ == "__main__":
    main()
