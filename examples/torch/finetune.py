"""Fine-tuning from a checkpoint, written as a PyTorch script: only the import line differs.

    python examples/torch/cnn_fashion_mnist.py --epochs 1      # or the same script under real PyTorch
    python examples/torch/finetune.py --checkpoint cnn_fashion_mnist.pt

Loads the CNN classifier that cnn_fashion_mnist.py saved (``torch.save`` here or in real PyTorch: the same
file format), freezes its convolutional features, replaces its last layer with a new head for a new task
(tops: T-shirt, pullover, coat, shirt vs everything else) and trains only the head.
"""

import argparse

import numpy as np
from cnn_fashion_mnist import build_model as build_classifier
from datasets import fashion_mnist_splits

import needle.torch as torch
from needle.torch import nn

TOPS = [0, 2, 4, 6]


def build_model(checkpoint: str = "cnn_fashion_mnist.pt") -> nn.Module:
    model = build_classifier()
    state = torch.load(checkpoint, map_location="cpu")
    model.load_state_dict(state.get("model", state))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model[-1] = nn.Linear(model[-1].in_features, 2)  # the new head trains; the rest stays as loaded
    return model


def build_optimizer(model: nn.Module):
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(trainable, lr=0.05, momentum=0.9), None


def train_step(model, optimizer, batch) -> torch.Tensor:
    images, labels = (torch.as_tensor(part) for part in batch)
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


def synthetic_batch(rng: np.random.Generator, batch_size: int = 16):
    """Random data in this script's shapes (the tests draw them here)."""
    return rng.random((batch_size, 1, 28, 28), dtype=np.float32), rng.integers(0, 2, batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="cnn_fashion_mnist.pt")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    torch.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = fashion_mnist_splits()
    relabel = np.isin(y_train, TOPS).astype(np.int64), np.isin(y_test, TOPS).astype(np.int64)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x_train), torch.from_numpy(relabel[0])),
        batch_size=args.batch_size,
        shuffle=True,
    )
    model = build_model(args.checkpoint)
    optimizer, _ = build_optimizer(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(
        f"loaded {args.checkpoint}; training {trainable} of {sum(p.numel() for p in model.parameters()):,} parameters"
    )
    step = 0
    while step < args.steps:
        for batch in loader:
            loss = train_step(model, optimizer, batch)
            step += 1
            if step % 50 == 0:
                print(f"step {step:4d} loss {loss.item():.4f}")
            if step >= args.steps:
                break
    model.eval()
    with torch.no_grad():
        predictions = model(torch.from_numpy(x_test)).argmax(1)
        accuracy = (predictions == torch.from_numpy(relabel[1])).float().mean().item()
    print(f"tops vs the rest: test accuracy {accuracy:.2%}")


if __name__ == "__main__":
    main()
