"""Smoke test of one C++ training example (examples/cpp/train_*), run by ctest (examples/cpp/CMakeLists.txt).

    python tests/cpp/example_smoke.py BINARY KIND WORKDIR

KIND is mnist, cifar10 or ptb: the data the example reads, written tiny into WORKDIR (MNIST-format IDX
files, a cifar-10-batches-py folder from examples/python/make_fake_cifar10.py, PTB-format text). The
example trains one epoch of a few batches; the test checks its exit code, summary, metrics CSV and
checkpoint (model, optimizer and schedule), then resumes for a second epoch; the MNIST examples also
resume from an older, model-only checkpoint. Exits 77 (ctest's skip) when the data cannot be written here.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

SKIP = 77
REPO = Path(__file__).resolve().parents[2]

# Per example: the arguments that keep it to a few small batches.
SMALL = {
    "train_mlp": ["--batch-size", "16"],
    "train_cnn": ["--batch-size", "8", "--max-steps", "2"],
    "train_resnet9": ["--batch-size", "8", "--max-steps", "2"],
    "train_lstm_lm": ["--batch-size", "4", "--seq-len", "8", "--max-steps", "3", "--embed", "16", "--hidden", "16"],
    "train_transformer_lm": [
        *("--batch-size", "4", "--seq-len", "8", "--max-steps", "3"),
        *("--dim", "16", "--heads", "2", "--mlp", "32", "--layers", "1"),
    ],
}


def write_mnist(folder: Path, n_train: int = 48, n_test: int = 16) -> None:
    """MNIST-format IDX files of random 28x28 images and labels."""
    rng = random.Random(0)
    folder.mkdir(parents=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        pixels = bytes(rng.randrange(256) for _ in range(n * 28 * 28))
        labels = bytes(rng.randrange(10) for _ in range(n))
        (folder / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, n, 28, 28) + pixels)
        (folder / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, n) + labels)


def write_cifar10(folder: Path) -> bool:
    """A cifar-10-batches-py folder of 5 x 8 training and 8 test images; False when NumPy is missing."""
    try:
        import numpy  # noqa: F401  # make_fake_cifar10.py pickles NumPy arrays
    except ImportError:
        return False
    script = REPO / "examples" / "python" / "make_fake_cifar10.py"
    command = [sys.executable, str(script), str(folder), "--per-batch", "8", "--test", "8"]
    subprocess.run(command, check=True, timeout=60)
    return True


def write_ptb(folder: Path) -> None:
    """PTB-format text (space-separated words, one sentence a line) over a 30-word vocabulary."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(30)]
    folder.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        lines = [" ".join(rng.choices(words, k=rng.randrange(3, 12))) for _ in range(60)]
        (folder / f"ptb.{split}.txt").write_text("".join(f" {line} \n" for line in lines))


def run(binary: Path, *args: str) -> str:
    result = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120, check=False)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        sys.exit(f"{binary.name} {' '.join(args)} exited with {result.returncode}:\n{output}")
    return output


def expect(condition: bool, what: str, output: str) -> None:
    if not condition:
        sys.exit(f"expected {what}; the example printed:\n{output}")


def epochs_logged(csv_path: Path) -> list[str]:
    with csv_path.open() as f:
        return [row["epoch"] for row in csv.DictReader(f)]


def safetensors_header(path: Path) -> dict[str, dict[str, object]]:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header: dict[str, dict[str, object]] = json.loads(data[8 : 8 + size])
    return header


def write_model_only(checkpoint: Path, epoch: int) -> None:
    """Rewrites a checkpoint the way examples wrote them before the optimizer was saved: the model's
    tensors under their own names, and no "contents" metadata."""
    data = checkpoint.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    body = data[8 + size :]
    new_header: dict[str, object] = {"__metadata__": {"epoch": str(epoch)}}
    chunks: list[bytes] = []
    offset = 0
    for name, info in sorted(header.items()):
        if not name.startswith("model."):
            continue
        begin, end = info["data_offsets"]
        chunks.append(body[begin:end])
        new_header[name.removeprefix("model.")] = {
            "dtype": info["dtype"],
            "shape": info["shape"],
            "data_offsets": [offset, offset + end - begin],
        }
        offset += end - begin
    encoded = json.dumps(new_header).encode()
    encoded += b" " * (-len(encoded) % 8)
    checkpoint.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


def main() -> int:
    binary, kind, work = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    if kind == "mnist":
        write_mnist(data)
    elif kind == "cifar10":
        if not write_cifar10(data):
            print("skipped: writing the fake CIFAR-10 folder needs NumPy")
            return SKIP
    elif kind == "ptb":
        write_ptb(data)
    else:
        sys.exit(f"unknown data kind {kind!r}")

    out = work / "out"
    common = ["--data", str(data), "--out", str(out), *SMALL[binary.name]]
    first = run(binary, *common, "--epochs", "1")
    expect("epoch 1: train loss" in first, "a summary of epoch 1", first)
    expect("final test accuracy:" in first or "test perplexity:" in first, "a final result", first)
    expect(epochs_logged(out / "metrics.csv") == ["1"], "one row in metrics.csv", first)
    checkpoint = out / "checkpoint.safetensors"
    header = safetensors_header(checkpoint)
    expect(header["__metadata__"].get("epoch") == "1", "epoch 1 in the checkpoint's metadata", first)
    for part in ("model.", "optim.", "scheduler."):
        expect(any(name.startswith(part) for name in header), f"'{part}' tensors in the checkpoint", first)
    expect("optim.lr" in header, "the optimizer's learning rate in the checkpoint", first)

    second = run(binary, *common, "--epochs", "2", "--resume")
    expect("after epoch 1" in second, "a resumed run", second)
    expect("note:" not in second, "the optimizer restored from the checkpoint", second)
    expect("epoch 1: train loss" not in second, "the finished epoch not trained again", second)
    expect("epoch 2: train loss" in second, "a summary of epoch 2", second)
    expect(epochs_logged(out / "metrics.csv") == ["1", "2"], "two rows in metrics.csv", second)

    if kind == "mnist":
        write_model_only(checkpoint, 2)
        third = run(binary, *common, "--epochs", "3", "--resume")
        expect("holds the model only" in third, "a note that the optimizer starts fresh", third)
        expect("epoch 3: train loss" in third, "a summary of epoch 3", third)
        expect("optim.lr" in safetensors_header(checkpoint), "a full checkpoint written again", third)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
