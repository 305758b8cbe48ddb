"""Loading and validating the YAML config: errors name the file, the key and the
problem; environment overrides; secrets never printed; trigger defaults."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr

from tierwise.config import (
    Action,
    Cooldown,
    GatewayConfig,
    TriggerPolicy,
    env_variable,
    load_config,
    parse_config,
    reveal,
)
from tierwise.errors import ConfigError, ErrorKind
from tierwise.pricing import Price

MINIMAL = """\
deployments:
  cheap:
    model: gpt-4o-mini
    api_base: http://localhost:8001/v1
    price: {input: "0.15", output: "0.60", cached_input: "0.075"}
  strong:
    model: gpt-4o
    api_base: http://localhost:8002/v1
    price: {input: "2.50", output: "10.00"}
tiers:
  small: [cheap]
  large: [strong]
routes:
  auto:
    tiers: [small, large]
"""

LITERAL_KEY = "sk-live-abcdef0123456789"


def write(tmp_path: Path, text: str, name: str = "tierwise.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> GatewayConfig:
    return load_config(write(tmp_path, text), environ={} if environ is None else environ)


def load_error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={} if environ is None else environ)
    assert str(path) in str(info.value)
    assert info.value.file == str(path)
    return info.value


# --- a valid config ---------------------------------------------------------------------


def test_minimal_config_parses(tmp_path: Path) -> None:
    assert len(MINIMAL.splitlines()) <= 20
    config = load(tmp_path, MINIMAL)
    assert set(config.deployments) == {"cheap", "strong"}
    cheap = config.deployments["cheap"]
    assert cheap.name == "cheap"
    assert cheap.provider == "openai"
    assert cheap.model == "gpt-4o-mini"
    assert cheap.api_base == "http://localhost:8001/v1"
    assert cheap.api_key is None
    assert cheap.resolved_price() == Price(Decimal("0.15"), Decimal("0.60"), Decimal("0.075"))
    assert config.deployments["strong"].resolved_price() == Price(Decimal("2.50"), Decimal("10.00"))
    assert config.tiers == {"small": ["cheap"], "large": ["strong"]}
    route = config.routes["auto"]
    assert route.tiers == ["small", "large"]
    assert route.router.kind == "heuristic"
    assert config.tier_order(route) == ["small", "large"]
    assert config.fallback.max_attempts == 4


def test_unquoted_float_prices_are_exact(tmp_path: Path) -> None:
    text = MINIMAL.replace('{input: "0.15", output: "0.60"', "{input: 0.15, output: 0.6")
    config = load(tmp_path, text)
    price = config.deployments["cheap"].resolved_price()
    assert price.input_per_mtok == Decimal("0.15")
    assert price.output_per_mtok == Decimal("0.6")


def test_price_and_limits_fall_back_to_the_model_table(tmp_path: Path) -> None:
    text = MINIMAL.replace('    price: {input: "2.50", output: "10.00"}\n', "")
    strong = load(tmp_path, text).deployments["strong"]
    assert strong.price is None
    assert strong.resolved_price() == Price(Decimal("2.50"), Decimal("10.00"), Decimal("1.25"))
    assert strong.resolved_context_window() == 128000
    assert strong.resolved_max_output() == 16384


def test_route_without_tiers_uses_every_tier_in_order(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL.replace("    tiers: [small, large]\n", "    router: fixed\n"))
    route = config.routes["auto"]
    assert route.router.kind == "fixed"
    assert config.tier_order(route) == ["small", "large"]


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        config.fallback.max_attempts = 9  # type: ignore[misc]


# --- errors -----------------------------------------------------------------------------


def test_unknown_key_names_the_typo(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    api_base: http://localhost:8001/v1\n",
        "    api_base: http://localhost:8001/v1\n    timeuot: {total_s: 5}\n",
    )
    error = load_error(tmp_path, text)
    assert error.key == "deployments.cheap.timeuot"
    assert "deployments.cheap.timeuot" in str(error)
    assert "extra" in error.problem.lower() or "not permitted" in error.problem


def test_unknown_top_level_section(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "fallbak:\n  max_attempts: 2\n")
    assert error.key == "fallbak"
    assert "not permitted" in str(error)


def test_wrong_type_names_the_nested_key(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    api_base: http://localhost:8001/v1\n",
        "    api_base: http://localhost:8001/v1\n    timeout: {total_s: soon}\n",
    )
    error = load_error(tmp_path, text)
    assert error.key == "deployments.cheap.timeout.total_s"
    assert "deployments.cheap.timeout.total_s" in str(error)
    assert "valid number" in error.problem


def test_non_positive_timeout(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    api_base: http://localhost:8001/v1\n",
        "    api_base: http://localhost:8001/v1\n    timeout: {total_s: -5}\n",
    )
    error = load_error(tmp_path, text)
    assert error.key == "deployments.cheap.timeout.total_s"
    assert "greater than 0" in error.problem


def test_negative_price(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL.replace('input: "2.50"', 'input: "-2.50"'))
    assert error.key == "deployments.strong.price.input"
    assert "deployments.strong.price.input" in str(error)
    assert "greater than or equal to 0" in error.problem


def test_unknown_tier_in_a_route(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL.replace("tiers: [small, large]", "tiers: [small, huge]"))
    assert "routes.auto.tiers" in str(error)
    assert "unknown tier 'huge'" in str(error)


def test_unknown_deployment_in_a_tier(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL.replace("small: [cheap]", "small: [cheap, chaep]"))
    assert "tiers.small" in str(error)
    assert "unknown deployment 'chaep'" in str(error)


def test_unknown_baseline_and_fallback_names(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL + "    baseline: nope\n")
    assert "routes.auto.baseline" in str(error) and "'nope'" in str(error)
    text = MINIMAL.replace(
        "    api_base: http://localhost:8002/v1\n",
        "    api_base: http://localhost:8002/v1\n    fallbacks: [ghost]\n",
    )
    error = load_error(tmp_path, text)
    assert "deployments.strong.fallbacks" in str(error) and "'ghost'" in str(error)


def test_names_used_twice(tmp_path: Path) -> None:
    text = MINIMAL.replace("  small: [cheap]", "  cheap: [cheap]").replace("[small,", "[cheap,")
    error = load_error(tmp_path, text)
    assert "names used twice" in str(error) and "cheap" in str(error)


def test_unknown_trigger_name(tmp_path: Path) -> None:
    text = MINIMAL + "fallback:\n  triggers:\n    ratelimited: {action: next}\n"
    error = load_error(tmp_path, text)
    assert error.key == "fallback.triggers"
    assert "unknown trigger(s) ['ratelimited']" in str(error)
    assert "rate_limited" in error.problem  # the known names are listed


def test_unknown_trigger_action(tmp_path: Path) -> None:
    text = MINIMAL + "fallback:\n  triggers:\n    rate_limited: {action: jump}\n"
    error = load_error(tmp_path, text)
    assert error.key == "fallback.triggers.rate_limited.action"


def test_openai_deployment_needs_a_base_or_a_key(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL.replace("    api_base: http://localhost:8001/v1\n", ""))
    assert error.key == "deployments.cheap"
    assert "needs api_base or api_key" in error.problem


def test_several_problems_are_counted(tmp_path: Path) -> None:
    text = MINIMAL.replace('input: "2.50"', 'input: "-1"').replace('output: "10.00"', "output: x")
    error = load_error(tmp_path, text)
    assert "(and 1 more problem(s))" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value) == f"{path}: file not found"
    assert info.value.file == str(path)


@pytest.mark.parametrize("text", ["deployments: [1, 2\n", "a: b: c\n", "x:\n\t- y\n"])
def test_invalid_yaml(tmp_path: Path, text: str) -> None:
    error = load_error(tmp_path, text)
    assert error.problem.startswith("invalid YAML")
    assert "line" in error.problem


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    error = load_error(tmp_path, "- cheap\n- strong\n")
    assert "top level must be a mapping" in str(error)


def test_empty_file_reports_the_missing_deployments(tmp_path: Path) -> None:
    error = load_error(tmp_path, "")
    assert error.key == "deployments"
    assert "required" in error.problem.lower()


def test_parse_config_names_a_default_file() -> None:
    with pytest.raises(ConfigError, match=r"^<config>: deployments: Field required"):
        parse_config({})


# --- environment overrides --------------------------------------------------------------


def test_env_override_of_a_nested_key(tmp_path: Path) -> None:
    config = load(tmp_path, MINIMAL, environ={"TIERWISE__FALLBACK__MAX_ATTEMPTS": "2"})
    assert config.fallback.max_attempts == 2
    # Only the overridden key changes.
    assert config.fallback.deadline_s == 120.0
    assert load(tmp_path, MINIMAL).fallback.max_attempts == 4


def test_env_override_of_a_deeper_key_keeps_its_siblings(tmp_path: Path) -> None:
    text = MINIMAL + "fallback:\n  breaker: {failure_threshold: 2, cooldown_s: 9}\n"
    environ = {
        "TIERWISE__FALLBACK__BREAKER__COOLDOWN_S": "1.5",
        "TIERWISE__DEPLOYMENTS__CHEAP__API_BASE": "http://other:9000/v1",
        "OTHER__FALLBACK__MAX_ATTEMPTS": "1",
    }
    config = load(tmp_path, text, environ=environ)
    assert config.fallback.breaker.failure_threshold == 2
    assert config.fallback.breaker.cooldown_s == 1.5
    assert config.deployments["cheap"].api_base == "http://other:9000/v1"
    assert config.deployments["cheap"].model == "gpt-4o-mini"
    assert config.fallback.max_attempts == 4


def test_env_override_values_lists_and_null(tmp_path: Path) -> None:
    environ = {
        "TIERWISE__TIERS__SMALL": '["cheap", "strong"]',
        "TIERWISE__FALLBACK__ATTEMPT_TIMEOUT_S": "null",
        "TIERWISE__STORE__ENABLED": "false",
        "tierwise__routes__auto__baseline": "strong",
        "TIERWISE__DEPLOYMENTS__STRONG__API_KEY": f"{LITERAL_KEY}",
    }
    config = load(tmp_path, MINIMAL, environ=environ)
    assert config.tiers == {"small": ["cheap", "strong"], "large": ["strong"]}
    assert config.fallback.attempt_timeout_s is None
    assert config.store.enabled is False
    assert config.routes["auto"].baseline == "strong"
    assert config.routes["auto"].tiers == ["small", "large"]
    strong = config.deployments["strong"]
    assert strong.api_key is not None and reveal(strong.api_key) == LITERAL_KEY
    assert LITERAL_KEY not in repr(config)


def test_env_override_of_an_unknown_section_is_an_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL, environ={"TIERWISE__FALLBAK__MAX_ATTEMPTS": "2"})
    assert error.key == "fallbak"
    assert "TIERWISE__FALLBAK__MAX_ATTEMPTS" in str(error)
    assert "not permitted" in str(error)


def test_env_override_of_an_unknown_key_is_an_error(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL, environ={"TIERWISE__FALLBACK__MAX_ATEMPTS": "2"})
    assert error.key == "fallback.max_atempts"


def test_env_override_values_that_are_not_json(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL, environ={"TIERWISE__TIERS__SMALL": "[cheap]"})
    assert error.key == "tiers.small" and "valid list" in error.problem
    error = load_error(tmp_path, MINIMAL, environ={"TIERWISE__FALLBACK__BACKOFF": "{base_s: 1}"})
    assert "fallback" in error.problem and "JSON" in error.problem


def test_invalid_env_override_is_reported(tmp_path: Path) -> None:
    error = load_error(tmp_path, MINIMAL, environ={"TIERWISE__FALLBACK__MAX_ATTEMPTS": "0"})
    assert error.key == "fallback.max_attempts"


# --- secrets ----------------------------------------------------------------------------


def test_literal_secret_repr_hides_the_key() -> None:
    secret = SecretStr(LITERAL_KEY)
    assert LITERAL_KEY not in repr(secret)
    assert LITERAL_KEY not in str(secret)
    assert LITERAL_KEY not in f"{secret}"
    assert LITERAL_KEY not in repr([secret])
    assert env_variable(secret) is None
    assert reveal(secret) == LITERAL_KEY
    assert reveal(secret, {}) == LITERAL_KEY


def test_config_repr_hides_a_literal_key(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    api_base: http://localhost:8002/v1\n",
        f"    api_base: http://localhost:8002/v1\n    api_key: {LITERAL_KEY}\n",
    )
    config = load(tmp_path, text)
    assert config.deployments["strong"].api_key == SecretStr(LITERAL_KEY)
    dumps = (
        config.model_dump_json(),
        str(config.model_dump()),
        str(config.model_dump(mode="json")),
    )
    for shown in (str(config), repr(config), repr(config.deployments), str(config.deployments)):
        assert LITERAL_KEY not in shown
    for shown in dumps:
        assert LITERAL_KEY not in shown
    assert "**********" in repr(config)


def test_key_alone_is_enough_for_an_openai_deployment(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    api_base: http://localhost:8002/v1\n", f"    api_key: {LITERAL_KEY}\n"
    )
    deployment = load(tmp_path, text).deployments["strong"]
    assert deployment.api_base is None
    assert deployment.api_key is not None and reveal(deployment.api_key) == LITERAL_KEY


def test_gateway_names_a_misspelt_option_of_a_nested_router(tmp_path: Path) -> None:
    from tierwise import Gateway

    fallback = "{kind: heuristic, short_char: 40}"
    text = MINIMAL + f"    router: {{kind: classifier, deployment: cheap, fallback: {fallback}}}\n"
    with pytest.raises(ConfigError) as info:
        Gateway(load(tmp_path, text))
    assert info.value.key == "routes.auto.router.fallback.short_char"
    assert "known: abstain, default, keywords, name, rules, short_chars" in str(info.value)


def test_gateway_names_a_misspelt_check_option(tmp_path: Path) -> None:
    from tierwise import Gateway

    text = MINIMAL + "    checks: [empty, {kind: agreement, deployment: cheap, min_similarty: 1}]\n"
    with pytest.raises(ConfigError) as info:
        Gateway(load(tmp_path, text))
    assert info.value.key == "routes.auto.checks[1].min_similarty"
    assert "known: deployment, min_similarity, name, temperature" in str(info.value)


def test_env_secret_reveals_from_the_given_environment() -> None:
    secret = SecretStr("env:OPENAI_KEY_FOR_TEST")
    assert env_variable(secret) == "OPENAI_KEY_FOR_TEST"
    assert "OPENAI_KEY_FOR_TEST" not in repr(secret)
    assert reveal(secret, {"OPENAI_KEY_FOR_TEST": "sk-from-env"}) == "sk-from-env"


def test_env_secret_without_the_variable_raises() -> None:
    secret = SecretStr("env:TIERWISE_TEST_SURELY_UNSET_VAR")
    with pytest.raises(ConfigError) as info:
        reveal(secret, {})
    assert "TIERWISE_TEST_SURELY_UNSET_VAR" in str(info.value)
    assert info.value.key == "api_key"
    with pytest.raises(ConfigError):
        reveal(secret, {"TIERWISE_TEST_SURELY_UNSET_VAR": ""})


def test_env_secret_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_TEST_PROCESS_KEY", "sk-process")
    assert reveal(SecretStr("env:TIERWISE_TEST_PROCESS_KEY")) == "sk-process"
    monkeypatch.delenv("TIERWISE_TEST_PROCESS_KEY")
    with pytest.raises(ConfigError):
        reveal(SecretStr("env:TIERWISE_TEST_PROCESS_KEY"))


def test_secret_equality_and_hash() -> None:
    assert SecretStr("a") == SecretStr("a")
    assert SecretStr("a") != SecretStr("b")
    assert SecretStr("a") != "a"
    assert len({SecretStr("a"), SecretStr("a"), SecretStr("env:A")}) == 2


def test_server_key_is_a_secret(tmp_path: Path) -> None:
    text = MINIMAL + f"server:\n  api_keys: [{{name: team, key: {LITERAL_KEY}}}]\n"
    config = load(tmp_path, text)
    key = config.server.api_keys[0].key
    assert isinstance(key, SecretStr) and reveal(key) == LITERAL_KEY
    assert LITERAL_KEY not in repr(config) and LITERAL_KEY not in config.model_dump_json()


# --- trigger policies -------------------------------------------------------------------


def test_trigger_policy_defaults(tmp_path: Path) -> None:
    fallback = load(tmp_path, MINIMAL).fallback
    bad = fallback.policy("bad_request")
    assert bad.action is Action.FAIL
    assert bad.cooldown is Cooldown.NONE
    limited = fallback.policy(ErrorKind.RATE_LIMITED)
    assert limited.action is Action.NEXT
    assert limited.cooldown is Cooldown.IMMEDIATE
    assert fallback.policy("rate_limited") == limited
    assert fallback.policy("quality_check").action is Action.ESCALATE
    assert fallback.policy("low_confidence").action is Action.ESCALATE
    assert fallback.policy("upstream_5xx") == TriggerPolicy(
        action=Action.RETRY, cooldown=Cooldown.COUNT
    )
    auth = fallback.policy("auth")
    assert (auth.action, auth.cooldown, auth.cooldown_s) == (
        Action.NEXT,
        Cooldown.IMMEDIATE,
        300,
    )


def test_every_error_kind_has_a_default_policy(tmp_path: Path) -> None:
    fallback = load(tmp_path, MINIMAL).fallback
    for kind in ErrorKind:
        assert isinstance(fallback.policy(kind.value), TriggerPolicy)


def test_configured_trigger_replaces_the_default(tmp_path: Path) -> None:
    text = MINIMAL + (
        "fallback:\n  triggers:\n"
        "    bad_request: {action: next}\n"
        "    rate_limited: {action: retry, cooldown: count, cooldown_s: 2}\n"
    )
    fallback = load(tmp_path, text).fallback
    assert fallback.policy("bad_request").action is Action.NEXT
    limited = fallback.policy("rate_limited")
    assert (limited.action, limited.cooldown, limited.cooldown_s) == (
        Action.RETRY,
        Cooldown.COUNT,
        2.0,
    )
    assert fallback.policy("timeout").action is Action.NEXT  # untouched default
