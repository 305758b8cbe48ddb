"""Distil the static embedder's table (`minilm_static.npz`) from the installed MiniLM.

    python -m tierwise.embeddings.distill CORPUS.csv|.jsonl [...] [--out PATH]

Needs the MiniLM embedder installed (requirements/embeddings.txt) and scipy. Steps:

1. Each of the 30,522 WordPiece tokens through MiniLM alone (`[CLS] token [SEP]`,
   mean-pooled, not normalised): the prior vector of the token (model2vec's recipe).
2. MiniLM's embedding of each corpus text (the `prompt` and `prompt_turn2` columns of
   a CSV, the `prompt` of each JSONL line, and each line of five words or more), with
   every 10th text (by sha256) held out.
3. The token vectors F that make mean-of-tokens best match MiniLM on the training texts:
   ridge least squares, min |A F - Y|^2 + lam |F - a E0|^2 (A: each text's token shares,
   Y: MiniLM's unit vectors, a E0: the prior scaled to fit), solved by conjugate gradients;
   tokens absent from the corpus keep their prior.
4. Low rank (PCA of F to `--rank` dimensions plus an offset), coordinates as int8 with
   one scale per token, written as a zip with fixed timestamps.

It prints the cosine to MiniLM on the held-out texts. Deterministic on one machine and
library versions; the shipped file's sha256 is pinned in tierwise.embeddings.static.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.embeddings.static import CLS, MAX_TOKENS, SEP, TABLE_FILE
from tierwise.embeddings.wordpiece import WordPiece

Matrix = npt.NDArray[np.float64]
Tables = tuple[dict[str, npt.NDArray[Any]], dict[str, Any]]
BATCH = 1024
MIN_LINE_WORDS = 5


def vocabulary(tokenizer_json: Path) -> list[str]:
    """The WordPiece vocabulary of a `tokenizer.json`, in id order."""
    vocab: dict[str, int] = json.loads(tokenizer_json.read_text("utf-8"))["model"]["vocab"]
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[t] for t in tokens] != list(range(len(tokens))) or any("\n" in t for t in tokens):
        raise ValueError(f"{tokenizer_json}: ids are not 0..n-1 or a token holds a newline")
    return tokens


def token_priors(session: Any, size: int, cls: int, sep: int) -> Matrix:
    """MiniLM's mean-pooled output for each token alone between [CLS] and [SEP]."""
    out = np.zeros((size, 384))
    for start in range(0, size, BATCH):
        ids = np.arange(start, min(size, start + BATCH), dtype=np.int64)
        batch = np.stack([np.full_like(ids, cls), ids, np.full_like(ids, sep)], axis=1)
        feed = {"input_ids": batch, "attention_mask": np.ones_like(batch)}
        feed["token_type_ids"] = np.zeros_like(batch)
        out[start : start + len(ids)] = np.asarray(session.run(None, feed)[0]).mean(axis=1)
    return out


def _prompts(path: Path) -> Iterator[str]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as fh:
            yield from (json.loads(line)["prompt"] for line in fh if line.strip())
        return
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            yield from (row.get(c) or "" for c in ("prompt", "prompt_turn2"))


def corpus(paths: Sequence[Path]) -> list[str]:
    """Unique texts: each prompt, then each line of five words or more, sorted."""
    texts: set[str] = set()
    for path in paths:
        for prompt in _prompts(path):
            texts.add(prompt.strip())
            lines = (line.strip() for line in prompt.split("\n"))
            texts.update(line for line in lines if len(line.split()) >= MIN_LINE_WORDS)
    texts.discard("")
    return sorted(texts)


def held_out(text: str) -> bool:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[0] % 10 == 0


def shares(
    encode: Callable[[str], list[int]], texts: Sequence[str], size: int
) -> tuple[Any, Matrix]:
    """A sparse (texts x tokens) matrix, each row the share of each token in the text,
    and each token's count over the texts."""
    import scipy.sparse as sp

    encoded = [encode(t) for t in texts]
    rows = np.repeat(np.arange(len(texts)), [len(ids) for ids in encoded])
    cols = np.fromiter((i for ids in encoded for i in ids), dtype=np.int64, count=len(rows))
    vals = np.repeat([1.0 / len(ids) for ids in encoded], [len(ids) for ids in encoded])
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(texts), size))
    return matrix, np.bincount(cols, minlength=size).astype(np.float64)


def ridge(a: Any, y: Matrix, prior: Matrix, lam: float, iterations: int) -> Matrix:
    """argmin_F |a F - y|^2 + lam |F - prior|^2 by conjugate gradients (all columns)."""

    def apply(x: Matrix) -> Matrix:
        result: Matrix = a.T @ (a @ x) + lam * x
        return result

    x = prior.copy()
    r = a.T @ y + lam * prior - apply(x)
    p, rs = r.copy(), (r * r).sum(axis=0)
    for _ in range(iterations):
        ap = apply(p)
        step = rs / np.maximum((p * ap).sum(axis=0), 1e-30)
        x += p * step
        r -= ap * step
        new = (r * r).sum(axis=0)
        if float(np.sqrt(new.max())) < 1e-7:
            break
        p, rs = r + p * (new / np.maximum(rs, 1e-30)), new
    return x


def write_npz(path: Path, arrays: dict[str, npt.NDArray[Any]]) -> str:
    """A deflated .npz with fixed timestamps (byte-identical for equal arrays); its sha256."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]))
            archive.writestr(info, member.getvalue(), compresslevel=9)
    path.write_bytes(buffer.getvalue())
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def frequency_pca(table: Matrix, counts: Matrix, rank: int) -> tuple[Matrix, Matrix]:
    """(offset, basis): mean and top principal axes, each token weighted by sqrt(count+1)."""
    weights = np.sqrt(counts + 1.0)
    offset: Matrix = (table * weights[:, None]).sum(axis=0) / weights.sum()
    centred = table - offset
    _, vectors = np.linalg.eigh((centred * weights[:, None]).T @ centred)
    basis: Matrix = vectors[:, ::-1].T[:rank]
    return offset, basis


def quantise(table: Matrix, counts: Matrix, rank: int) -> dict[str, npt.NDArray[Any]]:
    """Offset, basis and int8 coordinates with one scale per token."""
    offset, basis = frequency_pca(table, counts, rank)
    coords = (table - offset) @ basis.T
    scales = np.maximum(np.abs(coords).max(axis=1), 1e-12) / 127.0
    codes = np.clip(np.rint(coords / scales[:, None]), -127, 127).astype(np.int8)
    return {
        "codes": codes,
        "scales": scales.astype(np.float32),
        "basis": basis.astype(np.float32),
        "offset": offset.astype(np.float32),
    }


def static_vectors(arrays: dict[str, npt.NDArray[Any]], a: Any) -> Matrix:
    """Unit vectors of the texts whose token shares are `a`, from the quantised table."""
    coords = arrays["codes"].astype(np.float64) * arrays["scales"][:, None]
    vectors = np.asarray((a @ coords) @ arrays["basis"] + arrays["offset"], dtype=np.float64)
    unit: Matrix = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return unit


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _session(model_path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def _summary(paths: Sequence[Path], sizes: tuple[int, int], cosine: Matrix) -> dict[str, Any]:
    from tierwise.embeddings import minilm

    return {
        "teacher": minilm.MiniLMEmbedder().name,
        "teacher_sha256": [f.sha256 for f in minilm.MODEL_FILES],
        "corpus": [{"file": p.name, "sha256": file_sha256(p)} for p in paths],
        "texts": {"train": sizes[0], "held_out": sizes[1]},
        "max_tokens": MAX_TOKENS,
        "held_out_cosine": {
            "mean": round(float(cosine.mean()), 4),
            "p10": round(float(np.quantile(cosine, 0.1)), 4),
            "min": round(float(cosine.min()), 4),
        },
    }


def distil(paths: Sequence[Path], rank: int, lam: float, iterations: int) -> Tables:
    """The table's arrays and a summary of how it was made and how close it comes."""
    from tierwise.embeddings import minilm
    from tierwise.embeddings.cache import EmbeddingCache

    model_path, tokenizer_path = minilm.resolve_files()
    tokens = vocabulary(tokenizer_path)
    wordpiece = WordPiece(tokens)
    cls, sep = tokens.index(CLS), tokens.index(SEP)

    def encode(text: str) -> list[int]:
        return [cls, *wordpiece.encode(text, MAX_TOKENS - 2), sep]

    prior = token_priors(_session(model_path), len(tokens), cls, sep)
    texts = corpus(paths)
    train, test = ([t for t in texts if held_out(t) == k] for k in (False, True))
    teacher = minilm.MiniLMEmbedder(threads=2, cache_size=0, batch_size=64)
    cache = EmbeddingCache()
    y = cache.embed(teacher, train).astype(np.float64)
    a, counts = shares(encode, train, len(tokens))
    fitted = a @ prior
    scale = float((fitted * y).sum() / (fitted * fitted).sum())
    arrays = quantise(ridge(a, y, scale * prior, lam, iterations), counts, rank)
    test_a, _ = shares(encode, test, len(tokens))
    cosine = (static_vectors(arrays, test_a) * cache.embed(teacher, test)).sum(axis=1)
    summary = {**_summary(paths, (len(train), len(test)), cosine), "ridge": lam, "rank": rank}
    arrays["vocab"] = np.frombuffer("\n".join(tokens).encode("utf-8"), dtype=np.uint8)
    return arrays, summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, nargs="+", help="CSV or JSONL files of prompts")
    parser.add_argument("--out", type=Path, default=TABLE_FILE)
    parser.add_argument("--rank", type=int, default=192)
    parser.add_argument("--ridge", type=float, default=0.01)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args(argv)
    arrays, summary = distil(args.corpus, args.rank, args.ridge, args.iterations)
    meta = json.dumps(summary, sort_keys=True).encode("utf-8")
    arrays["meta"] = np.frombuffer(meta, dtype=np.uint8)
    digest = write_npz(args.out, arrays)
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes), sha256 {digest}")


if __name__ == "__main__":
    main()
