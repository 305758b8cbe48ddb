"""The Grafana dashboard of deploy/: every PromQL query parses, and every metric and
label it names is exported by a real gateway running deploy/gateway.yaml, scraped with
the key Prometheus is given in deploy/docker-compose.yml."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tierwise.config import GatewayConfig, load_config
from tierwise.server.run import running
from tierwise.testing import FakeUpstream

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
APP_KEY, METRICS_KEY = "app-key", "metrics-key"
SECRETS = {
    "OPENAI_API_KEY": "sk-test-openai",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "TIERWISE_API_KEY": APP_KEY,
    "TIERWISE_METRICS_KEY": METRICS_KEY,
    "TIERWISE_ADMIN_KEY": "admin-key",
}
# What Prometheus itself adds for every scrape target: a series, and two labels.
PROMETHEUS_SERIES = {"up"}
PROMETHEUS_LABELS = {"job", "instance"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def sample_config(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> GatewayConfig:
    """deploy/gateway.yaml as shipped, with its providers pointed at the fake upstream
    and its state in the test Redis, through environment overrides."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    v1 = upstream.base_url + "/v1"
    environ = {
        "TIERWISE__DEPLOYMENTS__MINI__API_BASE": v1,
        "TIERWISE__DEPLOYMENTS__BIG__API_BASE": v1,
        "TIERWISE__DEPLOYMENTS__SONNET__API_BASE": upstream.base_url,
        "TIERWISE__SERVER__HOST": "127.0.0.1",
        "TIERWISE__STATE__REDIS_URL": redis_url,
        "TIERWISE__STATE__NAMESPACE": f"test-{uuid.uuid4().hex[:8]}",
    }
    return load_config(DEPLOY / "gateway.yaml", environ)


def families(text: str) -> dict[str, tuple[set[str], set[str]]]:
    """Each exported sample name -> (its family's sample names, label names seen)."""
    out: dict[str, tuple[set[str], set[str]]] = {}
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
    }
    for family in text_string_to_metric_families(text):
        names = {family.name + s for s in suffixes[family.type]}
        labels = {label for sample in family.samples for label in sample.labels}
        for name in names:
            out[name] = (names, labels)
    return out


async def traffic(session: aiohttp.ClientSession, base: str) -> str:
    """Requests through the sample config (a failure, a punt, a stream) with the app
    key; then the scrape, with the key Prometheus is given."""
    app = {"Authorization": f"Bearer {APP_KEY}"}
    metrics = {"Authorization": f"Bearer {METRICS_KEY}"}
    prompts = [
        ("Hello there", False),
        ("Hi [[fault=500 model=gpt-4o-mini]]", False),
        ("Hey [[fault=punt model=gpt-4o-mini]]", False),
        ("Stream please", True),
    ]
    for prompt, stream in prompts:
        body = {
            "model": "auto",
            "stream": stream,
            "messages": [{"role": "user", "content": prompt}],
        }
        async with session.post(base + "/v1/chat/completions", json=body, headers=app) as r:
            assert r.status == 200, await r.text()
            await r.read()
    denied = {"model": "auto", "messages": [{"role": "user", "content": "x"}]}
    async with session.post(base + "/v1/chat/completions", json=denied, headers=metrics) as r:
        assert r.status == 403
    async with session.get(base + "/metrics") as r:
        assert r.status == 401
    async with session.get(base + "/metrics", headers=metrics) as r:
        assert r.status == 200
        return await r.text()


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and query variable of the dashboard."""
    dashboard = json.loads((DEPLOY / "grafana" / "tierwise.json").read_text())
    out = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            call = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"])
            assert call is not None, variable["definition"]
            out.append((f"variable {variable['name']!r}", f"count by ({call[2]}) ({call[1]})"))
    return out


def grafana_to_promql(expr: str) -> str:
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)


def selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
        return True

    promql_parser.walk(expr, visit)
    return found


def query_selectors(query: str) -> list[promql_parser.VectorSelector]:
    return selectors(promql_parser.parse(grafana_to_promql(query)))


def unknown_names(query: str, exported: dict[str, tuple[set[str], set[str]]]) -> list[str]:
    """Metric and label names in `query` that the scrape does not show."""
    problems = []
    for selector in query_selectors(query):
        name = selector.name or ""
        if name in PROMETHEUS_SERIES:
            continue
        if name not in exported:
            problems.append(f"metric {name}")
            continue
        labels = exported[name][1] | PROMETHEUS_LABELS
        for matcher in selector.matchers.matchers:
            if matcher.name not in labels:
                problems.append(f"label {matcher.name} of {name}")
    for by in re.findall(r"by \(([\w, ]+)\)", query):
        used = {n.name or "" for n in query_selectors(query)}
        known = {"le", *PROMETHEUS_LABELS}.union(*(exported[n][1] for n in used if n in exported))
        problems += [f"label {label}" for label in re.split(r", *", by) if label not in known]
    return problems


async def test_dashboard_queries_use_only_what_the_sample_gateway_exports(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    config = sample_config(upstream, monkeypatch, redis_url)
    async with running(config) as live, aiohttp.ClientSession() as session:
        text = await traffic(session, live.base_url)
    exported = families(text)
    assert "tierwise_requests_total" in exported and "tierwise_state_redis_up" in exported
    queries = dashboard_queries()
    assert len(queries) >= 20
    problems = {where: unknown_names(query, exported) for where, query in queries}
    assert {where: p for where, p in problems.items() if p} == {}
    used = {s.name or "" for _, q in queries for s in query_selectors(q)}
    for family in ("requests", "fallbacks", "cost_usd", "baseline_usd", "breaker_state"):
        assert any(name.startswith(f"tierwise_{family}") for name in used), family
    assert unknown_names("rate(tierwise_request_total[5m])", exported) == [
        "metric tierwise_request_total"
    ]
    assert unknown_names('tierwise_requests_total{colour="red"}', exported) == [
        "label colour of tierwise_requests_total"
    ]


def test_dashboard_panels_use_the_provisioned_datasource() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "tierwise.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        for target in panel.get("targets", []):
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    source = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yaml")
    (prometheus,) = source["datasources"]
    assert prometheus["type"] == "prometheus" and prometheus["url"] == "http://prometheus:9090"
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/tierwise.yaml")
    path = provider["providers"][0]["options"]["path"]
    mounts = load_yaml(DEPLOY / "docker-compose.yml")["services"]["grafana"]["volumes"]
    assert f"./grafana/tierwise.json:{path}/tierwise.json:ro" in mounts
