"""Train an MLP on Fashion-MNIST with Needle, from Python.

    python examples/python/train_mlp.py                      # Debian's dataset-fashion-mnist
    python examples/python/train_mlp.py --data DIR           # any folder with MNIST-format IDX files
    python examples/python/train_mlp.py --resume             # continue from out/mlp/checkpoint.safetensors

Shows a progress bar with the running loss and speed, prints a summary per epoch, writes metrics to
out/mlp/metrics.csv, saves a checkpoint after every epoch, and draws out/mlp/loss.png when matplotlib is
installed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from training_utils import MetricsLog, Progress, load_checkpoint, plot_losses, save_checkpoint

import needle as ndl
from needle import nn

DEFAULT_DATA = Path("/usr/share/datasets/fashion-mnist")


def find_idx_files(folder: Path, split: str) -> tuple[Path, Path]:
    """The image and label files of `split` ("train" or "t10k") in an MNIST-format folder."""
    for suffix in (".gz", ""):
        images = folder / f"{split}-images-idx3-ubyte{suffix}"
        labels = folder / f"{split}-labels-idx1-ubyte{suffix}"
        if images.exists() and labels.exists():
            return images, labels
    raise SystemExit(f"no {split}-images-idx3-ubyte[.gz] / {split}-labels-idx1-ubyte[.gz] in {folder}")


def make_model(hidden: int, dropout: float) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden // 2),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden // 2, 10),
    )


def evaluate(model: nn.Module, loader: ndl.data.DataLoader, loss_fn: nn.Module) -> tuple[float, float]:
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with ndl.no_grad():
        for images, labels in loader:
            logits = model(images)
            total_loss += loss_fn(logits, labels).item() * labels.shape[0]
            correct += int((logits.numpy().argmax(axis=1) == labels.numpy()).sum())
            seen += labels.shape[0]
    return total_loss / seen, correct / seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with MNIST-format IDX files")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--device", default="cpu", help="cpu or ref")
    parser.add_argument("--out", type=Path, default=Path("out/mlp"))
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if not args.data.is_dir():
        print(f"{args.data} does not exist: install Debian's dataset-fashion-mnist or pass --data DIR", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    device = ndl.ref() if args.device == "ref" else ndl.cpu()
    ndl.manual_seed(args.seed)  # seeds NumPy's state too: initial weights and shuffling repeat

    train_set = ndl.data.MNISTDataset(*map(str, find_idx_files(args.data, "train")))
    test_set = ndl.data.MNISTDataset(*map(str, find_idx_files(args.data, "t10k")))
    train_loader = ndl.data.DataLoader(train_set, args.batch_size, shuffle=True, num_workers=1, device=device)
    test_loader = ndl.data.DataLoader(test_set, 1000, device=device)
    print(f"Fashion-MNIST from {args.data}: {len(train_set)} training and {len(test_set)} test images")

    model = make_model(args.hidden, args.dropout)
    model.to(device)
    loss_fn = nn.SoftmaxLoss()
    optimizer = ndl.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = ndl.optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(f"model: MLP 784-{args.hidden}-{args.hidden // 2}-10, {n_params:,} parameters, Adam lr {args.lr}")

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
        model.train()
        start = time.perf_counter()
        progress = Progress(train_loader, len(train_loader), f"epoch {epoch + 1}/{args.epochs}", "images")
        correct = 0
        for images, labels in progress:
            logits = model(images)
            loss = loss_fn(logits, labels)
            optimizer.reset_grad()
            loss.backward()
            optimizer.step()
            progress.update(loss.item(), labels.shape[0])
            correct += int((logits.numpy().argmax(axis=1) == labels.numpy()).sum())
        scheduler.step()
        seconds = time.perf_counter() - start
        train_acc = correct / progress.samples
        test_loss, test_acc = evaluate(model, test_loader, loss_fn)
        print(
            f"epoch {epoch + 1}: train loss {progress.mean_loss:.4f} acc {train_acc:.2%} | "
            f"test loss {test_loss:.4f} acc {test_acc:.2%} | {seconds:.1f} s"
        )
        log.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(progress.mean_loss, 6),
                "train_acc": round(train_acc, 6),
                "test_loss": round(test_loss, 6),
                "test_acc": round(test_acc, 6),
                "seconds": round(seconds, 2),
            }
        )
        save_checkpoint(model, optimizer, scheduler, checkpoint, epoch + 1)

    if plot_losses(log, args.out / "loss.png", "MLP on Fashion-MNIST"):
        print(f"loss curve: {args.out / 'loss.png'}")
    print(f"metrics: {log.path}; checkpoint: {checkpoint}")
    print(f"final test accuracy: {test_acc:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
