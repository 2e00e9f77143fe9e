"""The PyTorch example scripts (examples/torch) against real PyTorch: each script's own model, optimizer,
schedule and training step, from the same weights and data, give PyTorch's loss after every step and its
parameters after three steps (torch_cases/cases_examples.py); and each script runs end to end here."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch_reference import NO_REFERENCE, case_names, compare, reference_python

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "torch"


@pytest.mark.skipif(reference_python() is None, reason=NO_REFERENCE)
@pytest.mark.parametrize("case", case_names("cases_examples"))
def test_example_matches_pytorch_step_by_step(case: str) -> None:
    compare("cases_examples", case, rtol=1e-5, atol=1e-5)


def _has_fashion_mnist() -> bool:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import datasets

        datasets.fashion_mnist("t10k")
    except FileNotFoundError:
        return False
    finally:
        sys.path.remove(str(EXAMPLES))
    return True


def _has_ptb() -> bool:
    return (Path(__file__).resolve().parents[3] / "shared" / "data" / "ptb" / "ptb.valid.txt").exists()


RUNS = {
    "cnn_fashion_mnist": (["--synthetic", "--max-steps", "3", "--checkpoint", "{tmp}/cnn.pt"], None),
    "resnet_fashion_mnist": (["--synthetic", "--max-steps", "2", "--batch-size", "16"], None),
    "mlp_regression": (["--steps", "100"], None),
    "lstm_lm": (["--max-steps", "3", "--max-lines", "300", "--batch-size", "8"], "ptb"),
    "transformer_lm": (["--max-steps", "3", "--max-lines", "300", "--batch-size", "8"], "ptb"),
    "finetune": (["--checkpoint", "{tmp}/cnn.pt", "--steps", "5"], "fashion"),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_example_runs_end_to_end(name: str, tmp_path: Path) -> None:
    arguments, needs = RUNS[name]
    if needs == "ptb" and not _has_ptb():
        pytest.skip("Penn Treebank is not in ../shared/data/ptb")
    if needs == "fashion" and not _has_fashion_mnist():
        pytest.skip("no Fashion-MNIST (or MNIST) IDX files: apt-get install dataset-fashion-mnist")
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES)}
    if name == "finetune":
        made = subprocess.run(
            [
                sys.executable,
                str(EXAMPLES / "cnn_fashion_mnist.py"),
                "--synthetic",
                "--max-steps",
                "1",
                "--checkpoint",
                str(tmp_path / "cnn.pt"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert made.returncode == 0, made.stderr[-3000:]
    command = [sys.executable, str(EXAMPLES / f"{name}.py"), *(a.format(tmp=tmp_path) for a in arguments)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert any(word in run.stdout for word in ("loss", "mse", "accuracy")), run.stdout
