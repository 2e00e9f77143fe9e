"""A CNN classifier on Fashion-MNIST, written as a PyTorch script: only the import line differs.

    python examples/torch/cnn_fashion_mnist.py --epochs 1

Two conv-BatchNorm-ReLU-max-pool blocks, two linear layers, Adam, cross entropy; prints progress and
test accuracy and saves a checkpoint (``torch.save``) that real PyTorch can load.
"""

import argparse
import time

import numpy as np
from datasets import fashion_mnist_splits

import needle.torch as torch
from needle.torch import nn


def build_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(128, 10),
    )


def build_optimizer(model: nn.Module):
    return torch.optim.Adam(model.parameters(), lr=1e-3), None


def train_step(model, optimizer, batch) -> torch.Tensor:
    images, labels = (torch.as_tensor(part) for part in batch)
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def synthetic_batch(rng: np.random.Generator, batch_size: int = 16):
    """Random data in this script's shapes (``--synthetic``, and the tests)."""
    images = rng.random((batch_size, 1, 28, 28), dtype=np.float32)
    return images, rng.integers(0, 10, batch_size)


def evaluate(model, loader) -> float:
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
            total += labels.numel()
    model.train()
    return correct / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--max-steps", type=int, default=None, help="stop each epoch after this many steps")
    parser.add_argument("--synthetic", action="store_true", help="random data instead of Fashion-MNIST")
    parser.add_argument("--checkpoint", default="cnn_fashion_mnist.pt")
    args = parser.parse_args()

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if args.synthetic:
        train = synthetic_batch(rng, 512)
        test = synthetic_batch(rng, 256)
    else:
        train, test = fashion_mnist_splits()
    train_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(train[0]), torch.from_numpy(train[1])),
        batch_size=args.batch_size,
        shuffle=True,
    )
    test_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(test[0]), torch.from_numpy(test[1])), batch_size=512
    )
    model = build_model()
    optimizer, _ = build_optimizer(model)
    for epoch in range(args.epochs):
        start, seen, loss_sum = time.perf_counter(), 0, 0.0
        for step, (images, labels) in enumerate(train_loader):
            if args.max_steps is not None and step >= args.max_steps:
                break
            loss = train_step(model, optimizer, (images, labels))
            seen += len(labels)
            loss_sum += loss.item() * len(labels)
            if step % 50 == 0:
                print(
                    f"epoch {epoch} step {step:4d} loss {loss.item():.4f} ({seen / (time.perf_counter() - start):,.0f}"
                    f" images/s)"
                )
        accuracy = evaluate(model, test_loader)
        print(f"epoch {epoch}: train loss {loss_sum / max(seen, 1):.4f}, test accuracy {accuracy:.2%}")
    torch.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epochs": args.epochs}, args.checkpoint
    )
    print(f"saved {args.checkpoint}")


if __name__ == "__main__":
    main()
