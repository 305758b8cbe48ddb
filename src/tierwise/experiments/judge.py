"""A sampled LLM judge: for a share of an experiment's answered requests, ask the
reference (strong) target the same question and let a judge model say whether the
variant's answer is as good. The extra calls go through the gateway like any request
(so they are billed and logged under their own route); each verdict and its cost is
kept in the `judgments` table, where the experiment's status reads them."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tierwise.errors import TierwiseError
from tierwise.store.base import Store
from tierwise.store.guard import keep_judgment
from tierwise.store.rows import to_pusd
from tierwise.store.tables import JudgmentRow
from tierwise.types import ChatRequest, Message

if TYPE_CHECKING:
    from tierwise.gateway import Gateway
    from tierwise.record import RequestRecord

log = logging.getLogger("tierwise.judge")
SYSTEM = (
    "You compare two answers to the same question. Answer A is being evaluated; answer B "
    "is a reference from a strong model. Reply with one word: BETTER if A is better than "
    "B, SAME if A is about as good, WORSE if A is worse."
)
VERDICT = re.compile(r"\b(BETTER|SAME|WORSE)\b")
SCORES = {"BETTER": 1.0, "SAME": 1.0, "WORSE": 0.0}


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float | None
    detail: str


def judge_prompt(question: str, answer: str, reference: str) -> list[Message]:
    user = f"Question:\n{question}\n\nAnswer A:\n{answer}\n\nAnswer B:\n{reference}"
    return [Message("system", SYSTEM), Message("user", user)]


def parse_verdict(text: str) -> Verdict:
    """BETTER or SAME count as good as the reference (1), WORSE as not (0)."""
    found = VERDICT.search(text.upper())
    if found is None:
        return Verdict(None, f"no verdict in {text[:80]!r}")
    return Verdict(SCORES[found.group(1)], found.group(1))


class Judge:
    """A record sink that samples records of experiments with a judge and judges
    them in background tasks (at most `concurrency` at once; more are skipped)."""

    def __init__(
        self,
        gateway: Gateway,
        store: Store,
        *,
        rng: random.Random | None = None,
        concurrency: int = 4,
    ) -> None:
        self.gateway, self.store = gateway, store
        self._rng = rng or random.Random()
        self._limit = concurrency
        self.tasks: set[asyncio.Task[None]] = set()
        self.skipped = 0

    def __call__(self, record: RequestRecord) -> None:
        if record.experiment is None or record.status != "ok" or not record.answer:
            return
        state = self.gateway.experiments.find(record.experiment)
        config = state.config.judge if state else None
        if config is None or self._rng.random() >= config.sample:
            return
        if len(self.tasks) >= self._limit:
            self.skipped += 1
            return
        task = asyncio.get_running_loop().create_task(self.judge(record))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def judge(self, record: RequestRecord) -> None:
        """Ask the reference and the judge; store the verdict (errors are logged)."""
        state = self.gateway.experiments.find(record.experiment or "")
        config = state.config.judge if state else None
        if config is None:
            return
        question, answer = record.prompt or "", record.answer or ""
        try:
            reference = await self.gateway.chat(
                ChatRequest([Message("user", question)], model=config.reference)
            )
            reference_text = reference.response.text()
            verdict = await self.gateway.chat(
                ChatRequest(judge_prompt(question, answer, reference_text), model=config.judge)
            )
        except TierwiseError as exc:
            log.warning("judge for request %s failed: %s", record.request_id, exc)
            return
        parsed = parse_verdict(verdict.response.text())
        cost = reference.record.cost.total_usd + verdict.record.cost.total_usd
        row = JudgmentRow(
            request_id=record.request_id,
            created_at=time.time(),
            experiment=record.experiment,
            variant=record.variant,
            score=parsed.score,
            cost_pusd=to_pusd(cost),
            judge=config.judge,
            detail=parsed.detail,
        )
        await keep_judgment(self.store, row, "judge verdict")

    async def aclose(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
