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
    from tests.helpers import gateway_config
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


# --- routing claims ---------------------------------------------------------------------
# Where the docs say a prompt goes, `tierwise route --explain` (the embedded default, as
# `make run` serves it) must agree. The forms of a claim:
#   tierwise route [--options] "PROMPT"   # TIER_OR_DEPLOYMENT[: words of the reason]
#   a python block asking model="auto" with "content": "PROMPT" and `print(...)  # NAME: ...`
#   a curl block asking "auto" for "PROMPT", then a block of x-tierwise-model / -tier headers

CODE = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
ROUTE_LINE = re.compile(
    r'tierwise route (?:--[\w-]+ )*"([^"]+)"[^#\n]*#\s*([\w.-]+)(?::[ \t]*(.+?))?[ \t]*$',
    re.MULTILINE,
)
CONTENT = re.compile(r'"content": "([^"]+)"')
PRINT_CLAIM = re.compile(r"print\(.*\)\s+#\s*([\w.-]+):")
HEADER = re.compile(r"^x-tierwise-(model|tier): (\S+)", re.MULTILINE)


def routing_claims(name: str) -> list[tuple[str, str, str | None]]:
    """(prompt, tier or deployment it is said to start on, words of the reason or None)."""
    blocks = CODE.findall((ROOT / name).read_text())
    claims: list[tuple[str, str, str | None]] = []
    for index, (lang, body) in enumerate(blocks):
        claims += [(p, where, why or None) for p, where, why in ROUTE_LINE.findall(body)]
        prompts, said = CONTENT.findall(body), PRINT_CLAIM.findall(body)
        if lang == "python" and 'model="auto"' in body and prompts and said:
            claims.append((prompts[0], said[0], None))
        if "curl" in body and '"model": "auto"' in body and index + 1 < len(blocks):
            headers = dict(HEADER.findall(blocks[index + 1][1]))
            claims += [(prompts[0], headers[k], None) for k in ("tier", "model") if k in headers]
    return claims


CLAIMS = [
    (name, *claim) for name in ("README.md", "docs/routers.md") for claim in routing_claims(name)
]


def test_the_docs_make_routing_claims() -> None:
    counts = {
        name: sum(1 for c in CLAIMS if c[0] == name) for name in ("README.md", "docs/routers.md")
    }
    assert counts == {"README.md": 5, "docs/routers.md": 4}


@pytest.mark.parametrize(
    ("name", "prompt", "where", "why"), CLAIMS, ids=[f"{c[0]}:{c[1][:30]}" for c in CLAIMS]
)
def test_routing_claims_hold(name: str, prompt: str, where: str, why: str | None) -> None:
    from typer.testing import CliRunner

    from tierwise.cli import app

    result = CliRunner().invoke(app, ["route", "--explain", prompt], env={"TIERWISE_CONFIG": None})
    assert result.exit_code == 0, result.output
    lines = dict(line.split(": ", 1) for line in result.output.splitlines() if ": " in line)
    first_step = lines["plan"].split(" -> ")[0]
    tier, members = first_step.rstrip("]").split("[")
    assert where in (tier, *members.split(", ")), f"{name}: {prompt!r} starts on {first_step}"
    if why is not None:
        assert why in lines["reason"], f"{name}: {prompt!r}: {lines['reason']}"
