"""The structure embedder sees a prompt's form, not its topic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tierwise.embeddings.structure import StructureEmbedder
from tierwise.learning.store import make_embedder


def test_same_form_different_topic_gives_the_same_vector() -> None:
    embedder = StructureEmbedder()
    a, b = embedder.embed(["What is the price of bread?", "What is the color of grass?"])
    assert np.allclose(a, b)


def test_form_moves_the_vector() -> None:
    embedder = StructureEmbedder()
    short, math_problem, code = embedder.embed(
        [
            "Hi there",
            "A train leaves at 3 pm at 60 km/h; another at 4 pm at 80 km/h. When does the "
            "second catch up? Show that 80 * t = 60 * (t + 1).",
            "```python\ndef f(x):\n    return x\n```\nWhy does this return None?",
        ]
    )
    features = StructureEmbedder().features
    assert features("Hi there")["math"] == -1.0 and features("x = 1 + 2")["math"] == 1.0
    assert features("```\ncode\n```")["code"] == 1.0
    assert float(short @ math_problem) < 0.95 and float(short @ code) < 0.95


def test_rows_are_unit_vectors_of_the_stated_dimension() -> None:
    embedder = StructureEmbedder()
    vectors = embedder.embed(["", "one", "two words\nand lines?", "A) x\nB) y\nAnswer:"])
    assert vectors.shape == (4, embedder.dimension) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.array_equal(
        vectors, embedder.embed(["", "one", "two words\nand lines?", "A) x\nB) y\nAnswer:"])
    )


def test_learned_routers_train_and_evaluate_on_structure(tmp_path: Path) -> None:
    """`structure` is an embedder like the others: a saved router remembers it, and
    `eval` runs a learned spec on it."""
    from typer.testing import CliRunner

    from tierwise.cli import app

    table = Path(__file__).parent / "fixtures" / "outcomes_small.csv"
    cli = CliRunner()
    spec = "learned:logistic:structure"
    done = cli.invoke(app, ["eval", str(table), "--out", str(tmp_path), "--router", spec])
    assert done.exit_code == 0, done.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["router"] == spec and metrics["points"]
    assert make_embedder("structure").name == "structure-v1"
