"""The configs shown in the README and the docs are valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tierwise import parse_config

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)


def yaml_blocks(name: str) -> list[str]:
    return BLOCK.findall((ROOT / name).read_text())


@pytest.mark.parametrize("name", ["README.md", "docs/configuration.md"])
def test_config_examples_parse(name: str) -> None:
    blocks = yaml_blocks(name)
    assert blocks
    for block in blocks:
        config = parse_config(yaml.safe_load(block), file=name)
        assert "auto" in config.routes


def test_minimal_config_is_about_twenty_lines() -> None:
    minimal = yaml_blocks("docs/configuration.md")[0]
    assert len(minimal.strip().splitlines()) <= 22


def test_router_examples_build() -> None:
    from tests.conftest import gateway_config
    from tierwise import Gateway

    for block in yaml_blocks("docs/routers.md"):
        data = yaml.safe_load(block)
        routes = data["routes"] if "routes" in data else {"auto": {"router": data["router"]}}
        gateway = Gateway(gateway_config("http://127.0.0.1:9", routes=routes))
        assert gateway.targets.get("auto").router is not None


def test_operations_example_is_valid() -> None:
    (block,) = [b for b in yaml_blocks("docs/operations.md") if "state:" in b]
    data = yaml.safe_load(block)
    data["deployments"] = {"big": {"model": "gpt-4o", "api_base": "http://x/v1"}}
    data["tiers"] = {"strong": ["big"]}
    data["routes"] = {"auto": {"router": "fixed"}}
    config = parse_config(data)
    assert config.state.backend == "redis" and config.budgets["all"].period == "month"
    assert config.server.api_keys[0].team == "search"


def test_readme_cli_examples_name_real_commands_and_options() -> None:
    """Every `tierwise <command> --option` in the README exists in the CLI."""
    from typer.main import get_command

    from tierwise.cli import app

    cli = get_command(app)
    text = (ROOT / "README.md").read_text()
    for line in re.findall(r"\.venv/bin/tierwise ([^\n#]+)", text):
        words = line.split()
        command = cli.commands[words[0]]  # type: ignore[attr-defined]
        if words[0] == "config":
            command = command.commands[words[1]]
        options = {o for p in command.params for o in p.opts}
        for word in words:
            if word.startswith("--"):
                assert word in options, f"{words[0]} has no option {word}"


def test_experiments_example_is_valid() -> None:
    (block,) = yaml_blocks("docs/experiments.md")
    config = parse_config(yaml.safe_load(block), file="docs/experiments.md")
    experiment = config.experiments["routed-vs-strong"]
    assert experiment.control == "always_strong" and experiment.judge is not None
    assert config.drift.routes["auto"].strong_share == 0.3
