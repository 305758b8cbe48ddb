"""The embedded default: two local models as cheap and strong tiers, and MiniLM
embeddings as the model `minilm`, offline."""

from __future__ import annotations

from typing import Any

from tierwise.config import GatewayConfig, parse_config

EMBEDDED: dict[str, Any] = {
    "deployments": {
        "smollm2-135m": {
            "provider": "llamacpp",
            "model": "smollm2-135m",
            "model_path": "smollm2-135m",
            "context_window": 4096,
            "max_output_tokens": 512,
            "timeout": {"connect_s": 5, "total_s": 120},
        },
        "qwen2.5-0.5b": {
            "provider": "llamacpp",
            "model": "qwen2.5-0.5b",
            "model_path": "qwen2.5-0.5b",
            "context_window": 4096,
            "max_output_tokens": 512,
            "timeout": {"connect_s": 5, "total_s": 300},
        },
        "minilm": {"provider": "minilm", "kind": "embedding", "model": "all-minilm-l6-v2"},
    },
    "tiers": {"cheap": ["smollm2-135m"], "strong": ["qwen2.5-0.5b"]},
    "routes": {
        "auto": {
            "router": "pretrained",
            "baseline": "qwen2.5-0.5b",
            "checks": ["empty", "punt", "refusal", "json"],
        }
    },
}


def embedded_config() -> GatewayConfig:
    """The config `tierwise` uses when none is given."""
    return parse_config(EMBEDDED, file="<embedded default>")
