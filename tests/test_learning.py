"""Learned routing: outcome tables, predictors, storage, the router, folds and the CLI.

`tests/fixtures/outcomes_small.csv` is synthetic: `synthetic_outcomes()` below writes it
(run this file as a script to regenerate). Prompts that mention "integral" defeat the
cheap model; the strong model answers everything.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import random
import re
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from tierwise.cli.learning import train_command
from tierwise.config import RouterConfig
from tierwise.embeddings.hashing import HashingEmbedder
from tierwise.errors import ConfigError
from tierwise.learning.models import TrainedRouter, choose, strong_win_rate
from tierwise.learning.outcomes import OutcomeTable, parse_outcomes, read_outcomes
from tierwise.learning.store import load_router, make_embedder, save_router
from tierwise.learning.train import cross_validate, embed_table, fold_indices, train
from tierwise.pricing import Price
from tierwise.routing.learned import LearnedRouter
from tierwise.routing.registry import build_router
from tierwise.types import ChatRequest, Message

FIXTURE = Path(__file__).parent / "fixtures" / "outcomes_small.csv"
CHEAP, STRONG = "cheap-model", "strong-model"
KEYWORD = "integral"
TOPICS = ["weather", "recipe", "holiday", "garden", "movie", "music", "football", "travel"]
FILLER = ["please", "tell", "me", "about", "the", "quick", "question", "today", "some", "idea"]
WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
METHODS = ["knn", "logistic", "mf"]
SMALL = {"knn": {"k": 10}}


def synthetic_outcomes(rows: int = 200, seed: int = 7) -> str:
    """The fixture: every 4th prompt is about integrals (cheap fails); every 20th
    easy prompt fails on cheap anyway; a few cells are empty on purpose."""
    rng = random.Random(seed)
    out = io.StringIO()
    header = ["prompt_id", "prompt", "source_benchmark", "prompt_tokens_est", "score_scale"]
    for model in (CHEAP, STRONG):
        header += [f"score__{model}", f"cost_usd__{model}", f"out_tokens_est__{model}"]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for i in range(rows):
        hard = i % 4 == 0
        topic = KEYWORD if hard else rng.choice(TOPICS)
        words = [*rng.sample(FILLER, 3), topic, *rng.sample(FILLER, 2)]
        prompt = " ".join(words)
        tokens, out_tokens = len(prompt) // 4, 10 + i % 7
        cheap = 0 if hard or i % 20 == 7 else 1
        cheap_cost = f"{(tokens * 0.1 + out_tokens * 0.4) / 1e6:.10f}"
        strong_cost = "" if i % 10 == 3 else f"{(tokens * 2.0 + out_tokens * 8.0) / 1e6:.10f}"
        strong_score = "" if i == rows - 1 else "1"
        first, rest = (
            [f"synthetic-{i:03d}", prompt, "synthetic/planted-keyword", tokens, "correct_0_1"],
            [cheap, cheap_cost, out_tokens, strong_score, strong_cost, out_tokens],
        )
        writer.writerow([*first, *rest])
    return out.getvalue()


PRICES = {STRONG: Price(Decimal("2.0"), Decimal("8.0"))}


@pytest.fixture(scope="module")
def table() -> OutcomeTable:
    return read_outcomes(FIXTURE, prices=PRICES)


@pytest.fixture(scope="module")
def embedder() -> HashingEmbedder:
    return HashingEmbedder(256)


def is_hard(text: str) -> bool:
    return KEYWORD in text


def test_fixture_is_the_synthetic_generator_output() -> None:
    assert FIXTURE.read_text() == synthetic_outcomes()


def test_reads_the_fixture_with_models_scores_costs_and_hash(table: OutcomeTable) -> None:
    assert table.models == [CHEAP, STRONG]
    assert len(table) == 200 and table.prompt_ids[0] == "synthetic-000"
    assert table.content_hash == hashlib.sha256(FIXTURE.read_bytes()).hexdigest()
    assert np.isnan(table.scores[199, 1]) and np.isnan(table.scores).sum() == 1
    hard = np.array([is_hard(t) for t in table.texts])
    assert (table.scores[hard, 0] == 0).all() and np.nanmean(table.scores[~hard, 1]) == 1.0
    assert not np.isnan(table.costs).any()


def test_empty_cells_are_nan_and_query_only_wins() -> None:
    data = (
        b"prompt_id,prompt,query_only,score__a,score__b,cost_usd__a\n"
        b"p1,long few-shot prompt,the question,1,,0.5\n"
        b",plain prompt,,,0,\n"
        b'p3,"multi\nline",, 0 ,,x\n'
    )
    table = parse_outcomes(data)
    assert table.texts == ["the question", "plain prompt", "multi\nline"]
    assert table.prompt_ids == ["p1", "row-1", "p3"]
    assert np.isnan(table.scores[0, 1]) and np.isnan(table.scores[1, 0])
    assert np.isnan(table.scores[2, 1]) and table.scores[2, 0] == 0.0
    assert table.costs[0, 0] == 0.5 and np.isnan(table.costs[1:, 0]).all()
    assert np.isnan(table.costs[:, 1]).all()
    assert parse_outcomes(b"prompt_id,prompt,score__a\n").scores.shape == (0, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"prompt_id,prompt,score__a\np1,hi,1\np2,yo,n/a\n", "line 3, column score__a: 'n/a'"),
        (b"prompt_id,prompt,score__a\np1,hi,inf\n", "line 2, column score__a: 'inf'"),
        (b"prompt_id,prompt,score__a,score__b\np1,hi,1,\np2,yo,,\n", "line 3: no score"),
        (b"prompt_id,score__a\np1,1\n", "no 'prompt' column"),
        (b"prompt_id,prompt,grade\np1,hi,1\n", "no 'score__<model>' columns"),
    ],
)
def test_bad_tables_get_errors_naming_line_and_column(data: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_outcomes(data)


def test_one_to_ten_judge_scores_are_normalised() -> None:
    data = (
        b"prompt_id,prompt,score_scale,score__a,score__b\n"
        b"m1,q,gpt4_judge_1_10_mean_of_2_turns,10,5.5\n"
        b"m2,q2,correct_0_1,1,0\n"
        b"m3,q3,,7,1\n"
    )
    scores = parse_outcomes(data).scores
    np.testing.assert_allclose(scores[0], [1.0, 0.5])
    np.testing.assert_allclose(scores[1], [1.0, 0.0])
    np.testing.assert_allclose(scores[2], [6 / 9, 0.0])


def test_costs_come_from_the_table_else_tokens_times_price() -> None:
    data = (
        b"prompt_id,prompt,prompt_tokens_est,cost_usd__x,out_tokens_est__x,"
        b"score__x,score__gpt-4o-mini,out_tokens_est__gpt-4o-mini,score__unknown-llm,"
        b"out_tokens_est__unknown-llm\n"
        b"a,q,1000,0.25,10,1,1,2000,1,5\n"
        b"b,q,1000,,2000,1,1,,1,5\n"
    )
    prices = {"x": Price(Decimal("1"), Decimal("2"))}
    costs = parse_outcomes(data, prices=prices).costs
    assert costs[0, 0] == 0.25
    assert costs[1, 0] == pytest.approx((1000 * 1 + 2000 * 2) / 1e6)
    assert costs[0, 1] == pytest.approx((1000 * 0.15 + 2000 * 0.60) / 1e6)
    assert np.isnan(costs[1, 1]) and np.isnan(costs[:, 2]).all()
    filled = parse_outcomes(data, prices=prices, default_out_tokens=0).costs
    assert filled[1, 1] == pytest.approx(1000 * 0.15 / 1e6)


def test_tables_without_required_columns_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="score__"):
        parse_outcomes(b"prompt_id,prompt\n1,x\n")
    with pytest.raises(ConfigError, match="'prompt'"):
        parse_outcomes(b"prompt_id,score__a\n1,1\n")
    with pytest.raises(ConfigError, match="cannot read"):
        read_outcomes(tmp_path / "missing.csv")


def split(table: OutcomeTable) -> tuple[OutcomeTable, OutcomeTable]:
    return table.subset(range(150)), table.subset(range(150, 200))


@pytest.mark.parametrize("method", METHODS)
def test_each_method_learns_the_planted_keyword(
    method: str, table: OutcomeTable, embedder: HashingEmbedder
) -> None:
    train_rows, test_rows = split(table)
    router = train(train_rows, method, embedder, hyperparameters=SMALL.get(method))
    p = router.predict(embed_table(test_rows, embedder))
    hard = np.array([is_hard(t) for t in test_rows.texts])
    assert p[hard, 0].mean() < 0.35 and p[~hard, 0].mean() > 0.7
    assert p[:, 1].mean() > 0.9
    picked = router.choose(embed_table(test_rows, embedder), cost_weight=0.5)
    assert ((picked == 1) == hard).mean() >= 0.9


def test_knn_shrinks_toward_the_mean_without_close_neighbours(
    table: OutcomeTable, embedder: HashingEmbedder
) -> None:
    router = train(table, "knn", embedder, hyperparameters={"k": 5, "prior_strength": 1e6})
    p = router.predict(embed_table(table.subset([0, 1]), embedder))
    np.testing.assert_allclose(p, np.tile(router.mean_scores, (2, 1)), atol=1e-3)


def test_cost_weight_sweeps_move_choices_toward_cheap_monotonically(
    table: OutcomeTable, embedder: HashingEmbedder
) -> None:
    router = train(table, "logistic", embedder)
    p = router.predict(embed_table(table, embedder))
    shares = [(choose(p, router.relative_costs, w) == 0).mean() for w in np.linspace(0, 2, 21)]
    assert shares == sorted(shares) and shares[0] < 0.3 and shares[-1] == 1.0
    rng = np.random.default_rng(3)
    p3, relative = rng.random((500, 4)), np.array([0.1, 1.0, 0.3, 0.0])
    costs = [relative[choose(p3, relative, w)] for w in np.linspace(0, 3, 31)]
    assert all((a >= b).all() for a, b in itertools.pairwise(costs))


def test_strong_win_rate_orders_like_the_probability_gap() -> None:
    p = np.array([[0.9, 0.9], [0.2, 0.8], [0.8, 0.2]])
    np.testing.assert_allclose(strong_win_rate(p, weak=0, strong=1), [0.5, 0.8, 0.2])


@pytest.mark.parametrize("method", METHODS)
def test_save_load_round_trip(
    method: str, table: OutcomeTable, embedder: HashingEmbedder, tmp_path: Path
) -> None:
    router = train(table, method, embedder, cost_weight=0.3, clock=lambda: WHEN, seed=4)
    path = tmp_path / "router.npz"
    save_router(router, path)
    loaded = load_router(path, embedder_name=embedder.name)
    x = embed_table(table, embedder)
    np.testing.assert_array_equal(loaded.predict(x), router.predict(x))
    for field in ("models", "embedder_name", "embedder_dimension", "data_hash", "n_prompts"):
        assert getattr(loaded, field) == getattr(router, field)
    assert (loaded.method, loaded.created, loaded.cost_weight) == (method, WHEN.isoformat(), 0.3)
    assert loaded.predictor.hyperparameters() == router.predictor.hyperparameters()
    np.testing.assert_array_equal(loaded.mean_costs, router.mean_costs)
    assert loaded.data_hash == table.content_hash and loaded.n_prompts == 200


def test_load_rejects_other_embedders_and_foreign_files(
    table: OutcomeTable, embedder: HashingEmbedder, tmp_path: Path
) -> None:
    path = tmp_path / "router.npz"
    save_router(train(table, "knn", embedder), path)
    with pytest.raises(ConfigError, match="trained with embedder 'hashing-256-c3'"):
        load_router(path, embedder_name="minilm")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="cannot read"):
        load_router(tmp_path / "junk.npz")
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays["metadata"].tobytes())
    meta["format_version"] = 99
    arrays["metadata"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(ConfigError, match="version 99"):
        load_router(tmp_path / "future.npz")


def test_make_embedder_by_name() -> None:
    assert make_embedder("hashing").name == "hashing-512-c3"
    assert make_embedder("hashing-256-c4").name == "hashing-256-c4"
    with pytest.raises(ConfigError, match="unknown embedder"):
        make_embedder("word2vec")


def test_make_embedder_builds_minilm_lazily_with_its_token_limit() -> None:
    pytest.importorskip("tierwise.embeddings.minilm")
    assert "minilm" in make_embedder("minilm").name
    assert make_embedder("all-minilm-l6-v2-int8-t128").name.endswith("-t128")


def test_train_rejects_unknown_methods(table: OutcomeTable) -> None:
    with pytest.raises(ValueError, match="unknown method 'svm'"):
        train(table, "svm")


@pytest.fixture
def router_file(table: OutcomeTable, embedder: HashingEmbedder, tmp_path: Path) -> Path:
    path = tmp_path / "router.npz"
    save_router(train(table, "knn", embedder, cost_weight=0.5, hyperparameters={"k": 10}), path)
    return path


def request(text: str) -> ChatRequest:
    return ChatRequest([Message("system", "be brief"), Message("user", text)])


async def test_learned_router_decides_end_to_end(router_file: Path) -> None:
    options = {"path": str(router_file), "models": {CHEAP: "cheap", STRONG: "strong"}}
    router = build_router(RouterConfig(kind="learned", options=options))
    targets = ["cheap", "strong"]
    hard = await router.decide(request("tell me about the integral today please"), targets)
    easy = await router.decide(request("tell me about the weather today please"), targets)
    assert (hard.target, easy.target) == ("strong", "cheap")
    assert hard.router == "learned" and "strong-model (strong) has the best utility" in hard.reason
    assert set(hard.scores) == {
        f"{kind}:{model}" for kind in ("p", "utility", "cost_usd") for model in (CHEAP, STRONG)
    } | {"strong_win_rate"}
    assert hard.scores[f"p:{CHEAP}"] < 0.5 < easy.scores[f"p:{CHEAP}"]
    win = 0.5 + (hard.scores[f"p:{STRONG}"] - hard.scores[f"p:{CHEAP}"]) / 2
    assert hard.scores["strong_win_rate"] == pytest.approx(win)
    assert hard.latency_ms > 0
    stingy = LearnedRouter(
        router_file, {CHEAP: "cheap", STRONG: "strong"}, cost_weight=5.0, offload=True
    )
    assert (await stingy.decide(request("the integral please"), targets)).target == "cheap"


async def test_learned_router_threshold_picks_strongest_or_cheapest_tier(
    router_file: Path,
) -> None:
    options = {
        "path": str(router_file),
        "models": {CHEAP: "cheap", STRONG: "strong"},
        "threshold": 0.6,
    }
    router = build_router(RouterConfig(kind="learned", options=options))
    targets = ["local", "cheap", "strong"]
    hard = await router.decide(request("tell me about the integral today please"), targets)
    easy = await router.decide(request("tell me about the weather today please"), targets)
    assert hard.scores["strong_win_rate"] > 0.6 >= easy.scores["strong_win_rate"]
    assert (hard.target, easy.target) == ("strong", "cheap")
    assert "strong win rate" in hard.reason and "> threshold 0.6" in hard.reason
    assert "<= threshold 0.6" in easy.reason
    never = LearnedRouter(router_file, {CHEAP: "cheap", STRONG: "strong"}, threshold=1.0)
    assert (await never.decide(request("the integral please"), targets)).target == "cheap"
    always = LearnedRouter(router_file, {CHEAP: "cheap", STRONG: "strong"}, threshold=0.0)
    assert (await always.decide(request("weather today"), targets)).target == "strong"
    one_tier = await always.decide(request("weather today"), ["cheap"])
    assert one_tier.target == "cheap" and "strong_win_rate" not in one_tier.scores


async def test_learned_router_ignores_unmapped_models_and_absent_tiers(router_file: Path) -> None:
    only_strong = LearnedRouter(router_file, {STRONG: "strong"})
    decision = await only_strong.decide(request("weather today"), ["cheap", "strong"])
    assert decision.target == "strong" and f"p:{CHEAP}" not in decision.scores
    elsewhere = await only_strong.decide(request("weather today"), ["local", "cheap"])
    assert elsewhere.target == "local" and "no mapped model" in elsewhere.reason


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"models": {CHEAP: "cheap"}}, "needs 'path'"),
        ({"path": "x.npz", "models": ["cheap"]}, "needs 'models'"),
        ({"path": "x.npz", "models": {}}, "maps no model"),
        ({"path": "x.npz", "models": {CHEAP: "c"}, "cost_weight": -1}, "'cost_weight'"),
        ({"path": "x.npz", "models": {CHEAP: "c"}, "cost_weight": "high"}, "'cost_weight'"),
        ({"path": "x.npz", "models": {CHEAP: "c"}, "threshold": 1.5}, "'threshold'"),
        ({"path": "x.npz", "models": {CHEAP: "c"}, "threshold": True}, "'threshold'"),
        (
            {"path": "x.npz", "models": {CHEAP: "c"}, "threshold": 0.5, "cost_weight": 1},
            "not both",
        ),
        ({"path": "x.npz", "models": {CHEAP: "c"}, "embedder": 3}, "'embedder'"),
        ({"path": "x.npz", "models": {CHEAP: "c"}, "lazy": "no"}, "'lazy'"),
        ({"path": "x.npz", "models": {CHEAP: "c"}, "offload": 1}, "'offload'"),
        ({"path": "missing.npz", "models": {CHEAP: "c"}}, "cannot read"),
    ],
)
def test_learned_router_option_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_router(RouterConfig(kind="learned", options=options))


def test_learned_router_checks_models_and_embedder(router_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"\['gpt-9'\] are not models"):
        LearnedRouter(router_file, {"gpt-9": "strong"})
    with pytest.raises(ConfigError, match="trained with embedder"):
        LearnedRouter(router_file, {STRONG: "strong"}, embedder="hashing")


async def test_lazy_learned_router_reads_its_file_at_the_first_decision(
    router_file: Path, tmp_path: Path
) -> None:
    router = LearnedRouter(tmp_path / "later.npz", {STRONG: "strong"}, lazy=True)
    with pytest.raises(ConfigError, match="cannot read"):
        await router.decide(request("hi"), ["cheap", "strong"])
    (tmp_path / "later.npz").write_bytes(router_file.read_bytes())
    decision = await router.decide(request("hi"), ["cheap", "strong"])
    assert decision.target == "strong"


def test_folds_never_share_a_prompt_id_or_text(table: OutcomeTable) -> None:
    doubled = parse_outcomes(
        FIXTURE.read_bytes()
        + FIXTURE.read_text().splitlines()[5].replace("synthetic-004", "dup").encode()
        + b"\n"
    )
    for data in (table, doubled):
        splits = fold_indices(data, 5, seed=1)
        tested = np.concatenate([test for _, test in splits])
        assert sorted(tested.tolist()) == list(range(len(data)))
        for train_rows, test_rows in splits:
            assert not {data.prompt_ids[i] for i in train_rows} & {
                data.prompt_ids[i] for i in test_rows
            }
            assert not {data.texts[i] for i in train_rows} & {data.texts[i] for i in test_rows}


def test_cross_validation_reports_held_out_metrics(
    table: OutcomeTable, embedder: HashingEmbedder
) -> None:
    results = cross_validate(
        table, "knn", embedder, folds=4, cost_weights=(0.0, 0.5, 5.0), hyperparameters={"k": 10}
    )
    assert len(results) == 4
    assert set().union(*(r.test_ids for r in results)) == set(table.prompt_ids)
    for result in results:
        assert not result.train_ids & result.test_ids
        free, balanced, stingy = result.router
        assert free.quality >= balanced.quality >= stingy.quality
        assert stingy.shares[CHEAP] == 1.0 and free.cost_usd > balanced.cost_usd
        assert balanced.quality > 0.9 and balanced.shares[CHEAP] > 0.6
        oracle = result.baselines[-1]
        assert oracle.name == "oracle" and oracle.quality == 1.0


def test_train_with_folds_keeps_the_held_out_summary(
    table: OutcomeTable, embedder: HashingEmbedder
) -> None:
    router = train(table, "logistic", embedder, folds=3, clock=lambda: WHEN)
    summary = router.extra["cross_validation"]
    assert summary["folds"] == 3 and summary["router"][0]["name"] == "w=0"
    assert isinstance(router, TrainedRouter) and router.created == "2025-01-02T03:04:05+00:00"


def test_train_command_writes_a_router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path / "home"))
    app = typer.Typer()
    app.command("train")(train_command)
    app.command("noop")(lambda: None)
    out = tmp_path / "r.npz"
    args = ["train", str(FIXTURE), "--out", str(out), "--method", "logistic", "--folds", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "trained logistic (C=" in result.output and "200 prompts x 2 models" in result.output
    assert "| logistic (C=1) on hashing" in result.output
    assert "nested 3-fold cross-validation" in result.output
    assert load_router(out).method == "logistic"
    bad = CliRunner().invoke(app, ["train", str(FIXTURE), "--out", str(out), "--method", "svm"])
    assert bad.exit_code == 1 and "unknown method" in bad.output


def test_cli_module_does_not_import_numpy() -> None:
    code = "import sys, tierwise.cli.learning; print('numpy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "False"


def test_nan_costs_count_as_free_in_relative_costs(table: OutcomeTable) -> None:
    router = train(table.subset(range(10)), "knn", HashingEmbedder(64))
    unknown = TrainedRouter(
        router.predictor,
        router.models,
        router.mean_scores,
        np.array([math.nan, 1.0]),
        router.embedder_name,
        router.embedder_dimension,
    )
    np.testing.assert_array_equal(unknown.relative_costs, [0.0, 1.0])


if __name__ == "__main__":
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(synthetic_outcomes())
