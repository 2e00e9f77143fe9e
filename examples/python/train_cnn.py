"""Train a small CNN on Fashion-MNIST with Needle, from Python.

    python examples/python/train_cnn.py                      # Debian's dataset-fashion-mnist
    python examples/python/train_cnn.py --data DIR           # any folder with MNIST-format IDX files
    python examples/python/train_cnn.py --resume             # continue from out/cnn/checkpoint.safetensors

The model: Conv(1,16,3)-BatchNorm-ReLU-MaxPool(2), Conv(16,32,3)-BatchNorm-ReLU-MaxPool(2), Flatten,
Linear(1568,128)-ReLU-Dropout(0.2), Linear(128,10); Adam with a cosine schedule. Shows a progress bar with
the running loss and speed, prints a summary per epoch, writes metrics to out/cnn/metrics.csv, saves a
checkpoint after every epoch, and draws out/cnn/loss.png when matplotlib is installed. The same training
from C++ is examples/cpp/train_cnn.cpp.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from training_utils import (
    MetricsLog,
    evaluate,
    find_idx_files,
    load_checkpoint,
    plot_losses,
    save_checkpoint,
    train_epoch,
)

import needle as ndl
from needle import nn

DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")
CHANNELS = (16, 32)
HIDDEN = 128
DROPOUT = 0.2


class ToNCHW(nn.Module):
    """The dataset's flattened (N, 784) images as the (N, 1, 28, 28) that nn.Conv and BatchNorm2d take."""

    def forward(self, x: ndl.Tensor) -> ndl.Tensor:
        return ndl.ops.reshape(x, (x.shape[0], 1, 28, 28))


def make_model() -> nn.Module:
    c1, c2 = CHANNELS
    return nn.Sequential(
        ToNCHW(),
        nn.Conv(1, c1, 3),  # "same" padding: 28x28
        nn.BatchNorm2d(c1),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 14x14
        nn.Conv(c1, c2, 3),
        nn.BatchNorm2d(c2),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 7x7
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, HIDDEN),
        nn.ReLU(),
        nn.Dropout(DROPOUT),
        nn.Linear(HIDDEN, 10),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with MNIST-format IDX files")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="cpu", help="cpu or ref")
    parser.add_argument("--out", type=Path, default=Path("out/cnn"))
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-steps", type=int, default=0, help="per epoch, train on at most N batches and test on N (quick checks)"
    )
    args = parser.parse_args()

    if not args.data.is_dir():
        print(f"{args.data} does not exist: install Debian's dataset-fashion-mnist or pass --data DIR", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    device = ndl.ref() if args.device == "ref" else ndl.cpu()
    ndl.manual_seed(args.seed)  # seeds NumPy's state too: initial weights, shuffling and dropout repeat

    train_set = ndl.data.MNISTDataset(*find_idx_files(args.data, "train"))
    test_set = ndl.data.MNISTDataset(*find_idx_files(args.data, "t10k"))
    train_loader = ndl.data.DataLoader(train_set, args.batch_size, shuffle=True, num_workers=1, device=device)
    test_loader = ndl.data.DataLoader(test_set, 1000, device=device)
    print(f"Fashion-MNIST from {args.data}: {len(train_set)} training and {len(test_set)} test images")

    model = make_model()
    model.to(device)
    loss_fn = nn.SoftmaxLoss()
    optimizer = ndl.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = ndl.optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(f"model: CNN {CHANNELS[0]}-{CHANNELS[1]} channels, {n_params:,} parameters, Adam lr {args.lr}")

    checkpoint = args.out / "checkpoint.safetensors"
    log = MetricsLog(args.out / "metrics.csv", ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"])
    first_epoch = 0
    if args.resume and checkpoint.exists():
        first_epoch, restored = load_checkpoint(model, optimizer, scheduler, checkpoint)
        if not restored:
            for _ in range(first_epoch):
                scheduler.step()
        print(f"resumed from {checkpoint} after epoch {first_epoch}")

    test_acc = 0.0
    for epoch in range(first_epoch, args.epochs):
        label = f"epoch {epoch + 1}/{args.epochs}"
        train_loss, train_acc, seconds = train_epoch(model, train_loader, loss_fn, optimizer, label, args.max_steps)
        scheduler.step()
        test_loss, test_acc = evaluate(model, test_loader, loss_fn, args.max_steps)
        print(
            f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_acc:.2%} | "
            f"test loss {test_loss:.4f} acc {test_acc:.2%} | {seconds:.1f} s"
        )
        log.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(train_loss, 6),
                "train_acc": round(train_acc, 6),
                "test_loss": round(test_loss, 6),
                "test_acc": round(test_acc, 6),
                "seconds": round(seconds, 2),
            }
        )
        save_checkpoint(model, optimizer, scheduler, checkpoint, epoch + 1)
    if first_epoch >= args.epochs:  # resumed after the last epoch: nothing trained, report the checkpoint
        test_acc = evaluate(model, test_loader, loss_fn, args.max_steps)[1]

    if plot_losses(log, args.out / "loss.png", "CNN on Fashion-MNIST"):
        print(f"loss curve: {args.out / 'loss.png'}")
    print(f"metrics: {log.path}; checkpoint: {checkpoint}")
    print(f"final test accuracy: {test_acc:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
