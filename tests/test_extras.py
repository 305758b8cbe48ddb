"""A gateway-only install: serving with the heuristic router and remote providers never
imports numpy, matplotlib, scikit-learn or scipy; the offline commands and the routers
that need an extra say which one when it is missing.

Each case runs in a fresh interpreter, so `sys.modules` shows exactly what it imported;
a missing package is simulated the way Python itself reports one (`sys.modules[name] =
None` makes both `import name` and `importlib.util.find_spec(name)` fail)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

FIXTURES = Path(__file__).parent / "fixtures"
HEAVY = ("numpy", "matplotlib", "sklearn", "scipy", "onnxruntime", "tokenizers")

SERVE = r"""
import asyncio, json, sys
from pathlib import Path

import aiohttp

from tierwise.cli import app  # what `tierwise serve` imports first
from tierwise.config import load_config
from tierwise.server.admin import MONITOR
from tierwise.server.run import running
from tierwise.testing import FakeUpstream

CONFIG = '''
deployments:
  mini: {{model: cheap-model, api_base: "{base}/v1", api_key: sk-test}}
  big: {{provider: anthropic, model: strong-model, api_base: "{base}", api_key: sk-test}}
tiers: {{cheap: [mini], strong: [big]}}
routes: {{auto: {{router: heuristic}}}}
store: {{url: "sqlite:///{db}"}}
'''
CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}]}


async def main(folder: Path) -> dict:
    seen = {}
    async with FakeUpstream() as upstream:
        path = folder / "tierwise.yaml"
        path.write_text(CONFIG.format(base=upstream.base_url, db=folder / "requests.db"))
        async with running(load_config(path)) as live, aiohttp.ClientSession() as http:
            async with http.post(live.base_url + "/v1/chat/completions", json=CHAT) as r:
                seen["chat"] = [r.status, (await r.json())["choices"][0]["message"]["content"]]
            for page in ("/metrics", "/dashboard", "/dashboard/data.json", "/v1/models"):
                async with http.get(live.base_url + page) as r:
                    seen[page] = r.status
            await live.app[MONITOR].tick()
        seen["upstream_calls"] = len(upstream.requests)
    return seen


seen = asyncio.run(main(Path(sys.argv[1])))
seen["imported"] = sorted({name.partition(".")[0] for name in sys.modules} & set(sys.argv[2:]))
print(json.dumps(seen))
"""


def closure(requirements: list[str]) -> set[str]:
    """Every distribution that installing `requirements` pulls in (no extras), from the
    installed distributions' metadata."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        wanted = todo.pop()
        name = canonicalize_name(wanted.name)
        if name in seen or (wanted.marker and not wanted.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(wanted.name) or []]
    return seen


def test_a_gateway_only_install_pulls_no_numerical_library() -> None:
    project = tomllib.loads((FIXTURES.parent.parent / "pyproject.toml").read_text())["project"]
    core = closure(project["dependencies"])
    assert {"aiohttp", "pydantic", "pydantic-settings"} <= core
    assert not core & {"numpy", "matplotlib", "scikit-learn", "scipy", "onnxruntime"}
    assert {"numpy", "scikit-learn"} <= closure(project["optional-dependencies"]["eval"])


def run_python(
    code: str, *args: str, missing: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    hide = "".join(f"sys.modules[{name!r}] = None\n" for name in missing)
    program = f"import sys\n{hide}{code}"
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_gateway_only_serving_imports_no_numerical_library(tmp_path: Path) -> None:
    done = run_python(SERVE, str(tmp_path), *HEAVY)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["chat"][0] == 200 and seen["chat"][1]
    assert seen["upstream_calls"] == 1
    assert [seen[p] for p in ("/metrics", "/dashboard", "/dashboard/data.json")] == [200] * 3
    assert seen["imported"] == []


def cli(args: list[str], missing: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    code = f"from tierwise.cli import main\nsys.argv = {['tierwise', *args]!r}\nmain()\n"
    return run_python(code, missing=missing)


def test_offline_commands_without_the_eval_extra_name_it(tmp_path: Path) -> None:
    table = str(FIXTURES / "outcomes_small.csv")
    commands = {
        "eval": ["eval", table, "--out", str(tmp_path / "eval")],
        "train": ["train", table, "--out", str(tmp_path / "router.npz")],
    }
    for name, args in commands.items():
        done = cli(args, missing=("sklearn",))
        assert done.returncode == 1, (name, done.stderr)
        assert f"error: tierwise {name} needs the 'eval' extra (sklearn not installed)" in (
            done.stderr
        )
        assert "pip install 'tierwise[eval]'" in done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "eval").exists() and not (tmp_path / "router.npz").exists()


def test_embedding_router_without_numpy_names_the_routing_extra(tmp_path: Path) -> None:
    path = tmp_path / "tierwise.yaml"
    path.write_text(
        "deployments:\n"
        "  mini: {model: m, api_base: 'http://127.0.0.1:9/v1'}\n"
        "  big: {model: b, api_base: 'http://127.0.0.1:9/v1'}\n"
        "tiers: {cheap: [mini], strong: [big]}\n"
        "routes: {auto: {router: embedding}}\n"
    )
    done = cli(["config", "check", str(path)], missing=("numpy",))
    assert done.returncode == 1, done.stderr
    assert "router 'embedding' needs the 'routing' extra (numpy not installed)" in done.stderr
    assert "pip install 'tierwise[routing]'" in done.stderr
