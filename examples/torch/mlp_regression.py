"""An MLP regression, written as a PyTorch script: only the import line differs.

    python examples/torch/mlp_regression.py

Fits y = sin(x0) + x1 * x2 - 0.5 * x3^2 + noise with an MLP (Linear-GELU-LayerNorm), MSE loss, SGD with
momentum, gradient clipping and a step learning-rate schedule; prints train and validation error.
"""

import argparse

import numpy as np

import needle.torch as torch
from needle.torch import nn


def make_data(rng: np.random.Generator, n: int):
    x = rng.standard_normal((n, 4)).astype(np.float32)
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] - 0.5 * x[:, 3] ** 2 + 0.05 * rng.standard_normal(n)
    return x, y.astype(np.float32)[:, None]


def build_model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 64), nn.GELU(), nn.LayerNorm(64), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))


def build_optimizer(model: nn.Module):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, step_size=200, gamma=0.5)


def train_step(model, optimizer, batch, scheduler=None) -> torch.Tensor:
    x, y = (torch.as_tensor(part) for part in batch)
    optimizer.zero_grad()
    loss = nn.MSELoss()(model(x), y)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss


def synthetic_batch(rng: np.random.Generator, batch_size: int = 32):
    """A batch of this script's data (the tests draw them here)."""
    return make_data(rng, batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x_train, y_train = make_data(rng, 4096)
    x_val, y_val = (torch.from_numpy(a) for a in make_data(rng, 1024))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)),
        batch_size=args.batch_size,
        shuffle=True,
    )
    model = build_model()
    optimizer, scheduler = build_optimizer(model)
    step = 0
    while step < args.steps:
        for batch in loader:
            loss = train_step(model, optimizer, batch, scheduler)
            step += 1
            if step % 100 == 0:
                with torch.no_grad():
                    val = nn.functional.mse_loss(model(x_val), y_val).item()
                print(
                    f"step {step:4d} train mse {loss.item():.4f} validation"
                    f" mse {val:.4f} lr {scheduler.get_last_lr()[0]:.4f}"
                )
            if step >= args.steps:
                break


if __name__ == "__main__":
    main()
