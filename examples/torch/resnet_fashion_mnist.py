"""A small ResNet on Fashion-MNIST, written as a PyTorch script: only the import line differs.

    python examples/torch/resnet_fashion_mnist.py --epochs 1

Residual blocks (conv-BN-ReLU-conv-BN plus a shortcut, 1x1 convolutions where the shape changes),
global average pooling, SGD with Nesterov momentum and weight decay, a cosine learning-rate schedule.
"""

import argparse
import time

import numpy as np
from datasets import fashion_mnist_splits

import needle.torch as torch
from needle.torch import nn
from needle.torch.nn import functional as F


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels_out)
        self.shortcut = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False), nn.BatchNorm2d(channels_out)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layers = nn.Sequential(
            ResidualBlock(16, 16), ResidualBlock(16, 32, stride=2), ResidualBlock(32, 64, stride=2)
        )
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def build_model() -> nn.Module:
    return ResNet()


def build_optimizer(model: nn.Module, steps: int = 1000):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)


def train_step(model, optimizer, batch, scheduler=None) -> torch.Tensor:
    images, labels = (torch.as_tensor(part) for part in batch)
    optimizer.zero_grad()
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)(model(images), labels)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss


def synthetic_batch(rng: np.random.Generator, batch_size: int = 8):
    """Random data in this script's shapes (``--synthetic``, and the tests)."""
    return rng.random((batch_size, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-steps", type=int, default=None, help="stop each epoch after this many steps")
    parser.add_argument("--synthetic", action="store_true", help="random data instead of Fashion-MNIST")
    args = parser.parse_args()

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train, test = (synthetic_batch(rng, 512), synthetic_batch(rng, 256)) if args.synthetic else fashion_mnist_splits()
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(train[0]), torch.from_numpy(train[1]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)
    steps = args.epochs * (args.max_steps or len(loader))
    model = build_model()
    optimizer, scheduler = build_optimizer(model, steps)
    print(f"{sum(p.numel() for p in model.parameters()):,} parameters")
    for epoch in range(args.epochs):
        start = time.perf_counter()
        for step, batch in enumerate(loader):
            if args.max_steps is not None and step >= args.max_steps:
                break
            loss = train_step(model, optimizer, batch, scheduler)
            if step % 20 == 0:
                rate = (step + 1) * args.batch_size / (time.perf_counter() - start)
                print(
                    f"epoch {epoch} step {step:4d} loss {loss.item():.4f} lr {scheduler.get_last_lr()[0]:.4f}"
                    f" ({rate:,.0f} images/s)"
                )
        model.eval()
        with torch.no_grad():
            x, y = torch.from_numpy(test[0][:2000]), torch.from_numpy(test[1][:2000])
            accuracy = (model(x).argmax(1) == y).float().mean().item()
        model.train()
        print(f"epoch {epoch}: test accuracy {accuracy:.2%} (first 2000 test images)")


if __name__ == "__main__":
    main()
