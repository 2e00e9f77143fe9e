"""Smoke tests of the language-model examples (examples/python/train_lstm_lm.py and train_transformer_lm.py):
each runs as a subprocess for a few steps on a tiny PTB-format folder, writes its metrics CSV and checkpoint,
and resumes from that checkpoint."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


def write_ptb(folder: Path, splits: tuple[str, ...], seed: int = 0) -> Path:
    """PTB-format text (space-separated words, one sentence a line) drawn from a 30-word vocabulary."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(30)]
    folder.mkdir()
    for split in splits:
        lines = [" ".join(rng.choice(words, size=rng.integers(3, 12))) for _ in range(60)]
        (folder / f"ptb.{split}.txt").write_text("\n".join(f" {line} " for line in lines) + "\n")
    return folder


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    ("script", "splits", "model_args"),
    [
        ("train_lstm_lm.py", ("valid", "test"), ["--embed", "16", "--hidden", "16"]),
        ("train_transformer_lm.py", ("train", "valid", "test"), ["--dim", "16", "--heads", "2", "--mlp", "32"]),
    ],
)
def test_trains_writes_metrics_and_resumes(
    tmp_path: Path, script: str, splits: tuple[str, ...], model_args: list[str]
) -> None:
    data = write_ptb(tmp_path / "ptb", splits)
    out = tmp_path / "out"
    common = ["--data", str(data), "--out", str(out), "--batch-size", "4", "--seq-len", "8", "--max-steps", "3"]
    first = run(script, *common, *model_args, "--epochs", "2")
    if "train" in splits:
        assert "training on ptb.valid.txt" not in first
    else:
        assert "training on ptb.valid.txt and evaluating on ptb.test.txt" in first
    assert "test perplexity:" in first
    assert "unigram baseline" in first
    metrics = rows(out / "metrics.csv")
    assert [r["epoch"] for r in metrics] == ["1", "2"]
    for r in metrics:
        assert np.isfinite(float(r["train_loss"]))
        assert float(r["eval_ppl"]) > 1.0
    assert (out / "checkpoint.safetensors").stat().st_size > 0

    second = run(script, *common, *model_args, "--epochs", "3", "--resume")
    assert "after epoch 2" in second
    assert "holds the model only" not in second  # the optimizer and the schedule were restored too
    assert [r["epoch"] for r in rows(out / "metrics.csv")] == ["1", "2", "3"]


def test_generate_samples_from_the_trained_transformer(tmp_path: Path) -> None:
    data = write_ptb(tmp_path / "ptb", ("valid", "test"))
    out = tmp_path / "out"
    model_args = ["--dim", "16", "--heads", "2", "--mlp", "32", "--batch-size", "4", "--seq-len", "24"]
    run("train_transformer_lm.py", "--data", str(data), "--out", str(out), *model_args, "--max-steps", "3")
    greedy = run(
        "generate.py", "--out", str(out), "--prompt", "w1 w2 nosuchword", "--tokens", "8", "--greedy", "--compare"
    )
    prompt, _, continuation = greedy.splitlines()[0].partition(" || ")
    assert prompt == "w1 w2 nosuchword"
    assert len(continuation.split()) == 8
    assert "without the cache" in greedy
    assert "the same words" in greedy
    sampled = run("generate.py", "--out", str(out), "--tokens", "5", "--int8", "--seed", "3")
    assert "int8 model" in sampled
    missing = subprocess.run(
        [sys.executable, str(EXAMPLES / "generate.py"), "--out", str(tmp_path / "none")], capture_output=True, text=True
    )
    assert missing.returncode == 1
    assert "run examples/python/train_transformer_lm.py first" in missing.stderr
