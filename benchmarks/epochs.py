"""One training epoch of each README example (the MLP and the CNN on Fashion-MNIST) in Needle and the same
model, data and loop in PyTorch, at 1 and 2 threads.

    python benchmarks/epochs.py                                # Debian's dataset-fashion-mnist
    python benchmarks/epochs.py --data DIR --threads 1         # any MNIST-format folder, 1 thread only

Needle runs the examples' own models (`make_model` of examples/python/train_mlp.py and train_cnn.py) with
their data pipeline (MNISTDataset, DataLoader with one worker thread, batch 128, shuffled) and optimizer
(Adam, lr 1e-3 for the MLP and 2e-3 for the CNN). PyTorch runs the same layers (PyTorch's layouts), the same
images scaled to [0, 1] through a TensorDataset and DataLoader (batch 128, shuffled, in the main process),
Adam with the same learning rate and cross-entropy. Each epoch's loop is what a training script does per
batch: forward, loss, zero the gradients, backward, step, read the loss and count the correct predictions.
Each (framework, model, thread count) is a fresh process with NEEDLE_NUM_THREADS / OMP_NUM_THREADS set;
the epoch is timed from the first batch to the last, after the model, optimizer and data are set up.
PyTorch comes from the interpreter workloads.py would use (.torch-venv first).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples" / "python"
DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")
LEARNING_RATES = {"mlp": 1e-3, "cnn": 2e-3}
BATCH = 128


def idx_files(folder: Path) -> tuple[Path, Path]:
    for suffix in (".gz", ""):
        images = folder / f"train-images-idx3-ubyte{suffix}"
        labels = folder / f"train-labels-idx1-ubyte{suffix}"
        if images.exists() and labels.exists():
            return images, labels
    raise SystemExit(f"no train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] in {folder}")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array of its declared shape."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def needle_epoch(model_name: str, data: Path) -> dict[str, Any]:
    sys.path.insert(0, str(EXAMPLES))
    import needle as ndl

    ndl.manual_seed(0)
    if model_name == "mlp":
        from train_mlp import make_model as make_mlp

        model = make_mlp(512, 0.2)
    else:
        from train_cnn import make_model as make_cnn

        model = make_cnn()
    images, labels = idx_files(data)
    loader = ndl.data.DataLoader(
        ndl.data.MNISTDataset(str(images), str(labels)), BATCH, shuffle=True, num_workers=1, device=ndl.cpu()
    )
    loss_fn = ndl.nn.SoftmaxLoss()
    optimizer = ndl.optim.Adam(model.parameters(), lr=LEARNING_RATES[model_name])
    model.train()
    correct = seen = 0
    start = time.perf_counter()
    for x, y in loader:
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.reset_grad()
        loss.backward()
        optimizer.step()
        loss.item()
        correct += int((logits.numpy().argmax(axis=1) == y.numpy()).sum())
        seen += y.shape[0]
    return {"seconds": time.perf_counter() - start, "accuracy": correct / seen, "images": seen}


def torch_epoch(model_name: str, data: Path) -> dict[str, Any]:
    import torch
    from torch import nn

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    torch.manual_seed(0)
    if model_name == "mlp":
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 512),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(512, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 10),
        )
        shape: tuple[int, ...] = (-1, 784)
    else:
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 7 * 7, 128),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(128, 10),
        )
        shape = (-1, 1, 28, 28)
    images, labels = idx_files(data)
    x_all = torch.from_numpy(read_idx(images).astype(np.float32) / 255.0).reshape(shape)
    y_all = torch.from_numpy(read_idx(labels).astype(np.int64))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_all, y_all), BATCH, shuffle=True)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATES[model_name])
    model.train()
    correct = seen = 0
    start = time.perf_counter()
    for x, y in loader:
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()
        correct += int((logits.argmax(dim=1) == y).sum().item())
        seen += y.shape[0]
    return {"seconds": time.perf_counter() - start, "accuracy": correct / seen, "images": seen}


def run(python: str, framework: str, model_name: str, threads: int, data: Path) -> dict[str, Any]:
    env = dict(os.environ)
    for var in ("NEEDLE_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    command = [python, __file__, "--child", framework, "--model", model_name, "--data", str(data)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"{framework} {model_name} at {threads} thread(s) failed")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with MNIST-format IDX files")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--torch-python", help="interpreter that has PyTorch")
    parser.add_argument("--child", choices=["needle", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        epoch = needle_epoch if args.child == "needle" else torch_epoch
        print(json.dumps(epoch(args.model, args.data)))
        return 0

    if not args.data.is_dir():
        print(f"{args.data} does not exist: install Debian's dataset-fashion-mnist or pass --data", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    from workloads import find_torch_python

    torch_python = find_torch_python(args.torch_python)
    print(f"data: {args.data}; PyTorch: {torch_python or 'not found'}; one epoch, batch {BATCH}, fresh processes")
    print("\n| model | threads | Needle | PyTorch | ratio (PyTorch time / Needle time) | Needle acc | PyTorch acc |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for threads in (int(t) for t in args.threads.split(",")):
        for model_name in args.models.split(","):
            needle = run(sys.executable, "needle", model_name, threads, args.data)
            reference = run(torch_python, "torch", model_name, threads, args.data) if torch_python else None
            torch_time = torch_acc = ratio = "n/a"
            if reference:
                torch_time = f"{reference['seconds']:.1f} s"
                torch_acc = f"{reference['accuracy']:.2%}"
                ratio = f"{reference['seconds'] / needle['seconds']:.2f}"
            print(
                f"| {model_name} | {threads} | {needle['seconds']:.1f} s | {torch_time} | {ratio} | "
                f"{needle['accuracy']:.2%} | {torch_acc} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
