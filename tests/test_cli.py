"""The `tierwise` command, run in-process with a config pointing at the fake upstream."""

from __future__ import annotations

import asyncio
from pathlib import Path

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
