"""Write a small synthetic CIFAR-10 folder in the format of ``cifar-10-batches-py``.

    python examples/python/make_fake_cifar10.py DIR                  # 5 x 100 training, 100 test images
    python examples/python/make_fake_cifar10.py DIR --per-batch 20 --test 20

The files are what the real archive holds: pickles (protocol 2) named data_batch_1..5 and test_batch, each
a dict with b"data" (uint8, N x 3072, channel-major 32x32 planes) and b"labels" (a list of ints 0-9), plus
batches.meta. Each class has its own mean colour plus noise, so a model can learn something in a few steps.
It exists to check that the ResNet-9 examples run end to end where the real CIFAR-10 is not available; the
accuracy on it means nothing.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_batch(rng: np.random.Generator, n: int, label: str) -> dict[bytes, object]:
    labels = rng.integers(0, 10, n)
    colours = np.linspace(30, 225, 10)  # class c: its own brightness, shifted per channel
    base = colours[labels][:, None, None] + np.array([-20.0, 0.0, 20.0])[None, :, None]
    noise = rng.normal(0.0, 25.0, (n, 3, 1024))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8).reshape(n, 3072)
    return {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in labels],
        b"data": pixels,
        b"filenames": [f"fake_{i:05d}.png".encode() for i in range(n)],
    }


def write_fake_cifar10(folder: Path, per_batch: int = 100, test: int = 100, seed: int = 0) -> None:
    """Writes data_batch_1..5 (`per_batch` images each), test_batch (`test` images) and batches.meta."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)]
    for i, name in enumerate(names):
        batch = make_batch(rng, per_batch, f"training batch {i + 1} of 5")
        with (folder / name).open("wb") as f:
            pickle.dump(batch, f, protocol=2)
    with (folder / "test_batch").open("wb") as f:
        pickle.dump(make_batch(rng, test, "testing batch 1 of 1"), f, protocol=2)
    meta = {b"label_names": [c.encode() for c in CLASSES], b"num_cases_per_batch": per_batch, b"num_vis": 3072}
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump(meta, f, protocol=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-batch", type=int, default=100, help="images in each of the 5 training batches")
    parser.add_argument("--test", type=int, default=100, help="images in test_batch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_fake_cifar10(args.folder, args.per_batch, args.test, args.seed)
    print(f"wrote a synthetic cifar-10-batches-py to {args.folder}: {5 * args.per_batch} training, {args.test} test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
