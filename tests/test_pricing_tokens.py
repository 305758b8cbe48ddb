"""Exact cost arithmetic, the shipped model table, and token counting/bounds."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tierwise.pricing import Price, lookup_model, price_table
from tierwise.tokens import (
    count_message_tokens,
    count_text_tokens,
    encoding_name,
    fits_context,
    lower_bound_tokens,
    upper_bound_tokens,
)
from tierwise.types import ChatRequest, Message, ToolCall, Usage

# --- cost -------------------------------------------------------------------------------


def test_cost_is_exact_decimal() -> None:
    price = Price(Decimal("0.15"), Decimal("0.60"))
    cost = price.cost_usd(Usage(input_tokens=1234, output_tokens=567))
    assert isinstance(cost, Decimal)
    # 1234 * 0.15 + 567 * 0.60 = 185.1 + 340.2 = 525.3 per million
    assert cost == Decimal("0.0005253")


def test_cost_without_float_rounding_over_many_requests() -> None:
    price = Price(Decimal("0.10"), Decimal("0.40"))
    total = sum((price.cost_usd(Usage(1, 1)) for _ in range(1000)), Decimal(0))
    assert total == Decimal("0.0005")


def test_cached_input_tokens_are_a_subset_of_input_tokens() -> None:
    price = Price(Decimal("2.50"), Decimal("10.00"), Decimal("1.25"))
    usage = Usage(input_tokens=1000, output_tokens=100, cached_input_tokens=400)
    # 600 * 2.50 + 400 * 1.25 + 100 * 10 = 1500 + 500 + 1000 = 3000 per million
    assert price.cost_usd(usage) == Decimal("0.003")


def test_cached_input_without_a_cached_price_costs_the_input_price() -> None:
    price = Price(Decimal("2.50"), Decimal("10.00"))
    cached = price.cost_usd(Usage(1000, 0, cached_input_tokens=400))
    assert cached == price.cost_usd(Usage(1000, 0)) == Decimal("0.0025")


def test_cached_count_above_input_is_clamped() -> None:
    price = Price(Decimal("2"), Decimal("8"), Decimal("0.5"))
    assert price.cost_usd(Usage(100, 0, cached_input_tokens=500)) == Decimal("0.00005")


def test_zero_price_and_worst_case() -> None:
    assert Price().cost_usd(Usage(10_000, 10_000)) == 0
    price = Price(Decimal("3"), Decimal("15"))
    assert price.worst_case_usd(2000, 1000) == Decimal("0.021")


# --- the model table --------------------------------------------------------------------


def test_every_table_row_has_input_and_output_prices() -> None:
    table = price_table()
    assert len(table) >= 10
    for name, info in table.items():
        assert info.name == name
        assert isinstance(info.price.input_per_mtok, Decimal)
        assert isinstance(info.price.output_per_mtok, Decimal)
        assert info.price.input_per_mtok >= 0
        assert info.price.output_per_mtok >= 0
        cached = info.price.cached_input_per_mtok
        assert cached is None or 0 <= cached <= info.price.input_per_mtok
        assert info.context_window is None or info.context_window > 0
        assert info.max_output_tokens is None or info.max_output_tokens > 0
        if info.context_window and info.max_output_tokens:
            assert info.max_output_tokens <= info.context_window


def test_table_prices_are_exact_decimals() -> None:
    info = lookup_model("gpt-4o-mini")
    assert info is not None
    assert info.price == Price(Decimal("0.15"), Decimal("0.60"), Decimal("0.075"))
    assert info.context_window == 128000
    assert info.max_output_tokens == 16384


def test_lookup_exact_name() -> None:
    info = lookup_model("gpt-4o")
    assert info is not None and info.name == "gpt-4o"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openai/gpt-4o", "gpt-4o"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("anthropic/claude-haiku-4-5", "claude-haiku-4-5"),
        ("GPT-4o", "gpt-4o"),
    ],
)
def test_lookup_strips_a_vendor_prefix_and_case(name: str, expected: str) -> None:
    info = lookup_model(name)
    assert info is not None and info.name == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("openai/gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("llama-3.1-8b:q4_k_m", "llama-3.1-8b"),
    ],
)
def test_lookup_dated_snapshot_takes_the_longest_prefix(name: str, expected: str) -> None:
    info = lookup_model(name)
    assert info is not None and info.name == expected


@pytest.mark.parametrize("name", ["gpt-4", "my-finetune", "", "gpt-4omni", "claude"])
def test_lookup_unknown_model_is_none(name: str) -> None:
    assert lookup_model(name) is None


# --- token counting ---------------------------------------------------------------------


def test_count_hello_world_with_cl100k() -> None:
    assert count_text_tokens("hello world") == 2
    assert count_text_tokens("hello world", "cl100k_base") == 2
    assert count_text_tokens("") == 0


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("openai/GPT-4o", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o3", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("claude-sonnet-4-5", "cl100k_base"),
    ],
)
def test_encoding_for_a_model(model: str, encoding: str) -> None:
    assert encoding_name(model) == encoding


def test_o200k_counts_differ_from_cl100k() -> None:
    text = "你好\uff0c世界。今天天气很好\uff0c我们去公园散步吧。"
    assert count_text_tokens(text, "o200k_base") < count_text_tokens(text, "cl100k_base")


def test_message_count_adds_the_framing_overhead() -> None:
    messages = [Message("system", "be brief"), Message("user", "hello world")]
    expected = 3 + (4 + count_text_tokens("be brief")) + (4 + 2)
    assert count_message_tokens(messages) == expected


def request_of(*texts: str) -> ChatRequest:
    return ChatRequest([Message("user", t) for t in texts])


def test_fits_context_obviously_true_and_false() -> None:
    short = request_of("hello world")
    assert fits_context(short, context_window=8192, max_output=1000)
    huge = request_of("word " * 5000)
    assert not fits_context(huge, context_window=1000, max_output=100)
    assert not fits_context(short, context_window=100, max_output=100)


def test_fits_context_near_the_boundary_counts_exactly() -> None:
    request = request_of("hello world")
    exact = count_message_tokens(request.messages)
    assert exact == 3 + 4 + 2
    # The cheap bounds cannot decide here: lower < budget < upper.
    assert lower_bound_tokens(request) < exact < upper_bound_tokens(request)
    assert fits_context(request, context_window=exact + 100, max_output=100)
    assert not fits_context(request, context_window=exact + 99, max_output=100)


def test_fits_context_at_the_boundary_for_longer_text() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 40
    request = request_of(text)
    exact = count_message_tokens(request.messages)
    assert lower_bound_tokens(request) < exact < upper_bound_tokens(request)
    assert fits_context(request, exact + 50, 50)
    assert not fits_context(request, exact + 49, 50)


TEXTS = {
    "english": "The quick brown fox jumps over the lazy dog; it's 12:30 pm.",
    "cjk": "東京は日本の首都です。你好\uff0c世界\uff01안녕하세요, 세계.",
    "emoji": "🙂🎉👍🏽👨‍👩‍👧‍👦🏳️‍🌈 ok 🚀🚀🚀",
    "mixed": "Ünïcödé naïve café — «quotes» and "
    "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522 math.",
}


@pytest.mark.parametrize("kind", list(TEXTS))
@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base"])
def test_upper_bound_is_at_least_the_exact_count(kind: str, encoding: str) -> None:
    request = request_of(TEXTS[kind], TEXTS[kind] * 3)
    assert upper_bound_tokens(request) >= count_message_tokens(request.messages, encoding)
    assert lower_bound_tokens(request) <= count_message_tokens(request.messages, encoding)


def test_upper_bound_covers_tool_call_arguments() -> None:
    # An assistant turn that is only a tool call still costs tokens; the "strict"
    # upper bound must cover them or fits_context skips the exact count.
    call = ToolCall("call_1", "get_weather", '{"city": "Paris", "unit": "celsius"}')
    request = ChatRequest(
        [Message("user", "weather?"), Message("assistant", None, tool_calls=[call])]
    )
    exact = count_message_tokens(request.messages)
    assert upper_bound_tokens(request) >= exact


def test_fits_context_with_tool_calls_agrees_with_the_exact_count() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Paris", "unit": "celsius"}')
    request = ChatRequest(
        [Message("user", "weather?"), Message("assistant", None, tool_calls=[call])]
    )
    exact = count_message_tokens(request.messages)
    assert not fits_context(request, context_window=exact - 1, max_output=0)


def test_fits_context_with_whitespace_heavy_text_agrees_with_the_exact_count() -> None:
    # Long runs of spaces or dashes (code indentation, ASCII tables) encode to far
    # fewer than one token per ten characters, so the "practical" lower bound
    # overshoots and fits_context rejects a prompt that fits.
    request = request_of("-" * 1000)
    exact = count_message_tokens(request.messages)
    assert exact < 100
    assert fits_context(request, context_window=exact, max_output=0)


def test_counting_text_that_contains_special_token_markers() -> None:
    # User text may mention tokenizer markers; counting it must not raise.
    text = "What does <|endoftext|> mean in GPT tokenizers?"
    assert count_text_tokens(text) > 0
    request = request_of(text)
    budget = count_message_tokens(request.messages)
    assert fits_context(request, context_window=budget, max_output=0)
