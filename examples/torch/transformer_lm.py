"""A transformer language model on Penn Treebank, written as a PyTorch script: only the import line differs.

    python examples/torch/transformer_lm.py --epochs 1

Token and learned position embeddings, a causal TransformerEncoder (pre-norm, GELU), weight tying with the
output layer, AdamW with a linear warm-up, gradient clipping; prints perplexity.
"""

import argparse
import math
import time

import numpy as np
from datasets import penn_treebank

import needle.torch as torch
from needle.torch import nn

CONTEXT = 32
VOCABULARY = 10000


class TransformerLM(nn.Module):
    def __init__(self, vocabulary: int, width: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.tokens = nn.Embedding(vocabulary, width)
        self.positions = nn.Embedding(CONTEXT, width)
        layer = nn.TransformerEncoderLayer(
            width, heads, 4 * width, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocabulary, bias=False)
        self.head.weight = self.tokens.weight  # weight tying
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(CONTEXT), persistent=False)

    def forward(self, tokens):
        length = tokens.shape[1]
        x = self.tokens(tokens) + self.positions(torch.arange(length))
        x = self.encoder(x, mask=self.causal[:length, :length])
        return self.head(self.norm(x))


def build_model(vocabulary: int = VOCABULARY) -> nn.Module:
    return TransformerLM(vocabulary)


def build_optimizer(model: nn.Module, warmup: int = 100):
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.98), weight_decay=0.01)
    return optimizer, torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)


def train_step(model, optimizer, batch, scheduler=None) -> torch.Tensor:
    inputs, targets = (torch.as_tensor(part) for part in batch)
    optimizer.zero_grad()
    logits = model(inputs)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return loss


def synthetic_batch(rng: np.random.Generator, batch_size: int = 4):
    """Random tokens in this script's shapes (the tests draw them here)."""
    tokens = rng.integers(0, VOCABULARY, (batch_size, CONTEXT + 1))
    return tokens[:, :-1], tokens[:, 1:]


def windows(ids: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Random CONTEXT-token windows and their next tokens."""
    starts = rng.integers(0, len(ids) - CONTEXT - 1, batch_size)
    chunks = np.stack([ids[s : s + CONTEXT + 1] for s in starts])
    return chunks[:, :-1], chunks[:, 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--max-lines", type=int, default=None, help="read only this many lines of each file")
    args = parser.parse_args()

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    train_ids, test_ids, vocabulary = penn_treebank(args.max_lines)
    model = build_model(vocabulary)
    optimizer, scheduler = build_optimizer(model)
    steps = args.max_steps or len(train_ids) // (args.batch_size * CONTEXT)
    print(
        f"vocabulary {vocabulary}, {sum(p.numel() for p in model.parameters()):,} parameters, {steps} steps per epoch"
    )
    for epoch in range(args.epochs):
        model.train()
        start, total = time.perf_counter(), 0.0
        for step in range(steps):
            loss = train_step(model, optimizer, windows(train_ids, args.batch_size, rng), scheduler)
            total += loss.item()
            if step % 50 == 0:
                rate = (step + 1) * args.batch_size * CONTEXT / (time.perf_counter() - start)
                print(
                    f"epoch {epoch} step {step:4d} loss {loss.item():.3f} lr {scheduler.get_last_lr()[0]:.5f}"
                    f" ({rate:,.0f} tokens/s)"
                )
        model.eval()
        with torch.no_grad():
            nll, count = 0.0, 0
            for i in range(0, min(len(test_ids) - CONTEXT - 1, 20000), CONTEXT):
                chunk = torch.from_numpy(test_ids[i : i + CONTEXT + 1][None])
                logits = model(chunk[:, :-1])
                nll += nn.functional.cross_entropy(
                    logits.reshape(-1, vocabulary), chunk[:, 1:].reshape(-1), reduction="sum"
                ).item()
                count += CONTEXT
        print(f"epoch {epoch}: mean train loss {total / steps:.3f}, test perplexity {math.exp(nll / count):.1f}")


if __name__ == "__main__":
    main()
