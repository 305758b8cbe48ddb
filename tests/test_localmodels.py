"""Local GGUF models: resolving the files and serving them with llama.cpp."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tierwise.localmodels import (
    LOCAL_MODELS,
    LocalModel,
    LocalModelError,
    PackageFile,
    missing_packages,
    resolve_model_file,
)
from tierwise.providers.llamacpp import LocalModelServer

SMOL = LOCAL_MODELS["smollm2-135m"]
QWEN = LOCAL_MODELS["qwen2.5-0.5b"]


def _require(model: LocalModel) -> None:
    missing = missing_packages(model)
    if missing:
        pytest.skip(f"{model.name} needs pip package(s) {', '.join(missing)}")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def smol_path(cache_dir: Path) -> Path:
    pytest.importorskip(
        "xllamacpp", reason="xllamacpp is not installed (requirements/local-models.txt)"
    )
    _require(SMOL)
    return resolve_model_file(SMOL, cache_dir=cache_dir)


def test_resolve_single_file_model_verifies_once(cache_dir: Path) -> None:
    _require(SMOL)
    logs: list[str] = []
    path = resolve_model_file(SMOL, cache_dir=cache_dir, log=logs.append)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size == SMOL.size_bytes
    again: list[str] = []
    assert resolve_model_file(SMOL, cache_dir=cache_dir, log=again.append) == path
    assert not again, "second resolve should reuse the cached verification"


def test_resolve_chunked_model_assembles_and_verifies(tmp_path: Path) -> None:
    _require(QWEN)
    logs: list[str] = []
    path = resolve_model_file(QWEN, cache_dir=tmp_path, log=logs.append)
    assert path == tmp_path / "qwen2.5-0.5b.gguf"
    assert path.stat().st_size == QWEN.size_bytes
    assert any("from 6 chunks" in line for line in logs)
    with path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"
    assert not list(tmp_path.glob(".*.tmp"))
    again: list[str] = []
    assert resolve_model_file(QWEN, cache_dir=tmp_path, log=again.append) == path
    assert not again


def test_missing_package_is_named(tmp_path: Path) -> None:
    ghost = dataclasses.replace(
        SMOL, name="ghost", package_files=(PackageFile("tierwise-no-such-model", "x.gguf"),)
    )
    with pytest.raises(LocalModelError, match="tierwise-no-such-model"):
        resolve_model_file(ghost, cache_dir=tmp_path)


def test_hash_mismatch_is_an_error(tmp_path: Path) -> None:
    _require(SMOL)
    wrong = dataclasses.replace(SMOL, sha256="0" * 64)
    with pytest.raises(LocalModelError, match="sha256 mismatch"):
        resolve_model_file(wrong, cache_dir=tmp_path)


async def _chat(session: aiohttp.ClientSession, url: str, **body: Any) -> dict[str, Any]:
    async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data


async def _stream(session: aiohttp.ClientSession, url: str, **body: Any) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = []
    async with session.post(f"{url}/v1/chat/completions", json=body) as resp:
        assert resp.status == 200, await resp.text()
        async for raw in resp.content:
            line = raw.decode().strip()
            if line.startswith("data:") and line != "data: [DONE]":
                chunks.append(json.loads(line.removeprefix("data:")))
    return chunks


MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_server_chat_and_stream(smol_path: Path) -> None:
    server = LocalModelServer(smol_path, context_window=2048, parallel=2, threads=1)
    async with server, aiohttp.ClientSession() as session:
        assert server.base_url.startswith("http://127.0.0.1:")
        data = await _chat(session, server.base_url, messages=MESSAGES, max_tokens=16)
        assert data["choices"][0]["message"]["content"].strip()
        usage = data["usage"]
        assert usage["prompt_tokens"] > 0
        assert 0 < usage["completion_tokens"] <= 16
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

        chunks = await _stream(
            session,
            server.base_url,
            messages=MESSAGES,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text.strip()
        assert chunks[-1]["choices"] == []
        assert 0 < chunks[-1]["usage"]["completion_tokens"] <= 16
    assert not server.running
    with pytest.raises(RuntimeError):
        _ = server.base_url


@pytest.mark.slow
@pytest.mark.asyncio
async def test_server_logprobs_and_json_mode(smol_path: Path) -> None:
    server = LocalModelServer(smol_path, context_window=1024, parallel=1, threads=1)
    async with server, aiohttp.ClientSession() as session:
        data = await _chat(
            session,
            server.base_url,
            messages=MESSAGES,
            max_tokens=4,
            logprobs=True,
            top_logprobs=1,
        )
        tokens = data["choices"][0]["logprobs"]["content"]
        assert 0 < len(tokens) <= 4
        assert all(t["logprob"] <= 0.0 and len(t["top_logprobs"]) == 1 for t in tokens)

        data = await _chat(
            session,
            server.base_url,
            messages=MESSAGES,
            max_tokens=2,
            logprobs=True,
            top_logprobs=0,
        )
        assert "logprobs" not in data["choices"][0], "llama.cpp omits logprobs for top_logprobs=0"

        data = await _chat(
            session,
            server.base_url,
            messages=[{"role": "user", "content": "Give a JSON object with a key name."}],
            max_tokens=32,
            temperature=0,
            response_format={"type": "json_object"},
        )
        content = data["choices"][0]["message"]["content"]
        if data["choices"][0]["finish_reason"] == "stop":
            assert isinstance(json.loads(content), dict)
        else:
            assert content.lstrip().startswith("{")


@pytest.mark.asyncio
async def test_server_start_failure_reports_llama_error(tmp_path: Path) -> None:
    pytest.importorskip(
        "xllamacpp", reason="xllamacpp is not installed (requirements/local-models.txt)"
    )
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    server = LocalModelServer(bogus)
    with pytest.raises(LocalModelError, match="exited with code"):
        await server.start()
    assert not server.running
