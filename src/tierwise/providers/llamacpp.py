"""A llama.cpp server for one local GGUF model, run in a child process via xllamacpp.

The child process is `python -m tierwise.providers.llamacpp --model PATH ...`. It
prints one `READY_PREFIX <url>` line on stdout once the model is loaded and serves
until its stdin is closed, so it also exits when the parent dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from tierwise.localmodels import LocalModelError

READY_PREFIX = "TIERWISE-LLAMACPP-LISTENING"
_STDERR_LINES = 40
_STOP_GRACE_S = 10.0


class LocalModelServer:
    """One llama.cpp HTTP server on 127.0.0.1 serving an OpenAI-compatible API.

    `context_window` is the token budget of each of the `parallel` request slots.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        context_window: int = 4096,
        threads: int | None = None,
        parallel: int = 2,
        port: int = 0,
        model_alias: str | None = None,
        startup_timeout: float = 120.0,
    ) -> None:
        self.model_path = Path(model_path)
        self.context_window = context_window
        self.threads = threads
        self.parallel = parallel
        self.port = port
        self.model_alias = model_alias or self.model_path.stem
        self.startup_timeout = startup_timeout
        self.load_seconds: float | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._base_url: str | None = None
        self._stderr: deque[str] = deque(maxlen=_STDERR_LINES)
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """Server root such as `http://127.0.0.1:PORT`; append `/v1/chat/completions`."""
        if self._base_url is None:
            raise RuntimeError("LocalModelServer is not running; call start() first")
        return self._base_url

    @property
    def pid(self) -> int | None:
        """Process id of the server process, or None when not running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._proc is not None and self._proc.returncode is None

    def stderr_tail(self) -> str:
        """Last lines the server wrote to stderr."""
        return "\n".join(self._stderr)

    def command(self) -> list[str]:
        """Command line of the server process."""
        cmd = [
            sys.executable,
            "-m",
            "tierwise.providers.llamacpp",
            "--model",
            str(self.model_path),
            "--ctx-size",
            str(self.context_window),
            "--parallel",
            str(self.parallel),
            "--port",
            str(self.port),
            "--alias",
            self.model_alias,
        ]
        if self.threads is not None:
            cmd += ["--threads", str(self.threads)]
        return cmd

    async def start(self) -> None:
        """Start the server and return once it has loaded the model and answers /health."""
        if self._proc is not None:
            raise RuntimeError("LocalModelServer already started")
        if not self.model_path.is_file():
            raise LocalModelError(f"model file not found: {self.model_path}")
        began = time.monotonic()
        self._stderr.clear()
        self._proc = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_child_env(),
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        try:
            url = await asyncio.wait_for(self._read_ready_line(), self.startup_timeout)
            await asyncio.wait_for(_wait_healthy(url), self.startup_timeout)
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, TimeoutError):
                raise LocalModelError(self._failure("did not start in time")) from None
            raise
        self._base_url = url
        self.load_seconds = time.monotonic() - began

    async def stop(self) -> None:
        """Stop the server: close its stdin, then terminate or kill it if it lingers."""
        proc, self._proc, self._base_url = self._proc, None, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        for action in (None, proc.terminate, proc.kill):
            if action is not None:
                with contextlib.suppress(ProcessLookupError):
                    action()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), _STOP_GRACE_S)
                break
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
            self._stderr_task = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _drain_stderr(self) -> None:
        proc = self._proc
        if proc is None or proc.stderr is None:
            return
        while line := await proc.stderr.readline():
            self._stderr.append(line.decode(errors="replace").rstrip())

    async def _read_ready_line(self) -> str:
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise RuntimeError("server process has no stdout pipe")
        while line := await proc.stdout.readline():
            text = line.decode(errors="replace").strip()
            if text.startswith(READY_PREFIX):
                return text.removeprefix(READY_PREFIX).strip()
        await proc.wait()
        if self._stderr_task is not None:
            await self._stderr_task
        raise LocalModelError(self._failure(f"exited with code {proc.returncode}"))

    def _failure(self, what: str) -> str:
        tail = self.stderr_tail()
        detail = f":\n{tail}" if tail else ""
        return f"llama.cpp server for {self.model_path.name} {what}{detail}"


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    current = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not current else os.pathsep.join([root, current])
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


async def _wait_healthy(base_url: str, interval: float = 0.05) -> None:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{base_url}/health") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(interval)


def _build_params(xlc: Any, args: argparse.Namespace) -> Any:
    params = xlc.CommonParams()
    params.model.path = args.model
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx_size * args.parallel
    params.kv_unified = False
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.ui = False
    params.cors_origins = ""
    params.endpoint_slots = False
    params.cache_ram_mib = args.cache_ram_mib
    params.fit_params = False
    params.verbosity = 1
    params.model_alias = {args.alias}
    # The server's `--jinja`: the model's own chat template renders the tools, and the
    # tool calls that template describes come back parsed as `tool_calls`.
    params.use_jinja = True
    if args.threads is not None:
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
    return params


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tierwise.providers.llamacpp",
        description="Serve one GGUF model with llama.cpp on 127.0.0.1 until stdin closes.",
    )
    parser.add_argument("--model", required=True, help="path of the GGUF file")
    parser.add_argument("--ctx-size", type=int, default=4096, help="tokens per request slot")
    parser.add_argument("--parallel", type=int, default=2, help="concurrent request slots")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--alias", default="local", help="model name in responses")
    parser.add_argument("--cache-ram-mib", type=int, default=256, help="prompt cache size")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until stdin reaches EOF."""
    args = _parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        xlc = importlib.import_module("xllamacpp")
    except ImportError:
        print("xllamacpp is not installed: pip install xllamacpp", file=sys.stderr)
        return 2
    try:
        server = xlc.Server(_build_params(xlc, args))
    except RuntimeError as exc:
        print(f"failed to start llama.cpp server: {exc}", file=sys.stderr)
        return 1
    print(f"{READY_PREFIX} {server.listening_address}", flush=True)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdin.buffer.read()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
