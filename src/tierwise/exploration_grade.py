"""Graded exploration: on a route exploring at random with `explore.judge`, the judge
grades a share (`judge_share`) of the served answers with the absolute question of
the `judge` check (`tierwise.checks.judge`), so the route's log carries labels for
learning (`tierwise learn`, `export-outcomes`).

The pieces here are pure: the grading's cost estimate (checked against the route's
exploration budget before the judge is asked), the judge's request, the score read
from its reply, the decision logged on the judge call's own record (router
`explore:grade`, explored, so its cost lands on the exploration line) and the
verdict kept for the served request in the `judgments` table. `Exploration` runs
them in background tasks; `keep_verdicts` stores the verdicts of a server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from tierwise.checks.judge import judge_messages, p_yes
from tierwise.deployments import Step
from tierwise.record import ZERO, Decision, RequestRecord
from tierwise.routing.explore import GRADE_ROUTER
from tierwise.store.base import Store
from tierwise.store.guard import keep_judgment
from tierwise.store.rows import to_pusd
from tierwise.store.tables import JudgmentRow
from tierwise.targets import Target
from tierwise.types import ChatRequest, ChatResponse, Usage

log = logging.getLogger("tierwise.exploration")
KeepVerdict = Callable[[JudgmentRow], Awaitable[None]]
JUDGE_PROMPT_TOKENS = 100
"""The judge's instructions and framing, in tokens, beside the question and answers."""
WORDS = {"yes": 1.0, "no": 0.0}


@dataclass(frozen=True, slots=True)
class Grading:
    """One served answer to grade: the route's target, the request it answered,
    its closed record, the judge's name, what the judge call should cost, and the
    chance that an answered request of the route is graded."""

    target: Target
    request: ChatRequest
    served: RequestRecord
    judge: str
    estimate: Decimal
    share: float


def grade_estimate(served: RequestRecord, judge: Target) -> Decimal:
    """What grading `served` should cost: its call's input and output tokens and
    the judge's question as input, one output token, on the judge's dearest
    deployment."""
    usage = next((a.usage for a in reversed(served.attempts) if a.usage), None)
    tokens = JUDGE_PROMPT_TOKENS + (usage.input_tokens + usage.output_tokens if usage else 0)
    return dearest(judge.steps[0], Usage(tokens, 1)) if judge.steps else ZERO


def dearest(step: Step, usage: Usage) -> Decimal:
    """What `usage` costs on the dearest deployment of `step`."""
    return max((d.price.cost_usd(usage) for d in step.deployments), default=ZERO)


def judge_request(grading: Grading) -> ChatRequest:
    """The judge's request: the conversation, the served answer and the question
    "Is that answer correct?", for one token at temperature 0 with logprobs."""
    messages = judge_messages(grading.request.messages, grading.served.answer or "")
    return ChatRequest(messages, model=grading.judge, max_tokens=1, temperature=0.0, logprobs=True)


def read_score(response: ChatResponse) -> tuple[float | None, str]:
    """P("Yes") from the first token's logprob; without logprobs, 1.0 or 0.0 for a
    reply whose first word is Yes or No. None (and why) otherwise."""
    choice = response.choices[0] if response.choices else None
    if choice is not None and choice.logprobs:
        score = p_yes(choice.logprobs)
        if score is None:
            return None, f"no verdict in {choice.logprobs[0].token[:40]!r}"
        return score, f"P(yes) {score:.3f}"
    words = response.text().split()
    word = words[0].strip(".,!:;").lower() if words else ""
    if word in WORDS:
        return WORDS[word], f"{word} (no logprobs)"
    return None, f"no verdict in {response.text()[:40]!r}"


def grade_decision(grading: Grading, score: float | None, detail: str) -> Decision:
    """The judge call's decision: explored, so all it costs is exploration's."""
    reason = f"grade of {grading.served.request_id}; judge {grading.judge}: {detail}"
    return Decision(
        grading.judge,
        {} if score is None else {"judge": score},
        reason[:500],
        GRADE_ROUTER,
        propensity=grading.share,
        explored=True,
    )


def judgment(request_id: str, judge: str, score: float, cost: Decimal, detail: str) -> JudgmentRow:
    """Request `request_id`'s judgment outside experiments: `judge`'s score and
    what it cost."""
    return JudgmentRow(
        request_id=request_id,
        created_at=time.time(),
        experiment=None,
        variant=None,
        score=score,
        cost_pusd=to_pusd(cost),
        judge=judge,
        detail=detail[:500],
    )


def keep_verdicts(store: Store) -> KeepVerdict:
    """Keep each verdict in `store`'s `judgments` (see `store.guard.keep_judgment`)."""

    async def keep(row: JudgmentRow) -> None:
        await keep_judgment(store, row, "explore grade")

    return keep
