"""Quality checks and confidence signals, and building them from config."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tierwise.checks import (
    AnswerView,
    CallableCheck,
    EmptyCheck,
    JsonCheck,
    LogprobConfidence,
    MinLengthCheck,
    PuntCheck,
    RefusalCheck,
    SelfReportedConfidence,
    build_check,
    build_confidence,
    register_check,
    registry,
)
from tierwise.config import CheckConfig, ConfidenceConfig, parse_config
from tierwise.errors import ConfigError
from tierwise.record import CheckResult
from tierwise.routing.context import BuildContext
from tierwise.types import (
    ChatRequest,
    ChatResponse,
    Choice,
    Message,
    TokenLogprob,
    ToolCall,
)


def view(
    text: str | None,
    *,
    complete: bool = True,
    response_format: dict[str, Any] | None = None,
    finish_reason: str | None = "stop",
    logprobs: list[float] | None = None,
    tool_calls: list[ToolCall] | None = None,
) -> AnswerView:
    request = ChatRequest([Message("user", "question?")], response_format=response_format)
    tokens = (
        None if logprobs is None else [TokenLogprob(f"t{i}", lp) for i, lp in enumerate(logprobs)]
    )
    message = Message("assistant", text, tool_calls=tool_calls)
    response = ChatResponse("r1", "m", [Choice(0, message, finish_reason, tokens)])
    return AnswerView(request, response, complete)


LONG_ANSWER = "Paris is the capital of France, on the Seine."
A_CALL = [ToolCall("c1", "lookup", '{"q": "x"}')]


# --- empty and min length ---------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t", None])
async def test_empty_check_fails_blank_answers(text: str | None) -> None:
    result = await EmptyCheck().evaluate(view(text))
    assert result == CheckResult("empty", False, "answer is blank")


async def test_empty_check_passes_text_and_tool_calls() -> None:
    assert (await EmptyCheck().evaluate(view("ok"))).passed
    assert (await EmptyCheck().evaluate(view(None, tool_calls=A_CALL))).passed


async def test_empty_check_fails_a_response_without_choices() -> None:
    request = ChatRequest([Message("user", "q")])
    answer = AnswerView(request, ChatResponse("r", "m", []))
    assert not (await EmptyCheck().evaluate(answer)).passed


async def test_min_length_fails_short_complete_answers() -> None:
    result = await MinLengthCheck(min_chars=20).evaluate(view("  Yes.  "))
    assert not result.passed
    assert result.name == "min_length"
    assert result.reason == "answer has 4 characters, fewer than 20"


async def test_min_length_boundary() -> None:
    check = MinLengthCheck(min_chars=5)
    assert (await check.evaluate(view("abcde"))).passed
    assert not (await check.evaluate(view("abcd"))).passed
    assert (await MinLengthCheck().evaluate(view(LONG_ANSWER))).passed


async def test_min_length_passes_tool_calls() -> None:
    assert (await MinLengthCheck().evaluate(view("", tool_calls=A_CALL))).passed


@pytest.mark.parametrize("check", [EmptyCheck(), MinLengthCheck(min_chars=50)])
async def test_incomplete_answers_do_not_fail_length_checks(check: Any) -> None:
    for prefix in ("", "  ", "The"):
        result = await check.evaluate(view(prefix, complete=False))
        assert result.passed, prefix
        assert result.reason == ""


# --- punt and refusal -------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I don't know.",
        "I don\u2019t know the answer to that.",  # curly apostrophe
        "Honestly, I DO NOT KNOW.",
        "Sorry, I'm not sure about this one.",
        "I\u2019m unable to find that information.",
        "I cannot answer that.",
    ],
)
async def test_punt_check_fails_punts(text: str) -> None:
    result = await PuntCheck().evaluate(view(text))
    assert not result.passed
    assert result.name == "punt"
    assert result.reason.startswith("answer punts: ")


async def test_punt_check_passes_a_real_answer() -> None:
    result = await PuntCheck().evaluate(view(LONG_ANSWER))
    assert result == CheckResult("punt", True, "")


async def test_punt_check_fails_an_incomplete_prefix_that_already_punts() -> None:
    assert not (await PuntCheck().evaluate(view("I don't know", complete=False))).passed


async def test_punt_check_with_custom_phrases_ignores_case() -> None:
    check = PuntCheck(phrases=("No Idea",))
    assert not (await check.evaluate(view("no idea, sorry"))).passed
    assert (await check.evaluate(view("I don't know"))).passed


async def test_punt_check_with_a_curly_apostrophe_phrase() -> None:
    # A phrase written with a typographic apostrophe should match answers written
    # with either apostrophe, as the built-in phrases do.
    check = PuntCheck(phrases=("I haven\u2019t a clue",))
    assert not (await check.evaluate(view("I haven\u2019t a clue."))).passed
    assert not (await check.evaluate(view("I haven't a clue."))).passed


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "  I\u2019m sorry, but I can\u2019t do that.",  # leading space and curly apostrophes
        "I CANNOT ASSIST with this request.",
        "As an AI language model, I do not have opinions.",
    ],
)
async def test_refusal_check_fails_refusals(text: str) -> None:
    result = await RefusalCheck().evaluate(view(text))
    assert not result.passed
    assert result.reason.startswith("answer refuses: ")


async def test_refusal_check_only_looks_at_the_opening() -> None:
    text = "Here is the summary. The author writes: 'I'm sorry, but I can't stay.'"
    assert (await RefusalCheck().evaluate(view(text))).passed
    late = "x" * 250 + " I'm sorry, but I can't"
    assert (await RefusalCheck().evaluate(view(late))).passed


async def test_refusal_check_fails_a_content_filter_finish() -> None:
    result = await RefusalCheck().evaluate(view(LONG_ANSWER, finish_reason="content_filter"))
    assert result == CheckResult("refusal", False, "finished by the content filter")
    empty = await RefusalCheck().evaluate(view("", finish_reason="content_filter"))
    assert not empty.passed


async def test_refusal_check_passes_normal_answers() -> None:
    assert (await RefusalCheck().evaluate(view(LONG_ANSWER))).passed
    assert (await RefusalCheck().evaluate(view(LONG_ANSWER, finish_reason="length"))).passed
    request = ChatRequest([Message("user", "q")])
    assert (await RefusalCheck().evaluate(AnswerView(request, ChatResponse("r", "m", [])))).passed


async def test_refusal_check_with_custom_phrases_ignores_case() -> None:
    # PuntCheck matches custom phrases case-insensitively; RefusalCheck should too.
    check = RefusalCheck(phrases=("Unfortunately I Must Decline",))
    assert not (await check.evaluate(view("Unfortunately I must decline."))).passed


# --- JSON -------------------------------------------------------------------------------

SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
            "required": ["city", "population"],
        },
    },
}


async def test_json_check_passes_when_json_is_not_requested() -> None:
    assert (await JsonCheck().evaluate(view("not json"))).passed
    text_format = {"type": "text"}
    assert (await JsonCheck().evaluate(view("not json", response_format=text_format))).passed


async def test_json_object_valid_and_invalid() -> None:
    fmt = {"type": "json_object"}
    assert (await JsonCheck().evaluate(view('{"a": 1}', response_format=fmt))).passed
    assert (await JsonCheck().evaluate(view("[1, 2]", response_format=fmt))).passed
    bad = await JsonCheck().evaluate(view('{"a": 1', response_format=fmt))
    assert not bad.passed
    assert bad.name == "json"
    assert bad.reason.startswith("answer is not valid JSON")
    assert not (await JsonCheck().evaluate(view("", response_format=fmt))).passed
    fenced = '```json\n{"a": 1}\n```'
    assert not (await JsonCheck().evaluate(view(fenced, response_format=fmt))).passed


async def test_json_schema_valid() -> None:
    text = '{"city": "Paris", "population": 2100000}'
    result = await JsonCheck().evaluate(view(text, response_format=SCHEMA_FORMAT))
    assert result == CheckResult("json", True, "")


async def test_json_schema_invalid_json() -> None:
    result = await JsonCheck().evaluate(view("{city: Paris}", response_format=SCHEMA_FORMAT))
    assert not result.passed
    assert "not valid JSON" in result.reason


async def test_json_schema_mismatch() -> None:
    missing = await JsonCheck().evaluate(view('{"city": "Paris"}', response_format=SCHEMA_FORMAT))
    assert not missing.passed
    assert missing.reason.startswith("answer does not match the schema")
    assert "population" in missing.reason
    wrong_type = '{"city": "Paris", "population": "many"}'
    result = await JsonCheck().evaluate(view(wrong_type, response_format=SCHEMA_FORMAT))
    assert not result.passed


async def test_json_schema_that_is_itself_invalid() -> None:
    fmt = {"type": "json_schema", "json_schema": {"schema": {"type": "no-such-type"}}}
    result = await JsonCheck().evaluate(view('{"a": 1}', response_format=fmt))
    assert not result.passed
    assert "schema is invalid" in result.reason


async def test_json_schema_format_without_a_schema_only_needs_json() -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x"}}
    assert (await JsonCheck().evaluate(view('{"a": 1}', response_format=fmt))).passed
    assert not (await JsonCheck().evaluate(view("nope", response_format=fmt))).passed


async def test_json_check_waits_for_a_complete_answer() -> None:
    result = await JsonCheck().evaluate(
        view('{"city": "Pa', complete=False, response_format=SCHEMA_FORMAT)
    )
    assert result.passed


# --- callable ---------------------------------------------------------------------------


async def test_callable_check_sync_bool() -> None:
    check = CallableCheck(lambda answer: "Paris" in answer.text, name="mentions_paris")
    assert await check.evaluate(view(LONG_ANSWER)) == CheckResult("mentions_paris", True, "")
    failed = await check.evaluate(view("Lyon"))
    assert failed == CheckResult("mentions_paris", False, "custom check failed")


async def test_callable_check_async_bool() -> None:
    async def long_enough(answer: AnswerView) -> bool:
        return len(answer.text) > 10

    check = CallableCheck(long_enough, reason="too short")
    assert (await check.evaluate(view(LONG_ANSWER))).passed
    assert await check.evaluate(view("short")) == CheckResult("custom", False, "too short")


async def test_callable_check_returning_check_results() -> None:
    def sync(answer: AnswerView) -> CheckResult:
        return CheckResult("mine", False, "because")

    async def asynchronous(answer: AnswerView) -> CheckResult:
        return CheckResult("mine_async", True, "fine")

    assert await CallableCheck(sync).evaluate(view("x")) == CheckResult("mine", False, "because")
    result = await CallableCheck(asynchronous).evaluate(view("x"))
    assert result == CheckResult("mine_async", True, "fine")


async def test_callable_check_truthiness() -> None:
    assert not (await CallableCheck(lambda a: None).evaluate(view("x"))).passed  # type: ignore[arg-type,return-value]
    assert (await CallableCheck(lambda a: 1).evaluate(view("x"))).passed  # type: ignore[arg-type,return-value]


# --- confidence -------------------------------------------------------------------------


def test_logprob_confidence_is_the_geometric_mean_probability() -> None:
    logprobs = [-0.1, -0.5, -0.05, -1.2]
    value = LogprobConfidence().confidence(view("abcd", logprobs=logprobs))
    assert value == pytest.approx(math.exp(sum(logprobs) / 4))
    assert value == pytest.approx(
        (math.exp(-0.1) * math.exp(-0.5) * math.exp(-0.05) * math.exp(-1.2)) ** 0.25
    )
    assert LogprobConfidence().confidence(view("a", logprobs=[0.0])) == 1.0


def test_logprob_confidence_without_logprobs_is_none() -> None:
    assert LogprobConfidence().confidence(view("abc")) is None
    assert LogprobConfidence().confidence(view("abc", logprobs=[])) is None
    request = ChatRequest([Message("user", "q")])
    assert LogprobConfidence().confidence(AnswerView(request, ChatResponse("r", "m", []))) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"answer": "Paris", "confidence": 0.83}', 0.83),
        ('{"confidence": 1}', 1.0),
        ('{"confidence": 0}', 0.0),
        ('{"confidence": 1.7}', 1.0),
        ('{"confidence": -0.2}', 0.0),
        ('{"confidence": 85}', 1.0),
    ],
)
def test_self_reported_confidence_reads_and_clamps(text: str, expected: float) -> None:
    value = SelfReportedConfidence().confidence(view(text))
    assert value == pytest.approx(expected)
    assert isinstance(value, float)


@pytest.mark.parametrize(
    "text",
    [
        '{"confidence": "0.9"}',
        '{"confidence": true}',
        '{"confidence": false}',
        '{"confidence": null}',
        '{"confidence": [0.9]}',
        '{"answer": "Paris"}',
        "[0.9]",
        "0.9",
        "not json at all",
        "",
    ],
)
def test_self_reported_confidence_ignores_non_numbers(text: str) -> None:
    assert SelfReportedConfidence().confidence(view(text)) is None


def test_self_reported_confidence_custom_field_and_incomplete() -> None:
    signal = SelfReportedConfidence(field="certainty")
    assert signal.confidence(view('{"certainty": 0.4, "confidence": 0.9}')) == pytest.approx(0.4)
    assert signal.confidence(view('{"certainty": 0.4}', complete=False)) is None


# --- registry ---------------------------------------------------------------------------


async def test_build_builtin_checks() -> None:
    assert isinstance(build_check(CheckConfig(kind="empty")), EmptyCheck)
    assert isinstance(build_check(CheckConfig(kind="refusal")), RefusalCheck)
    assert isinstance(build_check(CheckConfig(kind="json")), JsonCheck)
    check = build_check(CheckConfig(kind="min_length", options={"min_chars": 3}))
    assert check == MinLengthCheck(min_chars=3)
    punt = build_check(CheckConfig(kind="punt", options={"phrases": ["No Idea", "Beats Me"]}))
    assert punt == PuntCheck(phrases=("no idea", "beats me"))
    assert not (await punt.evaluate(view("Beats me!"))).passed


async def test_build_checks_from_route_shorthand() -> None:
    config = parse_config(
        {
            "deployments": {"d": {"model": "m", "api_base": "http://x/v1"}},
            "tiers": {"t": ["d"]},
            "routes": {"r": {"checks": ["empty", {"kind": "min_length", "min_chars": 7}]}},
        }
    )
    checks = [build_check(c) for c in config.routes["r"].checks]
    assert checks == [EmptyCheck(), MinLengthCheck(min_chars=7)]


async def test_refusal_phrases_from_config_match_case_insensitively() -> None:
    check = build_check(CheckConfig(kind="refusal", options={"phrases": ["Nope, Not Doing"]}))
    assert not (await check.evaluate(view("Nope, not doing that."))).passed


def test_unknown_check_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        build_check(CheckConfig(kind="spellcheck"))
    assert info.value.key == "checks"
    assert "unknown check 'spellcheck'" in str(info.value)
    assert "min_length" in str(info.value)  # the known kinds are listed


def test_bad_check_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        build_check(CheckConfig(kind="min_length", options={"min_chars": 3, "max_chars": 9}))
    assert info.value.key == "checks.max_chars"
    assert "known: min_chars, name" in str(info.value)
    assert "min_length" in str(info.value)
    assert "max_chars" in str(info.value)


async def test_register_check_adds_a_kind() -> None:
    kind = "test_checks_starts_with"

    def factory(*, context: BuildContext, prefix: str = "") -> CallableCheck:
        return CallableCheck(lambda a: a.text.startswith(prefix), name=kind)

    register_check(kind, factory)
    try:
        check = build_check(CheckConfig(kind=kind, options={"prefix": "Paris"}))
        assert check.name == kind
        assert (await check.evaluate(view(LONG_ANSWER))).passed
        assert not (await check.evaluate(view("Lyon"))).passed
        with pytest.raises(ConfigError, match=kind):
            build_check(CheckConfig(kind="not_registered_either"))
    finally:
        registry._CHECKS.pop(kind, None)
    with pytest.raises(ConfigError):
        build_check(CheckConfig(kind=kind))


def test_build_confidence() -> None:
    assert isinstance(
        build_confidence(ConfidenceConfig(kind="logprob", threshold=0.5)), LogprobConfidence
    )
    signal = build_confidence(ConfidenceConfig(kind="self_reported", threshold=0.5, field="sure"))
    assert signal == SelfReportedConfidence(field="sure")
