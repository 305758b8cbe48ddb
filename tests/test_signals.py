"""Topic-free escalation signals: the `judge` check through the gateway, the offline
leave-one-benchmark-out evaluation, and the local model's scores of an answer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import GatewayFactory
from tierwise import ChatRequest, Message
from tierwise.checks.judge import QUESTION, judge_messages, p_yes
from tierwise.errors import ConfigError
from tierwise.evaluation.answers import read_answers
from tierwise.evaluation.signal_scores import Item, label_probability, load_cache, score_all
from tierwise.evaluation.signals import (
    Problem,
    SignalSet,
    auroc,
    evaluate,
    fit_logistic,
    sample_rows,
    share_at,
)
from tierwise.learning.outcomes import read_outcomes
from tierwise.testing import FakeUpstream
from tierwise.types import TokenLogprob

FIXTURES = Path(__file__).parent / "fixtures"
JUDGED = {"router": "cascade", "baseline": "big"}


def user(text: str) -> ChatRequest:
    return ChatRequest([Message("user", text)])


def test_p_yes_reads_the_first_token() -> None:
    assert p_yes([TokenLogprob("Yes", math.log(0.8))]) == pytest.approx(0.8)
    assert p_yes([TokenLogprob(" no.", math.log(0.9))]) == pytest.approx(0.1)
    assert p_yes([TokenLogprob("Maybe", -0.1)]) is None
    assert p_yes(None) is None
    messages = judge_messages([Message("user", "2+2?")], "4" * 5000, max_answer_chars=10)
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert messages[1].content == "4" * 10 and messages[2].content == QUESTION


async def test_judge_check_keeps_or_escalates_through_the_gateway(
    make_gateway: GatewayFactory, upstream: FakeUpstream
) -> None:
    checks = [{"kind": "judge", "deployment": "mini-b", "min_p_yes": 0.5}]
    gateway = make_gateway(routes={"auto": {**JUDGED, "checks": checks}})
    upstream.script("cheap-b-model", QUESTION, "Yes")
    kept = await gateway.chat(user("What is 2+2? [[reply=4]]"))
    assert [(a.deployment, a.trigger) for a in kept.record.attempts] == [("mini", None)]
    assert kept.response.text() == "4"
    assert kept.record.cost.checks_usd > 0
    upstream.script("cheap-b-model", QUESTION, "No")
    escalated = await gateway.chat(user("What is 2+2? [[reply=5]]"))
    assert [(a.deployment, a.trigger) for a in escalated.record.attempts] == [
        ("mini", "quality_check"),
        ("big", "quality_check"),
    ]
    judged = [r for r in upstream.requests if r.model == "cheap-b-model"]
    assert judged[1].body["max_tokens"] == 1
    assert judged[1].body["messages"][-2] == {"role": "assistant", "content": "5"}


async def test_judge_without_a_verdict_passes_the_answer(
    make_gateway: GatewayFactory, upstream: FakeUpstream
) -> None:
    checks = [{"kind": "judge", "deployment": "mini-b", "min_p_yes": 0.99}]
    gateway = make_gateway(routes={"auto": {**JUDGED, "checks": checks}})
    upstream.script("cheap-b-model", QUESTION, "Perhaps")
    result = await gateway.chat(user("Name a colour. [[reply=red]]"))
    assert [a.deployment for a in result.record.attempts] == ["mini"]


@pytest.mark.parametrize(
    ("check", "key"),
    [
        ({"kind": "judge", "deployment": "mini-b", "threshold": 0.5}, "checks[0].threshold"),
        ({"kind": "judge", "deployment": "mini-b", "min_p_yes": 1.5}, "checks[0].min_p_yes"),
        ({"kind": "judge", "deployment": "nowhere"}, "checks[0].deployment"),
    ],
)
def test_judge_config_errors_name_the_key(
    make_gateway: GatewayFactory, check: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_gateway(routes={"auto": {**JUDGED, "checks": [check]}})
    assert key in str(caught.value)


def test_auroc_and_logistic_fit() -> None:
    wrong = np.array([1.0, 1.0, 0.0, 0.0])
    assert auroc(wrong, np.array([0.9, 0.8, 0.1, 0.2])) == 1.0
    assert auroc(wrong, np.array([0.1, 0.2, 0.9, 0.8])) == 0.0
    assert auroc(wrong, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert math.isnan(auroc(np.ones(3), np.arange(3.0)))
    x = np.array([[-2.0], [-1.0], [1.0], [2.0], [0.5], [-0.5]])
    y = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    w = fit_logistic(x, y)
    assert w[1] > 0.5


def _problem(signal: np.ndarray, rng: np.random.Generator) -> Problem:
    """Three sources of 40 prompts; the cheap answer is wrong where `signal` > 0 (plus
    noise), the strong model is always right and costs ten times as much."""
    n = len(signal)
    wrong = (signal + 0.3 * rng.standard_normal(n) > 0).astype(np.float64)
    scores = np.stack([1 - wrong, np.ones(n), np.ones(n)], axis=1)
    costs = np.tile([0.1, 0.1, 1.0], (n, 1))
    features = {"judge": signal.reshape(-1, 1), "noise": rng.standard_normal((n, 1))}
    sources = [f"b{k % 3}" for k in range(n)]
    return Problem(sources, wrong, scores, costs, features)


def test_leave_one_benchmark_out_separates_signal_from_noise() -> None:
    rng = np.random.default_rng(0)
    problem = _problem(rng.standard_normal(120), rng)
    good = evaluate(problem, SignalSet("judge", ("judge",)), "b1", 200, rng)
    noise = evaluate(problem, SignalSet("noise", ("noise",)), "b1", 200, rng)
    assert good.prompts == 40
    assert good.auroc[0] > 0.85 and good.auroc[1] > 0.7
    assert noise.auroc[1] < 0.5 < noise.auroc[2]
    assert good.share_at_target[0] < noise.share_at_target[0]
    assert good.transferred_quality[0] > 0.85
    rows = np.flatnonzero(np.array(problem.sources) == "b1")
    assert share_at(problem, rows, problem.wrong[rows], SignalSet("x", ("judge",))) == (
        pytest.approx(0.1 + problem.wrong[rows].mean() - 0.05)
    )


def test_problem_from_fixture_tables_has_agreement_and_structure() -> None:
    table = read_outcomes(FIXTURES / "cascade_outcomes.csv")
    answers = read_answers(FIXTURES / "cascade_answers.csv", table.prompt_ids, table.models)
    rows = sample_rows(table, answers, ("small", "mid", "big"), {"handmade": 100}, seed=0)
    assert 0 < len(rows) <= len(table)
    local = {table.prompt_ids[rows[0]]: {"p_yes": 0.9, "p_label": None}}
    problem = Problem.build(table, answers, rows, local, ("small", "mid", "big"))
    first = table.prompt_ids.index("q1")
    at = int(np.flatnonzero(rows == first)[0])
    assert problem.features["agreement"][at].tolist() == [1.0, 1.0]
    assert problem.features["structure"].shape == (len(rows), 13)
    judge = problem.features["judge"][:, 0]
    assert judge[0] == pytest.approx(math.log(9)) and np.isnan(judge[1:]).all()


def test_label_probability_sums_token_variants() -> None:
    top = [
        {"token": " B", "logprob": math.log(0.5)},
        {"token": "B", "logprob": math.log(0.2)},
        {"token": "A", "logprob": math.log(0.1)},
    ]
    choice = {"logprobs": {"content": [{"top_logprobs": top}]}}
    assert label_probability(choice, "B") == pytest.approx(0.7)
    assert label_probability(choice, "C") == pytest.approx(0.05)
    assert label_probability({}, "A") == 0.0


@pytest.mark.slow
async def test_local_model_scores_an_answer_and_caches_it(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp", reason="local models need the xllamacpp wheel")
    from tierwise.localmodels import LOCAL_MODELS, resolve_model_file
    from tierwise.providers.llamacpp import LocalModelServer

    prompt = "What is 2 + 2?\nA) 3\nB) 4\nC) 5\nAnswer with the letter only.\nAnswer:"
    items = [Item("right", prompt, "B"), Item("wrong", prompt, "C"), Item("code", "Add 1.", "x")]
    cache = tmp_path / "scores.jsonl"
    model = resolve_model_file(LOCAL_MODELS["qwen2.5-0.5b"])
    async with LocalModelServer(model, context_window=2048, parallel=1) as server:
        scores = await score_all(server.base_url, items, cache, lambda _: None)
    assert 0.0 < scores["right"]["p_yes"] < 1.0
    assert scores["right"]["p_label"] > scores["wrong"]["p_label"] > 0.0
    assert scores["code"]["p_label"] is None
    assert load_cache(cache) == scores
