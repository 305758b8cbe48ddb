"""Scores a small local model gives a recorded cheap answer, cached by prompt id.

Two scores per prompt, from one llama.cpp server (`tierwise.providers.llamacpp`):

- `p_yes`: the `judge` check's P("Yes") (`tierwise.checks.judge`), same messages;
- `p_label`: on a multiple-choice prompt, the local model's probability of the option
  label the cheap answer names, when it answers the prompt itself (one token, top 20
  logprobs): a teacher-forced confidence in the normalised answer. None on other prompts.

The cache is a JSON-lines file outside the repository (one line per prompt id), so a
rerun only scores prompts it has not seen.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tierwise.checks.judge import judge_messages, p_yes
from tierwise.checks.normalise import normalise_choice, options
from tierwise.types import Message
from tierwise.wire.openai.shapes import decode_logprobs

VERSION = "v1"
TOP = 20


@dataclass(frozen=True, slots=True)
class Item:
    """One prompt and the cheap answer to score."""

    prompt_id: str
    prompt: str
    answer: str


def cache_dir() -> Path:
    """`$TIERWISE_HOME/signals`, or `~/.cache/tierwise/signals`."""
    home = os.environ.get("TIERWISE_HOME")
    base = Path(home).expanduser() if home else Path.home() / ".cache" / "tierwise"
    return base / "signals"


def load_cache(path: Path) -> dict[str, dict[str, Any]]:
    """Scores by prompt id from a cache file (empty when it does not exist)."""
    if not path.is_file():
        return {}
    found: dict[str, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            found[str(row["id"])] = row
    return found


def label_probability(raw_choice: dict[str, Any], label: str) -> float:
    """P(`label`) among the first token's top logprobs (variants such as " A" summed);
    below the smallest listed probability when it is not listed."""
    content = (raw_choice.get("logprobs") or {}).get("content") or []
    if not content:
        return 0.0
    top = content[0].get("top_logprobs") or []
    probs = [math.exp(float(t["logprob"])) for t in top]
    hits = [p for t, p in zip(top, probs, strict=True) if str(t["token"]).strip() == label]
    if hits:
        return sum(hits)
    return min(probs) / 2 if probs else 0.0


async def _complete(
    session: aiohttp.ClientSession, url: str, messages: Sequence[Message], top: int
) -> dict[str, Any]:
    body = {
        "messages": [{"role": m.role, "content": m.content} for m in messages],
        "max_tokens": 1,
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": top,
    }
    async with session.post(url + "/v1/chat/completions", json=body) as reply:
        reply.raise_for_status()
        data: dict[str, Any] = await reply.json()
    choice: dict[str, Any] = data["choices"][0]
    return choice


async def score_item(session: aiohttp.ClientSession, url: str, item: Item) -> dict[str, Any]:
    """Both scores of one item (the label call first, so the judge call reuses the
    server's cached prompt prefix)."""
    asked = [Message("user", item.prompt)]
    labels = options(item.prompt)
    label = normalise_choice(item.answer, labels) if labels else None
    p_label: float | None = None
    if label is not None:
        p_label = label_probability(await _complete(session, url, asked, TOP), label)
    judged = await _complete(session, url, judge_messages(asked, item.answer), 1)
    verdict = p_yes(decode_logprobs(judged.get("logprobs")))
    return {"id": item.prompt_id, "p_yes": verdict, "p_label": p_label, "version": VERSION}


async def score_all(
    url: str, items: Sequence[Item], path: Path, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Scores of every item, reading the cache at `path` and appending new ones."""
    found = load_cache(path)
    todo = [i for i in items if i.prompt_id not in found]
    log(f"{len(items) - len(todo)} cached, {len(todo)} to score")
    path.parent.mkdir(parents=True, exist_ok=True)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with path.open("a", encoding="utf-8") as sink:
            for n, item in enumerate(todo, 1):
                row = await score_item(session, url, item)
                sink.write(json.dumps(row) + "\n")
                sink.flush()
                found[item.prompt_id] = row
                if n % 10 == 0:
                    log(f"scored {n}/{len(todo)}")
    return found
