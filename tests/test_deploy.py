"""The container and deployment files, checked as far as this machine allows without a
Docker daemon or a cluster: hadolint on the Dockerfile, the compose spec's JSON schema,
the Kubernetes API schemas, yamllint, the sample config through `tierwise config check`,
and the image's health check and stop signal against a real gateway. The Grafana
dashboard is checked in tests/test_deploy_dashboard.py."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes_validate
import pytest
import yaml

from tests.helpers import free_port
from tierwise.config import GatewayConfig, load_config
from tierwise.server.run import running
from tierwise.testing import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BIN = Path(sys.executable).parent
SECRETS = {
    "OPENAI_API_KEY": "sk-test-openai",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "TIERWISE_API_KEY": "app-key",
    "TIERWISE_METRICS_KEY": "metrics-key",
    "TIERWISE_ADMIN_KEY": "admin-key",
}
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not installed: pip install -e '.[dev]'"
    return str(path)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# --- Dockerfile -------------------------------------------------------------------------


def instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each Dockerfile line, continuations joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def last(name: str) -> str:
    return [rest for word, rest in instructions() if word == name][-1]


def env_of_image() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions():
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def healthcheck_command() -> list[str]:
    command = json.loads(last("HEALTHCHECK").split(" CMD ", 1)[1])
    assert isinstance(command, list)
    return [str(part) for part in command]


def hadolint(path: Path) -> tuple[int, list[dict[str, Any]]]:
    args = [tool("hadolint"), "--failure-threshold", "style", "--format", "json", str(path)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return done.returncode, json.loads(done.stdout)


def test_dockerfile_passes_hadolint_at_every_level() -> None:
    code, findings = hadolint(ROOT / "Dockerfile")
    assert findings == []
    assert code == 0


def test_hadolint_reports_an_image_that_runs_as_root(tmp_path: Path) -> None:
    text = (ROOT / "Dockerfile").read_text().replace("USER 10001:10001", "USER root")
    (tmp_path / "Dockerfile").write_text(text)
    code, findings = hadolint(tmp_path / "Dockerfile")
    assert code != 0
    assert "DL3002" in {f["code"] for f in findings}


def test_dockerfile_is_multi_stage_non_root_with_a_healthcheck() -> None:
    stages = [rest for word, rest in instructions() if word == "FROM"]
    assert [s.split(" AS ")[-1] for s in stages] == ["build", "runtime"]
    assert "COPY --from=build /opt/venv /opt/venv" in [
        f"COPY {rest}" for word, rest in instructions() if word == "COPY"
    ]
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert "pip wheel" in runs and '"tierwise[postgres,otel]"' in runs
    user, _, group = last("USER").partition(":")
    assert int(user) > 0 and int(group) > 0
    assert last("EXPOSE") == "8080"
    assert last("STOPSIGNAL") == "SIGTERM"
    assert json.loads(last("ENTRYPOINT")) == ["tierwise"]
    command = json.loads(last("CMD"))
    assert command[command.index("--port") + 1] == "8080"
    assert env_of_image()["TIERWISE_HEALTH_URL"] == "http://127.0.0.1:8080/ready"
    assert all("curl" not in rest for _, rest in instructions())


def test_dockerignore_keeps_the_build_context_to_the_package() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*") + 1 :][:3] == ["!pyproject.toml", "!README.md", "!src/"]
    copied = [rest for word, rest in instructions() if word == "COPY" and "--from" not in rest]
    assert copied == ["pyproject.toml README.md ./", "src ./src"]


async def probe(url: str) -> int:
    """Run the image's HEALTHCHECK command (its python is this interpreter)."""
    command = healthcheck_command()
    assert command[0] == "python"
    env = {**os.environ, "TIERWISE_HEALTH_URL": url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command[1:],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_healthcheck_passes_on_a_ready_gateway_and_fails_without_one(
    upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = sample_config(upstream, monkeypatch)
    async with running(config) as live:
        assert await probe(live.base_url + "/ready") == 0
        assert await probe(live.base_url + "/no-such-endpoint") != 0
    assert await probe(f"http://127.0.0.1:{free_port()}/ready") != 0


async def test_image_command_drains_requests_in_flight_on_sigterm(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    """The image's ENTRYPOINT + CMD (bound to loopback here) keeps answering a request
    it is serving when SIGTERM arrives, then exits 0 and takes no new connection."""
    config = tmp_path / "gateway.yaml"
    v1 = upstream.base_url + "/v1"
    config.write_text(
        yaml.safe_dump(
            {
                "deployments": {"mini": {"model": "cheap-model", "api_base": v1}},
                "tiers": {"cheap": ["mini"]},
                "routes": {"auto": {"router": "fixed", "baseline": "mini"}},
            }
        )
    )
    port = free_port()
    command = [*json.loads(last("ENTRYPOINT")), *json.loads(last("CMD"))]
    command[0] = str(BIN / command[0])
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    log = (tmp_path / "serve.log").open("wb")
    env = {**os.environ, "TIERWISE_CONFIG": str(config)}
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base, process)
            body = {"model": "auto", "messages": [{"role": "user", "content": "hi [[latency=2]]"}]}
            call = asyncio.ensure_future(session.post(base + "/v1/chat/completions", json=body))
            await until_received(upstream)
            process.send_signal(signal.SIGTERM)
            response = await call
            assert response.status == 200
            assert (await response.json())["choices"][0]["message"]["content"]
            await asyncio.to_thread(process.wait, 30)
            assert process.returncode == 0
            with pytest.raises(aiohttp.ClientConnectionError):
                await session.get(base + "/health")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


async def wait_ready(
    session: aiohttp.ClientSession, base: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway exited during start-up"
        try:
            async with session.get(base + "/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the gateway did not become ready")


async def until_received(upstream: FakeUpstream) -> None:
    deadline = time.monotonic() + 30
    while not upstream.requests:
        assert time.monotonic() < deadline, "the request never reached the upstream"
        await asyncio.sleep(0.02)


# --- The sample config ------------------------------------------------------------------


def env_references(path: Path = DEPLOY / "gateway.yaml") -> set[str]:
    return set(re.findall(r"env:([A-Z0-9_]+)", path.read_text()))


def config_check(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRETS} | environ
    args = [tool("tierwise"), "config", "check", str(DEPLOY / "gateway.yaml")]
    return subprocess.run(args, capture_output=True, text=True, env=env, check=False)


def test_sample_config_passes_config_check_with_its_secrets_set() -> None:
    assert env_references() == set(SECRETS)
    done = config_check(SECRETS)
    assert done.returncode == 0, done.stderr
    assert "route auto: router=heuristic" in done.stdout
    assert "warning" not in done.stderr
    for value in SECRETS.values():
        assert value not in done.stdout + done.stderr


def test_sample_config_check_names_each_unset_secret() -> None:
    done = config_check({})
    assert done.returncode == 0, done.stderr
    warned = set(re.findall(r"environment variable ([A-Z0-9_]+) is not set", done.stderr))
    assert warned == set(SECRETS)


def sample_config(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> GatewayConfig:
    """deploy/gateway.yaml as shipped, with its providers pointed at the fake upstream,
    local state and no request log, through environment overrides."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    v1 = upstream.base_url + "/v1"
    environ = {
        "TIERWISE__DEPLOYMENTS__MINI__API_BASE": v1,
        "TIERWISE__DEPLOYMENTS__BIG__API_BASE": v1,
        "TIERWISE__DEPLOYMENTS__SONNET__API_BASE": upstream.base_url,
        "TIERWISE__SERVER__HOST": "127.0.0.1",
        "TIERWISE__STATE__BACKEND": "memory",
        "TIERWISE__STORE__ENABLED": "false",
    }
    return load_config(DEPLOY / "gateway.yaml", environ)


# --- docker-compose.yml, nginx, Prometheus ------------------------------------------------


def compose() -> dict[str, Any]:
    data = load_yaml(DEPLOY / "docker-compose.yml")
    assert isinstance(data, dict)
    return data


def gateways() -> dict[str, dict[str, Any]]:
    services = compose()["services"]
    return {name: s for name, s in services.items() if s.get("image") == "tierwise:local"}


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    args = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return subprocess.run(args, capture_output=True, text=True, check=False)


def test_compose_file_matches_the_compose_spec_schema(tmp_path: Path) -> None:
    done = check_jsonschema(DEPLOY / "docker-compose.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    broken = compose()
    broken["services"]["redis"]["healthchek"] = broken["services"]["redis"].pop("healthcheck")
    (tmp_path / "compose.yml").write_text(yaml.safe_dump(broken))
    assert check_jsonschema(tmp_path / "compose.yml").returncode != 0


def test_compose_runs_two_hardened_gateway_replicas_on_redis_and_postgres() -> None:
    services = compose()["services"]
    assert sorted(gateways()) == ["gateway-1", "gateway-2"]
    config = load_yaml(DEPLOY / "gateway.yaml")
    redis_host = config["state"]["redis_url"].split("//")[1].split(":")[0]
    assert config["state"]["backend"] == "redis" and redis_host in services
    for service in gateways().values():
        assert service["build"] == {"context": "..", "dockerfile": "Dockerfile"}
        assert "./gateway.yaml:/etc/tierwise/gateway.yaml:ro" in service["volumes"]
        env = service["environment"]
        assert env["TIERWISE_CONFIG"] == "/etc/tierwise/gateway.yaml"
        assert env_references() <= set(env)
        assert re.match(
            r"postgresql://tierwise:\$\{POSTGRES_PASSWORD.*\}@postgres:5432/",
            env["TIERWISE_STORE_URL"],
        )
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert set(service["depends_on"]) == {"redis", "postgres"}
    nginx = services["nginx"]
    assert set(nginx["depends_on"]) == set(gateways())
    assert all(d["condition"] == "service_healthy" for d in nginx["depends_on"].values())


def test_every_file_compose_mounts_is_in_the_repository() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), source


def test_nginx_balances_over_exactly_the_gateway_replicas() -> None:
    text = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream tierwise \{(.*?)\}", text, re.S)
    assert upstream is not None
    servers = re.findall(r"^\s*server ([\w.-]+:\d+)", upstream.group(1), re.M)
    assert sorted(servers) == sorted(f"{name}:8080" for name in gateways())
    read_timeout = re.search(r"proxy_read_timeout (\d+)s;", text)
    deadline = load_yaml(DEPLOY / "gateway.yaml")["fallback"]["deadline_s"]
    assert read_timeout is not None and int(read_timeout.group(1)) > deadline
    assert "proxy_buffering off;" in text


def test_prometheus_scrapes_each_replica_with_the_metrics_key() -> None:
    scrape = load_yaml(DEPLOY / "prometheus.yml")["scrape_configs"]
    assert [job["job_name"] for job in scrape] == ["tierwise"]
    job = scrape[0]
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert sorted(targets) == sorted(f"{name}:8080" for name in gateways())
    secret = compose()["services"]["prometheus"]["secrets"][0]
    assert job["authorization"] == {
        "type": "Bearer",
        "credentials_file": f"/run/secrets/{secret}",
    }
    variable = compose()["secrets"][secret]["environment"]
    keys = load_yaml(DEPLOY / "gateway.yaml")["server"]["api_keys"]
    assert {"name": "prometheus", "key": f"env:{variable}", "models": []} in keys


# --- Kubernetes ---------------------------------------------------------------------------


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for document in yaml.safe_load_all(path.read_text()):
                yield path, document


def kind(name: str) -> dict[str, Any]:
    return next(doc for _, doc in manifests() if doc["kind"] == name)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_match_the_kubernetes_schemas(version: str) -> None:
    checked = []
    for path, document in manifests():
        kubernetes_validate.validate(document, version, strict=True)
        checked.append((path.name, document["kind"]))
    assert {k for _, k in checked} == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    }


def test_k8s_schema_check_rejects_a_malformed_deployment() -> None:
    deployment = kind("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    deployment = kind("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = load_yaml(K8S / "kustomization.yaml")["resources"]
    assert sorted(listed) == sorted({path.name for path, _ in manifests()})


def test_k8s_deployment_runs_two_non_root_replicas_with_probes_and_drain() -> None:
    spec = kind("Deployment")["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    user = int(last("USER").split(":")[0])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == user
    (container,) = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["args"] == json.loads(last("CMD"))
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    deadline = load_yaml(DEPLOY / "gateway.yaml")["fallback"]["deadline_s"]
    assert pod["terminationGracePeriodSeconds"] > deadline
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert Path(env_of_image()["TIERWISE_CONFIG"]).parent.as_posix() in mounts
    assert Path(env_of_image()["TIERWISE_HOME"]).parent.as_posix() in mounts
    labels = spec["selector"]["matchLabels"]
    assert kind("Service")["spec"]["selector"] == labels
    assert kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == labels
    assert kind("PodDisruptionBudget")["spec"]["minAvailable"] < spec["replicas"]


def test_k8s_config_map_is_the_sample_config_and_the_secret_covers_it() -> None:
    assert kind("ConfigMap")["data"]["gateway.yaml"] == (DEPLOY / "gateway.yaml").read_text()
    secret = set(kind("Secret")["stringData"])
    assert env_references() | {"TIERWISE_STORE_URL"} == secret
    (container,) = kind("Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": kind("Secret")["metadata"]["name"]}}]


# --- YAML style ---------------------------------------------------------------------------

YAMLLINT = json.dumps(
    {
        "extends": "default",
        "rules": {
            "document-start": "disable",
            "line-length": {"max": 120},
            "comments": {"min-spaces-from-content": 1},
            "truthy": {"check-keys": False},
        },
    }
)


def yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def test_deploy_yaml_passes_yamllint(tmp_path: Path) -> None:
    files = yaml_files()
    assert len(files) >= 10
    args = [tool("yamllint"), "--strict", "-f", "parsable", "-d", YAMLLINT]
    done = subprocess.run([*args, *map(str, files)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
    (tmp_path / "bad.yaml").write_text("a: 1\na: 2\n")
    bad = subprocess.run([*args, str(tmp_path / "bad.yaml")], capture_output=True, check=False)
    assert bad.returncode != 0
