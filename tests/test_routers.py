"""Routers on crafted prompts, and through the gateway against the fake upstream."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from tests.helpers import CHEAP_PRICE, GatewayFactory
from tierwise import ChatRequest, Message
from tierwise.config import RouterConfig
from tierwise.errors import ConfigError
from tierwise.routing import ChainRouter, HeuristicRouter, build_router
from tierwise.routing.heuristic import Rule
from tierwise.testing import FakeUpstream

TIERS = ["cheap", "strong"]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def user(text: str, *earlier: str) -> ChatRequest:
    turns = [Message(role, t) for t in earlier for role in ("user",)]
    return ChatRequest([*turns, Message("user", text)])


async def target_of(router: object, request: ChatRequest, tiers: list[str] = TIERS) -> str:
    return (await router.decide(request, tiers)).target  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("request_", "expected", "why"),
    [
        (user("What are your hours?"), "cheap", "short"),
        (user(""), "cheap", "short"),
        (
            ChatRequest(
                [
                    Message(
                        "user",
                        [
                            {
                                "type": "text",
                                "text": "What is in this picture? "
                                "Describe every object you can see.",
                            },
                            IMAGE,
                        ],
                    )
                ]
            ),
            "strong",
            "attachment",
        ),
        (
            user("Could you please analyze the liability clauses in the attached contract text?"),
            "strong",
            "keyword 'analyze'",
        ),
        (
            user("Explain why the sky looks blue at noon and red at sunset, in two lines."),
            "strong",
            "keyword 'explain why'",
        ),
        (
            user("Write me a friendly two paragraph note thanking my team for the launch."),
            "cheap",
            "no rule fired",
        ),
        (
            user("ok thanks", "Please compare these three database architectures in depth."),
            "cheap",
            "short",
        ),
        (
            user("Analysieren Sie bitte die Vertragsklauseln und bewerten Sie die Risiken."),
            "cheap",
            "no rule fired",
        ),
        (user("x " * 20_000), "cheap", "no rule fired"),
    ],
)
async def test_seed_rules_on_crafted_prompts(
    request_: ChatRequest, expected: str, why: str
) -> None:
    decision = await HeuristicRouter().decide(request_, TIERS)
    assert decision.target == expected
    assert why in decision.reason
    assert decision.latency_ms < 50


async def test_keyword_stuffing_forces_the_strong_tier_only_past_the_short_rule() -> None:
    router = HeuristicRouter()
    assert await target_of(router, user("analyze compare architecture")) == "cheap"
    stuffed = "hi! " + "analyze compare evaluate architecture tradeoff " * 3
    assert await target_of(router, user(stuffed)) == "strong"


async def test_configured_rules_cover_every_condition() -> None:
    router = HeuristicRouter.from_options(
        rules=[
            {"tier": "strong", "has_tools": True},
            {"tier": "strong", "response_format": True},
            {"tier": "strong", "min_turns": 3},
            {"tier": "strong", "has_code": True},
            {"tier": "strong", "regex": r"(?i)\bprove\b"},
            {"tier": "strong", "min_tokens": 500},
            {"tier": "strong", "min_non_ascii_share": 0.3},
            {"tier": "cheap", "max_tokens": 100},
        ],
        default="strongest",
    )
    tools = [{"type": "function", "function": {"name": "f"}}]
    base = "a plain request of ordinary length"
    assert await target_of(router, ChatRequest([Message("user", base)], tools=tools)) == "strong"
    fmt = {"type": "json_object"}
    assert (
        await target_of(router, ChatRequest([Message("user", base)], response_format=fmt))
        == "strong"
    )
    assert await target_of(router, user(base, "one", "two")) == "strong"
    assert await target_of(router, user("fix this\n```py\nx = 1\n```")) == "strong"
    assert await target_of(router, user("Prove that there are infinitely many primes")) == "strong"
    assert await target_of(router, user("word " * 600)) == "strong"
    assert await target_of(router, user("这是一个关于天气的简单问题吗")) == "strong"
    assert await target_of(router, user(base)) == "cheap"
    assert await target_of(router, user("y " * 300)) == "strong"


def test_rule_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match=r"router.rules\[0\].*unknown rule key"):
        HeuristicRouter.from_options(rules=[{"tier": "strong", "keyword": ["x"]}])
    with pytest.raises(ConfigError, match="invalid regex"):
        HeuristicRouter.from_options(rules=[{"tier": "strong", "regex": "("}])
    with pytest.raises(ConfigError, match="unknown router"):
        build_router(RouterConfig(kind="psychic"))


async def test_three_tiers_and_named_tiers() -> None:
    router = HeuristicRouter(
        rules=[Rule("mid", keywords=("summarize",)), Rule("strongest", keywords=("prove",))]
    )
    tiers = ["small", "mid", "large"]
    assert await target_of(router, user("please summarize this text for me"), tiers) == "mid"
    assert await target_of(router, user("prove it"), tiers) == "large"
    assert await target_of(router, user("hello"), tiers) == "small"


async def test_chain_asks_the_next_router_when_unsure() -> None:
    chain = ChainRouter(
        [
            HeuristicRouter(abstain=True),
            build_router(RouterConfig(kind="fixed", options={"target": "strong"})),
        ]
    )
    unsure = await chain.decide(
        user("Write me a friendly note thanking the whole team today."), TIERS
    )
    assert unsure.target == "strong" and unsure.router == "chain>fixed"
    assert "heuristic unsure" in unsure.reason
    sure = await chain.decide(user("hi"), TIERS)
    assert sure.target == "cheap" and sure.router == "chain>heuristic"


def classifier_routes(**options: object) -> dict[str, object]:
    router = {"kind": "classifier", "deployment": "mini", "timeout_s": 10.0, **options}
    return {"auto": {"router": router, "baseline": "big"}}


def reply(label: str) -> str:
    return f'[[reply={{"complexity":"{label}","reasoning":"because"}} model=cheap-model]]'


async def test_classifier_routes_and_charges_its_tax(
    upstream: FakeUpstream, make_gateway: GatewayFactory
) -> None:
    gateway = make_gateway(routes=classifier_routes())
    prompt = "Plan a migration of our billing system " + reply("complex")
    result = await gateway.chat(ChatRequest([Message("user", prompt)]))
    decision = result.record.decision
    assert decision is not None and decision.router == "classifier"
    assert decision.target == "strong" and decision.reason == "complex: because"
    assert result.record.final_deployment == "big"
    assert result.record.cost.router_usd == decision.cost_usd > 0
    assert result.record.cost.total_usd == result.record.cost.attempts_usd + decision.cost_usd
    sent = upstream.requests[0].body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"]["properties"]["complexity"]["enum"] == [
        "simple",
        "moderate",
        "complex",
    ]
    again = await gateway.chat(ChatRequest([Message("user", prompt)]))
    assert again.record.decision is not None and again.record.decision.reason.startswith("cached")
    assert again.record.cost.router_usd == 0
    assert upstream.count("cheap-model") == 1


@pytest.mark.parametrize(
    "fault",
    [
        "[[reply=gibberish model=cheap-model]]",
        "[[fault=500 model=cheap-model]]",
        "[[fault=hang model=cheap-model]]",
        reply("enormous"),
    ],
)
async def test_classifier_falls_back_to_the_heuristic(
    make_gateway: GatewayFactory, fault: str
) -> None:
    gateway = make_gateway(
        routes=classifier_routes(timeout_s=0.5), tiers={"cheap": ["mini-b"], "strong": ["big"]}
    )
    prompt = "Please analyze the tradeoffs of these two designs " + fault
    result = await gateway.chat(ChatRequest([Message("user", prompt)]))
    decision = result.record.decision
    assert decision is not None and decision.router == "classifier>heuristic"
    assert decision.target == "strong" and re.search(r"classifier failed \(.+\)", decision.reason)
    assert result.record.final_deployment == "big"


@pytest.mark.parametrize(
    "answer",
    ["[[reply=gibberish model=cheap-model]]", reply("enormous")],
    ids=["not-json", "unknown-label"],
)
async def test_classifier_charges_its_tokens_when_its_answer_is_invalid(
    upstream: FakeUpstream, make_gateway: GatewayFactory, answer: str
) -> None:
    gateway = make_gateway(
        routes=classifier_routes(), tiers={"cheap": ["mini-b"], "strong": ["big"]}
    )
    prompt = "Please analyze the tradeoffs of these two designs " + answer
    result = await gateway.chat(ChatRequest([Message("user", prompt)]))
    decision = result.record.decision
    assert decision is not None and decision.router == "classifier>heuristic"
    (asked,) = [r for r in upstream.requests if r.model == "cheap-model"]
    client = AsyncOpenAI(base_url=upstream.base_url + "/v1", api_key="unused")
    replayed = await client.chat.completions.create(**asked.body)
    await client.close()
    assert replayed.usage is not None and replayed.usage.completion_tokens > 0
    price = Decimal(CHEAP_PRICE["input"]), Decimal(CHEAP_PRICE["output"])
    tokens = replayed.usage.prompt_tokens, replayed.usage.completion_tokens
    expected = (tokens[0] * price[0] + tokens[1] * price[1]) / 1_000_000
    cost = result.record.cost
    assert cost.router_usd == decision.cost_usd == expected
    assert cost.total_usd == cost.attempts_usd + expected
    assert decision.usage is not None
    assert (decision.usage.input_tokens, decision.usage.output_tokens) == tokens


async def test_cascade_escalates_when_two_cheap_answers_disagree(
    make_gateway: GatewayFactory,
) -> None:
    routes = {
        "auto": {
            "router": "cascade",
            "baseline": "big",
            "checks": [{"kind": "agreement", "deployment": "mini-b"}],
        }
    }
    gateway = make_gateway(routes=routes)
    agree = await gateway.chat(user("What is 2+2? [[reply=4]]"))
    assert [(a.deployment, a.trigger) for a in agree.record.attempts] == [("mini", None)]
    assert agree.record.cost.checks_usd > 0
    disagree = await gateway.chat(
        user("What is 2+2? [[reply=four model=cheap-model]] [[reply=five model=cheap-b-model]]")
    )
    assert [(a.deployment, a.trigger) for a in disagree.record.attempts] == [
        ("mini", "quality_check"),
        ("big", "quality_check"),
    ]
    assert disagree.record.cost.checks_usd > agree.record.cost.checks_usd
    assert disagree.record.cost.total_usd == (
        disagree.record.cost.attempts_usd + disagree.record.cost.checks_usd
    )


async def test_cascade_with_auto_confidence(make_gateway: GatewayFactory) -> None:
    """Token logprobs where the provider returns them, the model's own report
    otherwise (the Anthropic deployment returns no logprobs)."""
    routes = {"auto": {"router": "cascade", "confidence": {"kind": "auto", "threshold": 0.6}}}
    gateway = make_gateway(routes=routes)
    low = await gateway.chat(user("hi [[logprob=-3 model=cheap-model]] [[confidence=0.99]]"))
    assert [a.trigger for a in low.record.attempts] == ["low_confidence", None]
    assert low.record.attempts[0].confidence == pytest.approx(0.0498, abs=1e-3)
    no_logprobs = make_gateway(routes=routes, tiers={"cheap": ["claude"], "strong": ["big"]})
    reported = await no_logprobs.chat(
        user('classify [[reply={"answer":"spam","confidence":0.2} model=claude-model]]')
    )
    assert [a.trigger for a in reported.record.attempts] == ["low_confidence", None]
    assert reported.record.attempts[0].confidence == 0.2


@pytest.mark.parametrize("embedder", ["hashing", "static", "minilm"])
async def test_embedding_router_through_the_gateway(
    make_gateway: GatewayFactory, embedder: str
) -> None:
    if embedder == "minilm":
        pytest.importorskip("onnxruntime")
    routes = {"auto": {"router": {"kind": "embedding", "embedder": embedder}, "baseline": "big"}}
    gateway = make_gateway(routes=routes)
    simple = await gateway.chat(user("How do I reset my password?"))
    hard = await gateway.chat(
        user(
            "Compare these three architectural approaches for a distributed cache and recommend "
            "one, with the tradeoffs"
        )
    )
    assert simple.record.final_tier == "cheap" and hard.record.final_tier == "strong"
    assert hard.record.decision is not None and hard.record.decision.router == "embedding"
    assert set(hard.record.decision.scores) == {"cheap", "strong"}


async def test_learned_router_through_the_gateway(
    make_gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trained with `tierwise train` on the synthetic fixture, where prompts about
    an integral defeat the cheap model; the gateway decides at the operating point
    stored in the file."""
    from typer.testing import CliRunner

    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path / "home"))

    from tierwise.cli import app

    fixture = Path(__file__).parent / "fixtures" / "outcomes_small.csv"
    model = tmp_path / "router.npz"
    result = CliRunner().invoke(
        app, ["train", str(fixture), "--out", str(model), "--method", "logistic"]
    )
    assert result.exit_code == 0, result.output
    router = {
        "kind": "learned",
        "path": str(model),
        "models": {"cheap-model": "cheap", "strong-model": "strong"},
    }
    gateway = make_gateway(routes={"auto": {"router": router, "baseline": "big"}})
    hard = await gateway.chat(user("quick question about an integral please tell me"))
    easy = await gateway.chat(user("quick question about a recipe please tell me"))
    assert hard.record.final_tier == "strong" and easy.record.final_tier == "cheap"
    decision = hard.record.decision
    assert decision is not None and decision.router == "learned"
    assert decision.scores["p:strong-model"] > decision.scores["p:cheap-model"]


async def test_embedding_router_fitted_from_outcome_data(
    make_gateway: GatewayFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path / "home"))

    from tierwise.cli import app

    fixture = Path(__file__).parent / "fixtures" / "outcomes_small.csv"
    examples = tmp_path / "examples.yaml"
    result = CliRunner().invoke(
        app,
        [
            "fit-examples",
            str(fixture),
            "--cheap",
            "cheap-model",
            "--strong",
            "strong-model",
            "--out",
            str(examples),
            "--per-tier",
            "12",
        ],
    )
    assert result.exit_code == 0, result.output
    router = {
        "kind": "embedding",
        "embedder": "hashing",
        "examples_file": str(examples),
    }
    gateway = make_gateway(routes={"auto": {"router": router, "baseline": "big"}})
    hard = await gateway.chat(user("please tell me, quick question about an integral"))
    easy = await gateway.chat(user("please tell me, quick question about a recipe"))
    assert hard.record.final_tier == "strong" and easy.record.final_tier == "cheap"
