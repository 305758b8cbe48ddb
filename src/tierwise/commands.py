"""What the CLI commands do, as plain functions returning text."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from pydantic import SecretStr

from tierwise.capabilities import CAPABILITIES, Capability, ordered, request_needs
from tierwise.config import GatewayConfig, ProviderKind, env_variable
from tierwise.deployments import Step
from tierwise.errors import ConfigError, RequestError
from tierwise.gateway import Gateway
from tierwise.providers.base import HttpClient
from tierwise.record import RequestRecord
from tierwise.targets import Targets, build_deployments, first_capable
from tierwise.types import JSON, ChatRequest, Message

SAMPLE_IMAGE = "data:image/png;base64,iVBORw0KGgo="


async def run_chat(
    config: GatewayConfig, prompt: str, model: str, max_tokens: int
) -> tuple[str, str]:
    """(answer, one-line summary of route, model, attempts and cost)."""
    request = ChatRequest([Message("user", prompt)], model=model, max_tokens=max_tokens)
    async with Gateway(config) as gateway:
        result = await gateway.chat(request)
    return result.response.text(), summarize(result.record)


async def explain_route(
    config: GatewayConfig, prompt: str, model: str, explain: bool, needs: Sequence[str] = ()
) -> str:
    """The router's decision for `prompt` (with the parts and parameters `needs`
    asks for: an image, audio, tools, a JSON schema) and the plan it leads to,
    after the capability filter; calls no model."""
    request = sample_request(prompt, model, needs)
    async with Gateway(config) as gateway:
        target, decision = await gateway.decide(request)
    chosen = decision.target if decision else ""
    plan = target.plan_for(chosen, request)
    wanted = request_needs(request)
    start = first_capable(plan, wanted) if wanted else (plan[0] if plan else None)
    first = start.tier if start else "-"
    if not explain:
        return first
    lines = [f"route: {target.name}", f"start: {first}"]
    if decision is not None:
        scores = ", ".join(f"{k}={v:.3f}" for k, v in decision.scores.items()) or "-"
        lines += [
            f"router: {decision.router}",
            f"reason: {decision.reason}",
            f"scores: {scores}",
            f"router latency: {decision.latency_ms:.3f} ms",
            f"router cost: ${decision.cost_usd:f}",
        ]
    if wanted:
        routed = target.plan_from(chosen)
        lines += filter_lines(plan, wanted, routed[0].tier if routed else "-", first)
    steps = " -> ".join(f"{s.tier}[{', '.join(d.name for d in s.deployments)}]" for s in plan)
    lines.append(f"plan: {steps}")
    return "\n".join(lines)


def sample_request(prompt: str, model: str, needs: Sequence[str]) -> ChatRequest:
    """A request for `prompt` carrying what each of `needs` takes."""
    unknown = sorted(set(needs) - set(CAPABILITIES))
    if unknown:
        known = ", ".join(CAPABILITIES)
        raise RequestError(f"unknown capability {unknown}; known: {known}", param="needs")
    content: str | list[JSON] = prompt
    parts: list[JSON] = [{"type": "text", "text": prompt}]
    if Capability.VISION in needs:
        parts.append({"type": "image_url", "image_url": {"url": SAMPLE_IMAGE}})
    if Capability.AUDIO in needs:
        parts.append({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}})
    if len(parts) > 1:
        content = parts
    request = ChatRequest([Message("user", content)], model=model)
    if Capability.TOOLS in needs:
        request.tools = [{"type": "function", "function": {"name": "tool", "parameters": {}}}]
    if Capability.JSON_SCHEMA in needs:
        schema = {"name": "answer", "schema": {"type": "object"}}
        request.response_format = {"type": "json_schema", "json_schema": schema}
    return request


def filter_lines(plan: list[Step], needs: frozenset[str], routed: str, start: str) -> list[str]:
    """What the capability filter does to the plan: the deployments it skips and
    where the start moves."""
    skipped = [
        f"{d.name} (lacks {', '.join(ordered(d.lacks(needs)))})"
        for step in plan
        for d in step.deployments
        if d.lacks(needs)
    ]
    lines = [
        f"needs: {', '.join(ordered(needs))}",
        f"filter: skips {', '.join(skipped)}" if skipped else "filter: skips none",
    ]
    if routed != start:
        lines.append(f"filter: start moved from {routed} to {start}")
    return lines


def summarize(record: RequestRecord) -> str:
    cost = record.cost
    reason = f" ({record.decision.reason})" if record.decision else ""
    return (
        f"route={record.route}{reason} model={record.final_deployment} "
        f"tier={record.final_tier} attempts={len(record.calls)} status={record.status} "
        f"cost=${cost.total_usd:.6f} router=${cost.router_usd:.6f} "
        f"baseline=${cost.baseline_usd:.6f} saved=${cost.savings_usd:.6f} "
        f"latency={record.latency_ms:.0f}ms"
    )


def describe_models(config: GatewayConfig) -> str:
    tier_of = {m: t for t, members in config.tiers.items() for m in members}
    lines = [
        f"{'deployment':<20} {'tier':<8} {'provider':<10} {'model':<22} "
        f"{'$/M in':>8} {'$/M out':>8} {'context':>9}  capabilities"
    ]
    for name, d in config.deployments.items():
        price = d.resolved_price()
        window = d.resolved_context_window()
        accepts = ",".join(ordered(d.resolved_capabilities())) or "text"
        lines.append(
            f"{name:<20} {tier_of.get(name, '-'):<8} {d.provider:<10} {d.model:<22} "
            f"{price.input_per_mtok:>8} {price.output_per_mtok:>8} {window or '-':>9}  {accepts}"
        )
    return "\n".join(lines)


def verify_local_models(config: GatewayConfig) -> None:
    """Resolve and sha256-verify every local model file the config uses."""
    from tierwise.providers.local import model_file

    for name, d in config.deployments.items():
        if d.provider == ProviderKind.LLAMACPP and d.model_path:
            path = model_file(d.model_path, lambda line: print(line, file=sys.stderr))
            print(f"{name}: {path} verified", file=sys.stderr)


def describe_plans(config: GatewayConfig) -> str:
    lines = []
    for name, route in config.routes.items():
        tiers = config.tier_order(route)
        steps = " -> ".join(f"{t}[{', '.join(config.tiers[t])}]" for t in tiers)
        lines.append(f"route {name}: router={route.router.kind} plan: {steps}")
        if route.checks:
            lines.append(f"  checks: {', '.join(c.kind for c in route.checks)}")
    fb = config.fallback
    lines.append(
        f"fallback: max_attempts={fb.max_attempts} deadline={fb.deadline_s}s "
        f"retries_per_deployment={fb.retries_per_deployment} balancing={fb.balancing}"
    )
    return "\n".join(lines) or "no routes"


def check_config(
    config: GatewayConfig, file: str | None = None, environ: Mapping[str, str] | None = None
) -> list[str]:
    """Build every deployment, route, router and check as the gateway does, so a
    problem there is a ConfigError naming its key; return a warning for each `env:`
    secret whose variable is unset. No secret's value is ever part of the result."""
    env = os.environ if environ is None else environ
    unset = unset_secrets(config, env)
    stand_ins = {**env, **{variable: "unset" for _, variable in unset}}
    try:
        Targets(config, build_deployments(config, HttpClient(), stand_ins))
    except ConfigError as exc:
        raise ConfigError(exc.problem, file=exc.file or file, key=exc.key) from None
    return [f"{key}: environment variable {variable} is not set" for key, variable in unset]


def unset_secrets(config: GatewayConfig, environ: Mapping[str, str]) -> list[tuple[str, str]]:
    """(key, variable) of each `env:VAR` secret whose variable is unset or empty."""
    secrets: list[tuple[str, SecretStr | None]] = [
        (f"deployments.{name}.api_key", d.api_key) for name, d in config.deployments.items()
    ]
    sections = {"api_keys": config.server.api_keys, "admin_keys": config.server.admin_keys}
    for section, entries in sections.items():
        secrets += [(f"server.{section}[{i}].key", e.key) for i, e in enumerate(entries)]
    return [
        (key, variable)
        for key, secret in secrets
        if secret is not None and (variable := env_variable(secret)) and not environ.get(variable)
    ]
