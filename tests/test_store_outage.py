"""A request store that cannot be reached: the gateway starts and answers, keeps the
records, says so in one log line, answers 503 where the store is needed, and writes
what it kept once the store answers again."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml

from tests.helpers import gateway_config, gateway_data
from tierwise.server.app import WRITER
from tierwise.server.run import Running, running
from tierwise.store.inspect import select
from tierwise.testing import FakeUpstream

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "still there?"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dead_postgres(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/test"


async def call(live: Running, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, live.base_url + path, json=body) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def answer(live: Running) -> str:
    async with openai.AsyncOpenAI(
        base_url=live.base_url + "/v1", api_key="x", max_retries=0
    ) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "still there?"}]
        )
    assert raw.parse().choices[0].message.content
    return str(raw.headers["x-tierwise-request-id"])


def store_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "request store" in r.getMessage()]


async def test_unreachable_postgres_serves_answers_and_503s_where_the_store_is_needed(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = {"allow_unauthenticated_admin": True, "monitor_interval_s": 0.05}
    port = free_port()
    config = gateway_config(upstream.base_url, store={"url": dead_postgres(port)}, server=server)
    async with running(config) as live:
        rid = await answer(live)
        status, body = await call(live, "POST", "/v1/feedback", {"request_id": rid, "score": 1})
        assert status == 503 and body["error"]["message"].startswith(
            "the request store is unreachable, so feedback is unavailable for now"
        )
        status, body = await call(live, "GET", "/dashboard/data.json")
        assert status == 503 and "so the dashboard is unavailable" in body["error"]["message"]
        status, page = await call(live, "GET", "/dashboard")
        assert status == 503 and "the request store is unreachable" in page
        status, body = await call(live, "GET", "/admin/calibrations")
        assert status == 503 and "so the admin API is unavailable" in body["error"]["message"]
        writer = live.app[WRITER]
        assert writer is not None
        assert not await writer.flush()  # the store is still down: the record stays queued
        assert writer.pending == 1
    (line,) = [r for r in store_lines(caplog) if "still serving" in r.getMessage()]
    assert line.levelno == logging.ERROR and line.exc_info is None
    assert f"postgresql://127.0.0.1:{port}/test unavailable" in line.getMessage()
    assert not [r for r in caplog.records if r.exc_info is not None]


async def test_records_kept_while_sqlite_cannot_open_are_written_once_it_can(
    upstream: FakeUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the store's directory should be")
    config = gateway_config(upstream.base_url, store={"url": f"sqlite:///{blocker}/log.db"})
    async with running(config) as live:
        ids = [await answer(live) for _ in range(3)]
        status, _ = await call(live, "POST", "/v1/feedback", {"request_id": ids[0], "score": 1})
        assert status == 503
        blocker.unlink()
        deadline = time.monotonic() + 10
        while status == 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            rating = {"request_id": ids[0], "score": 1}
            status, _ = await call(live, "POST", "/v1/feedback", rating)
        assert status == 200
        writer = live.app[WRITER]
        assert writer is not None and writer.available
        rows = await select(writer.store, "SELECT request_id FROM requests")
        assert sorted(r["request_id"] for r in rows) == sorted(ids)
    assert [r.levelname for r in store_lines(caplog)] == ["ERROR", "WARNING"]
    assert "answers again" in store_lines(caplog)[1].getMessage()


async def test_serve_with_an_unreachable_store_logs_one_line_and_answers(
    upstream: FakeUpstream, tmp_path: Path
) -> None:
    config = tmp_path / "tierwise.yaml"
    config.write_text(yaml.safe_dump(gateway_data(upstream.base_url)))
    port = free_port()
    env = {**os.environ, "TIERWISE_STORE_URL": dead_postgres(free_port())}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tierwise",
        "serve",
        "--config",
        str(config),
        "--port",
        str(port),
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        status = await chat_when_up(f"http://127.0.0.1:{port}", process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 30)
    stderr = err.decode()
    assert status == 200, stderr
    assert "Traceback" not in stderr
    started, stopped = [line for line in stderr.splitlines() if "request store" in line]
    assert "unavailable" in started and "still serving" in started, stderr
    assert "lost 1 request records" in stopped, stderr


async def chat_when_up(base_url: str, process: asyncio.subprocess.Process) -> int | None:
    """The status of a chat request once the server listens; None if it exited first."""
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while process.returncode is None:
            try:
                async with session.post(base_url + "/v1/chat/completions", json=CHAT) as response:
                    return response.status
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
    return None
