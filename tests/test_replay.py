"""Replay of candidate routers on a request log written through the store's own API.

The log (`write_log`): six requests with a captured prompt, randomised between
cheap-model ($0.001) and strong-model ($0.01) as an A/B experiment would, one
cheap request without a prompt ($0.003), and one that failed. The seed heuristic
sends the three long "analyze" prompts to the strong model and the short ones cheap:

| request | prompt | served | feedback | heuristic |
| --- | --- | --- | --- | --- |
| r1 | long, analyze | strong | 1.0 | strong (matched) |
| r2 | long, analyze | cheap | 0.0 | strong |
| r3 | hi there | cheap | 1.0 | cheap (matched) |
| r4 | what is 2+2 | strong | 1.0 | cheap |
| r5 | long, analyze | strong | none | strong (matched, no feedback) |
| r6 | thanks! | cheap | 0.0 and 1.0 | cheap (matched) |
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import OUTCOMES_FIXTURE as FIXTURE
from tests.helpers import eval_app
from tierwise.embeddings.hashing import HashingEmbedder
from tierwise.evaluation.calibrate import Target, calibrate
from tierwise.evaluation.replay import build_log, read_log, replay, replay_json, safe_url
from tierwise.evaluation.runner import COST_WEIGHTS
from tierwise.learning.models import strong_win_rate
from tierwise.learning.outcomes import read_outcomes
from tierwise.learning.store import save_router
from tierwise.learning.train import embed_table, train
from tierwise.record import AttemptRecord, CostBreakdown, RequestRecord
from tierwise.store import Capture, Feedback, open_store

CHEAP, STRONG = "cheap-model", "strong-model"
LONG = "Please analyze {} and list the three main points for our team today."
REQUESTS = [
    ("r1", LONG.format("the quarterly sales report"), STRONG, "b"),
    ("r2", LONG.format("this contract clause"), CHEAP, "a"),
    ("r3", "hi there", CHEAP, "a"),
    ("r4", "what is 2+2", STRONG, "b"),
    ("r5", LONG.format("the attached survey results"), STRONG, "b"),
    ("r6", "thanks!", CHEAP, "a"),
]
FEEDBACK = [("r1", 1.0), ("r2", 0.0), ("r3", 1.0), ("r4", 1.0), ("r6", 0.0), ("r6", 1.0)]
COST = {CHEAP: Decimal("0.001"), STRONG: Decimal("0.01")}


def record(
    request_id: str, prompt: str | None, model: str | None, variant: str | None, at: float
) -> RequestRecord:
    if model is None:
        attempt = AttemptRecord("big-1", "strong", STRONG, "openai", outcome="error")
        return RequestRecord(request_id, "auto", attempts=[attempt], status="error", prompt=prompt)
    tier = "strong" if model == STRONG else "cheap"
    cost = COST[model] if prompt else Decimal("0.003")
    attempt = AttemptRecord(f"{tier}-1", tier, model, "openai", cost_usd=cost)
    return RequestRecord(
        request_id,
        "auto",
        attempts=[attempt],
        final_deployment=f"{tier}-1",
        final_tier=tier,
        cost=CostBreakdown(attempts_usd=cost),
        started_at=at,
        variant=variant,
        prompt=prompt,
    )


async def write_log(url: str) -> None:
    store = open_store(url, Capture(prompts=True))
    await store.migrate()
    rows = [record(i, p, m, v, 1000.0 + n) for n, (i, p, m, v) in enumerate(REQUESTS)]
    rows += [record("r7", None, CHEAP, None, 1010.0), record("r8", "boom", None, None, 1011.0)]
    await store.record(rows)
    for n, (request_id, score) in enumerate(FEEDBACK):
        feedback = Feedback(f"f{n}", request_id, 2000.0 + n, score, str(score))
        assert await store.add_feedback(feedback)
    await store.close()


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'requests.db'}"
    asyncio.run(write_log(url))
    return url


def test_replay_of_the_heuristic_is_hand_checked(store_url: str) -> None:
    asyncio.run(write_log(store_url))
    log = read_log(store_url)
    assert log.counts | {"mean_cost_usd": None} == {
        "logged": 8,
        "served": 7,
        "with_prompt": 6,
        "with_feedback": 5,
        "with_prompt_and_feedback": 5,
        "with_variant": 6,
        "served_by": {CHEAP: 3, STRONG: 3},
        "mean_cost_usd": None,
    }
    assert log.counts["mean_cost_usd"] == pytest.approx({CHEAP: 0.0015, STRONG: 0.01})
    result = replay(log, "heuristic")
    assert (result.strong, result.cheap) == (STRONG, CHEAP)
    (point,) = result.points
    assert point.quality == pytest.approx(2.5 / 3) and result.matched["seed rules"] == 3
    assert point.cost == pytest.approx((3 * 0.01 + 3 * 0.0015) / 6)
    assert point.strong_share == 0.5
    named = {p.label: p for p in result.baselines}
    assert (named[f"always {STRONG}"].quality, result.matched[f"always {STRONG}"]) == (1.0, 2)
    assert (named[f"always {CHEAP}"].quality, result.matched[f"always {CHEAP}"]) == (0.5, 3)
    assert named["logged"].quality == pytest.approx(0.7) and result.matched["logged"] == 5
    assert named[f"always {CHEAP}"].cost == pytest.approx(0.0015)


def test_replay_json_and_report(log_url: str, tmp_path: Path) -> None:
    done = CliRunner().invoke(
        eval_app(), ["eval", "--log", log_url, "--router", "heuristic", "--out", str(tmp_path)]
    )
    assert done.exit_code == 0, done.output
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["format"] == "tierwise-replay" and data["log"]["with_prompt_and_feedback"] == 5
    assert data["points"][0]["matched"] == 3
    assert data["points"][0]["quality_share_of_strong"] == pytest.approx(2.5 / 3)
    report = (tmp_path / "report.md").read_text()
    assert "Unbiased only when the served model was chosen at random" in report
    assert "8 requests logged" in report and "5 with both" in report
    done = CliRunner().invoke(
        eval_app(), ["eval", "--log", log_url, "--holdout-by", "x", "--out", str(tmp_path)]
    )
    assert done.exit_code == 1 and "need an outcome table" in done.output
    decisions = (tmp_path / "decisions.csv").read_text().splitlines()
    assert decisions[0] == "prompt_id,point,model,called,cost"
    assert decisions[1].startswith(f"r1,seed rules,{STRONG},{STRONG},")


def test_replay_of_a_learned_spec_holds_out_the_logged_feedback(log_url: str) -> None:
    log = read_log(log_url)
    result = replay(log, "learned:knn:hashing", folds=2, seed=1)
    assert [p.label for p in result.points] == [f"w={w:g}" for w in COST_WEIGHTS]
    assert all(result.matched[p.label] <= 5 for p in result.points)
    assert result.split["kind"] == "folds" and "feedback" in result.split["trained_on"]
    data = replay_json(result)
    assert data["targets"]["0.95"]["label"] is None or data["targets"]["0.95"]["quality"] >= 0.95


@pytest.fixture
def router_file(tmp_path: Path) -> Path:
    path = tmp_path / "router.npz"
    table = read_outcomes(FIXTURE)
    save_router(train(table, "knn", HashingEmbedder(), hyperparameters={"k": 10}), path)
    return path


def test_replay_of_a_router_file_sweeps_win_rate_deciles(log_url: str, router_file: Path) -> None:
    result = replay(read_log(log_url), str(router_file))
    assert len(result.points) == 12 and result.split["kind"] == "router_file"
    everything = result.points[-1]
    assert everything.label == "t=-inf" and everything.strong_share == 1.0
    assert everything.quality == 1.0 and result.matched["t=-inf"] == 2
    assert result.points[-2].strong_share == 0.0 and result.matched[result.points[-2].label] == 3
    assert replay_json(result)["points"][-1]["param"] is None


def test_calibrate_from_the_log_takes_the_win_rate_quantile(
    log_url: str, router_file: Path
) -> None:
    log = read_log(log_url)
    rows = np.arange(len(log.table), dtype=np.intp)
    result = calibrate(
        log.table, Target("strong_share", 0.5), router_file=router_file, rows=rows, samples=50
    )
    from tierwise.learning.store import load_router

    router = load_router(router_file)
    p = router.predict(embed_table(log.table, HashingEmbedder()))
    win = strong_win_rate(p, router.models.index(CHEAP), router.models.index(STRONG))
    assert result.knob == "threshold" and result.value == pytest.approx(np.quantile(win, 0.5))
    assert result.strong_share == pytest.approx((win > result.value).mean())
    assert result.prompts == 6 and result.quality_prompts <= 5
    low, high = result.intervals["strong_share"]
    assert low <= result.strong_share <= high


def test_calibrate_cli_from_the_log(log_url: str, tmp_path: Path) -> None:
    out = tmp_path / "router.yaml"
    args = ["calibrate", "--log", log_url, "--strong-share", "0.5", "--folds", "2"]
    done = CliRunner().invoke(eval_app(), [*args, "--out", str(out)])
    assert done.exit_code == 0, done.output
    text = out.read_text()
    assert "on 6 prompts" in text and "quality measured on" in text
    router = yaml.safe_load(text)["router"]
    assert router["kind"] == "learned" and ("threshold" in router or "cost_weight" in router)
    done = CliRunner().invoke(eval_app(), [*args, "--route", "elsewhere"])
    assert done.exit_code == 1 and "replay needs two models" in done.output


def test_logs_that_cannot_be_replayed() -> None:
    served = [{"request_id": "a", "route": "r", "final_model": "m", "cost_pusd": 1, "prompt": "x"}]
    with pytest.raises(ValueError, match="replay needs two models"):
        build_log(served, {}, 1, "log")
    served.append(dict(served[0], request_id="b", final_model="n"))
    with pytest.raises(ValueError, match="turn on prompt capture"):
        build_log([dict(r, prompt=None) for r in served], {}, 2, "log")


def test_safe_url_drops_credentials() -> None:
    url = "postgresql://user:secret@db.internal:5432/logs?schema=tw"
    assert safe_url(url) == "postgresql://db.internal:5432/logs?schema=tw"
    assert safe_url("sqlite:///tmp/requests.db") == "sqlite:///tmp/requests.db"
