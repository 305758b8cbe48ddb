"""The `tierwise` command, run in-process with a config pointing at the fake upstream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tierwise.cli import app
from tierwise.testing import FakeUpstream

runner = CliRunner()


def write_config(tmp_path: Path, base_url: str) -> Path:
    config = {
        "deployments": {
            "mini": {
                "model": "cheap-model",
                "api_base": base_url + "/v1",
                "price": {"input": 0.15, "output": 0.60},
            },
            "big": {
                "model": "strong-model",
                "api_base": base_url + "/v1",
                "price": {"input": 2.5, "output": 10},
            },
        },
        "tiers": {"cheap": ["mini"], "strong": ["big"]},
        "routes": {"auto": {"router": "heuristic", "baseline": "big"}},
    }
    path = tmp_path / "tierwise.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_route_explain_shows_the_decision_without_calling(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9")
    result = runner.invoke(
        app,
        [
            "route",
            "--config",
            str(path),
            "--explain",
            "Compare these two designs and recommend one of them please",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "start: strong" in result.output and "keyword 'compare'" in result.output
    assert "plan: strong[big]" in result.output
    short = runner.invoke(app, ["route", "--config", str(path), "hello"])
    assert short.output.strip() == "cheap"


def test_config_check_prints_plans_and_names_errors(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9")
    good = runner.invoke(app, ["config", "check", str(path)])
    assert (
        good.exit_code == 0
        and "route auto: router=heuristic plan: cheap[mini] -> strong[big]" in good.output
    )
    broken = tmp_path / "broken.yaml"
    broken.write_text(path.read_text().replace("price:", "prize:", 1))
    bad = runner.invoke(app, ["config", "check", str(broken)])
    assert bad.exit_code == 1
    assert f"{broken}: deployments.big.prize: Extra inputs are not permitted" in bad.output


def write_route(tmp_path: Path, route: dict[str, object]) -> Path:
    path = write_config(tmp_path, "http://127.0.0.1:9")
    config = yaml.safe_load(path.read_text())
    config["routes"] = {"auto": {"baseline": "big", **route}}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("route", "key", "problem"),
    [
        (
            {"router": {"kind": "heuristic", "treshold": 3}},
            "routes.auto.router.treshold",
            "unknown option 'treshold'; known: abstain, default, keywords, name, rules, "
            "short_chars",
        ),
        (
            {"router": {"kind": "heuristc"}},
            "routes.auto.router",
            "unknown router 'heuristc'",
        ),
        (
            {"router": {"kind": "fixed", "taget": "strong"}},
            "routes.auto.router.taget",
            "unknown option 'taget'; known: name, target",
        ),
        (
            {"router": {"kind": "classifier", "deployment": "mini", "timeout": 2}},
            "routes.auto.router.timeout",
            "unknown option 'timeout'",
        ),
        (
            {"router": {"kind": "chain", "routers": ["heuristic", {"kind": "cascad"}]}},
            "routes.auto.router.routers[1]",
            "unknown router 'cascad'",
        ),
        (
            {"router": {"kind": "classifier", "deployment": "mini", "fallback": {"abstian": 1}}},
            "routes.auto.router.fallback.abstian",
            "unknown option 'abstian'",
        ),
        (
            {"checks": ["empty", {"kind": "min_length", "min_char": 5}]},
            "routes.auto.checks[1].min_char",
            "unknown option 'min_char'; known: min_chars, name",
        ),
        (
            {"checks": [{"kind": "spelcheck"}]},
            "routes.auto.checks[0]",
            "unknown check 'spelcheck'",
        ),
    ],
    ids=[
        "router-option",
        "router-kind",
        "fixed-option",
        "classifier-option",
        "chain-member-kind",
        "classifier-fallback-option",
        "check-option",
        "check-kind",
    ],
)
def test_config_check_builds_routers_and_checks(
    tmp_path: Path, route: dict[str, object], key: str, problem: str
) -> None:
    path = write_route(tmp_path, route)
    result = runner.invoke(app, ["config", "check", str(path)])
    assert result.exit_code == 1, result.output
    assert f"error: {path}: {key}: " in result.output
    assert problem in result.output


def test_config_check_warns_for_an_unset_env_secret_and_prints_no_secret(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:9")
    config = yaml.safe_load(path.read_text())
    config["deployments"]["mini"]["api_key"] = "env:TIERWISE_TEST_CHECK_UNSET"
    config["deployments"]["big"]["api_key"] = "env:TIERWISE_TEST_CHECK_SET"
    config["server"] = {
        "api_keys": [{"name": "team-a", "key": "sk-literal-team-key-0123"}],
        "admin_keys": [{"name": "ops", "key": "env:TIERWISE_TEST_CHECK_ADMIN"}],
    }
    path.write_text(yaml.safe_dump(config))
    environ = {
        "TIERWISE_TEST_CHECK_UNSET": None,
        "TIERWISE_TEST_CHECK_SET": "sk-set-in-env-4567",
        "TIERWISE_TEST_CHECK_ADMIN": "",
    }
    result = runner.invoke(app, ["config", "check", str(path)], env=environ)
    assert result.exit_code == 0, result.output
    assert "route auto: router=heuristic plan: cheap[mini] -> strong[big]" in result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: deployments.mini.api_key: environment variable "
        "TIERWISE_TEST_CHECK_UNSET is not set",
        "warning: server.admin_keys[0].key: environment variable "
        "TIERWISE_TEST_CHECK_ADMIN is not set",
    ]
    assert "sk-set-in-env-4567" not in result.output
    assert "sk-literal-team-key-0123" not in result.output


def test_models_lists_prices(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "--config", str(write_config(tmp_path, "http://x"))])
    assert result.exit_code == 0
    assert "mini" in result.output and "0.15" in result.output and "cheap" in result.output


def test_chat_prints_answer_and_route_line(tmp_path: Path) -> None:
    async def serve_and_chat() -> str:
        async with FakeUpstream() as upstream:
            path = write_config(tmp_path, upstream.base_url)
            result = await asyncio.to_thread(
                runner.invoke, app, ["chat", "--config", str(path), "hello"]
            )
            assert result.exit_code == 0, result.output
            return result.output

    output = asyncio.run(serve_and_chat())
    assert "Answer from cheap-model: hello" in output
    assert "route=auto" in output and "model=mini" in output and "attempts=1" in output
