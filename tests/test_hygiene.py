"""Rules for the test suite itself: test modules share code only through
tests/helpers.py, and a missing PostgreSQL or Redis skips its tests on a developer's
machine but fails them when `CI` is set."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port, in_ci

TESTS = Path(__file__).parent
ROOT = TESTS.parent


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every module an `import` or `from ... import` names, anywhere in the tree
    (relative imports keep their leading dots)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append((node.lineno, base))
            if node.module is None:  # `from . import test_x`
                found += [(node.lineno, base + alias.name) for alias in node.names]
    return found


def is_test_module(name: str) -> bool:
    last = name.lstrip(".").split(".")[-1]
    return last == "conftest" or last.startswith("test_")


def forbidden_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.name}:{line} imports {name}"
        for line, name in imported_modules(tree)
        if is_test_module(name)
    ]


def test_no_test_module_imports_another_or_conftest() -> None:
    offenders = [hit for path in sorted(TESTS.glob("*.py")) for hit in forbidden_imports(path)]
    assert not offenders, "shared test code belongs in tests/helpers.py:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("from tests.conftest import gateway_config", True),
        ("import tests.test_report", True),
        ("def f():\n    from tests.test_redis_state import eventually", True),
        ("from . import test_report", True),
        ("from .conftest import x", True),
        ("import conftest", True),
        ("from tests.helpers import gateway_config", False),
        ("from tierwise.testing import FakeUpstream", False),
    ],
)
def test_the_import_scan_tells_test_modules_from_helpers(
    source: str, bad: bool, tmp_path: Path
) -> None:
    path = tmp_path / "test_sample.py"
    path.write_text(source + "\n")
    assert bool(forbidden_imports(path)) is bad


PROBE = """
async def test_postgres(postgres_dsn: str) -> None:
    raise AssertionError("ran without PostgreSQL")


async def test_store_url_on_postgres(store_url: str) -> None:
    assert store_url.startswith("sqlite"), "ran without PostgreSQL"


async def test_redis(redis_url: str) -> None:
    raise AssertionError("ran without Redis")


async def test_redis_client(client: object) -> None:
    raise AssertionError("ran without Redis")
"""


def run_probe(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    """The conftest fixtures, in a child pytest pointed at ports nobody listens on."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)
    env["TIERWISE_TEST_PG_DSN"] = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    env["TIERWISE_TEST_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    if ci is not None:
        env["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml")]
    command += ["--rootdir", str(tmp_path), "-p", "tests.conftest", "-p", "no:randomly"]
    command += ["-q", "-rsf", str(tmp_path / "test_probe.py")]
    return subprocess.run(
        command, check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_missing_services_skip_with_the_address_outside_ci(tmp_path: Path) -> None:
    result = run_probe(tmp_path, ci=None)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "1 passed, 4 skipped" in out, out
    assert out.count("SKIPPED") == 4 and "FAILED" not in out, out
    assert out.count("no PostgreSQL at postgresql://postgres@127.0.0.1:") == 2, out
    assert out.count("no Redis at redis://127.0.0.1:") == 2, out


def test_missing_services_fail_under_ci(tmp_path: Path) -> None:
    result = run_probe(tmp_path, ci="1")
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "SKIPPED" not in out, out
    assert "CI is set" in out, out
    assert out.count("no PostgreSQL at postgresql://postgres@127.0.0.1:") >= 2, out
    assert out.count("no Redis at redis://127.0.0.1:") >= 2, out
    assert "4 errors" in out, out


@pytest.mark.parametrize(
    ("value", "ci"),
    [(None, False), ("", False), ("0", False), ("false", False), ("1", True), ("true", True)],
)
def test_what_counts_as_ci(value: str | None, ci: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    if value is not None:
        monkeypatch.setenv("CI", value)
    assert in_ci() is ci
