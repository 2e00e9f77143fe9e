"""Train the course's ResNet-9 on CIFAR-10 with Needle, from Python.

    python examples/python/train_resnet9.py --data DIR/cifar-10-batches-py
    python examples/python/train_resnet9.py --data DIR --optimizer sgd --lr 0.05
    python examples/python/train_resnet9.py --data DIR --resume      # continue from out/resnet9

CIFAR-10 is the "python version" archive (data_batch_1..5, test_batch), read without unpickling arbitrary
objects; make_fake_cifar10.py writes a small synthetic folder of the same format for trying this out. The
training images are augmented with RandomFlipHorizontal and RandomCrop(4). The model (ConvBN = Conv with
padding k//2, BatchNorm2d, ReLU):

    ConvBN(3,16,k7,s4) ConvBN(16,32,k3,s2) Residual(ConvBN(32,32,k3,s1) ConvBN(32,32,k3,s1))
    ConvBN(32,64,k3,s2) ConvBN(64,128,k3,s2) Residual(ConvBN(128,128,k3,s1) ConvBN(128,128,k3,s1))
    Flatten Linear(128,128) ReLU Linear(128,10)

trained with Adam (or SGD with momentum) and a cosine schedule. Shows a progress bar with the running loss
and speed, prints a summary per epoch, writes metrics to out/resnet9/metrics.csv, saves a checkpoint after
every epoch, and draws out/resnet9/loss.png when matplotlib is installed. The same training from C++ is
examples/cpp/train_resnet9.cpp.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from training_utils import MetricsLog, evaluate, load_checkpoint, plot_losses, save_checkpoint, train_epoch

import needle as ndl
from needle import nn


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv(in_channels, out_channels, kernel_size, stride=stride), nn.BatchNorm2d(out_channels), nn.ReLU()
    )


def make_model() -> nn.Module:
    return nn.Sequential(
        conv_bn(3, 16, 7, 4),  # 32x32 -> 8x8
        conv_bn(16, 32, 3, 2),  # 4x4
        nn.Residual(nn.Sequential(conv_bn(32, 32, 3, 1), conv_bn(32, 32, 3, 1))),
        conv_bn(32, 64, 3, 2),  # 2x2
        conv_bn(64, 128, 3, 2),  # 1x1
        nn.Residual(nn.Sequential(conv_bn(128, 128, 3, 1), conv_bn(128, 128, 3, 1))),
        nn.Flatten(),
        nn.Linear(128, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


def make_optimizer(name: str, params: list[ndl.Tensor], lr: float, weight_decay: float) -> ndl.optim.Optimizer:
    if name == "sgd":
        return ndl.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    return ndl.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the cifar-10-batches-py folder")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-3 for adam, 0.05 for sgd")
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--device", default="cpu", help="cpu or ref")
    parser.add_argument("--out", type=Path, default=Path("out/resnet9"))
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-steps", type=int, default=0, help="per epoch, train on at most N batches and test on N (quick checks)"
    )
    args = parser.parse_args()

    if not args.data.is_dir():
        print(f"{args.data} is not a folder: pass --data with the cifar-10-batches-py folder", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    device = ndl.ref() if args.device == "ref" else ndl.cpu()
    lr = args.lr if args.lr is not None else (0.05 if args.optimizer == "sgd" else 1e-3)
    ndl.manual_seed(args.seed)  # seeds NumPy's state too: initial weights and shuffling repeat

    augment = [ndl.data.RandomFlipHorizontal(0.5), ndl.data.RandomCrop(4)]
    train_set = ndl.data.CIFAR10Dataset(args.data, train=True, transforms=augment)
    test_set = ndl.data.CIFAR10Dataset(args.data, train=False)
    train_loader = ndl.data.DataLoader(train_set, args.batch_size, shuffle=True, num_workers=1, device=device)
    test_loader = ndl.data.DataLoader(test_set, 500, device=device)
    print(f"CIFAR-10 from {args.data}: {len(train_set)} training and {len(test_set)} test images")

    model = make_model()
    model.to(device)
    loss_fn = nn.SoftmaxLoss()
    optimizer = make_optimizer(args.optimizer, model.parameters(), lr, args.weight_decay)
    scheduler = ndl.optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(f"model: ResNet-9, {n_params:,} parameters, {args.optimizer} lr {lr} weight decay {args.weight_decay}")

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

    if plot_losses(log, args.out / "loss.png", "ResNet-9 on CIFAR-10"):
        print(f"loss curve: {args.out / 'loss.png'}")
    print(f"metrics: {log.path}; checkpoint: {checkpoint}")
    print(f"final test accuracy: {test_acc:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
