"""An LSTM language model on Penn Treebank, written as a PyTorch script: only the import line differs.

    python examples/torch/lstm_lm.py --epochs 1

Embedding, a two-layer LSTM with dropout, a linear decoder; truncated backpropagation through time with
the hidden state carried (detached) between chunks, gradient clipping, SGD; prints perplexity.
"""

import argparse
import math
import time

import numpy as np
from datasets import batchify, penn_treebank

import needle.torch as torch
from needle.torch import nn

SEQUENCE = 20


class LanguageModel(nn.Module):
    def __init__(self, vocabulary: int, embedding: int = 64, hidden: int = 128, layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.embed = nn.Embedding(vocabulary, embedding)
        self.lstm = nn.LSTM(embedding, hidden, num_layers=layers, dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden, vocabulary)

    def forward(self, tokens, state=None):
        out, state = self.lstm(self.drop(self.embed(tokens)), state)
        return self.decoder(self.drop(out)), state


VOCABULARY = 10000


def build_model(vocabulary: int = VOCABULARY) -> nn.Module:
    return LanguageModel(vocabulary)


def build_optimizer(model: nn.Module):
    return torch.optim.SGD(model.parameters(), lr=1.0), None


def train_step(model, optimizer, batch, state=None):
    """One chunk of truncated backpropagation through time: the loss and the state to carry on (detached:
    the next chunk's gradients stop here)."""
    inputs, targets = (torch.as_tensor(part) for part in batch)
    optimizer.zero_grad()
    logits, state = model(inputs, state)
    loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    optimizer.step()
    return loss, tuple(s.detach() for s in state)


def synthetic_batch(rng: np.random.Generator, batch_size: int = 4):
    """Random tokens in this script's shapes (the tests draw them here)."""
    tokens = rng.integers(0, VOCABULARY, (SEQUENCE + 1, batch_size))
    return tokens[:-1], tokens[1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--max-lines", type=int, default=None, help="read only this many lines of each file")
    args = parser.parse_args()

    torch.manual_seed(0)
    train_ids, test_ids, vocabulary = penn_treebank(args.max_lines)
    train, test = batchify(train_ids, args.batch_size), batchify(test_ids, 10)
    model = build_model(vocabulary)
    optimizer, _ = build_optimizer(model)
    print(
        f"vocabulary {vocabulary}, {len(train_ids):,} training tokens,"
        f" {sum(p.numel() for p in model.parameters()):,} parameters"
    )
    for epoch in range(args.epochs):
        model.train()
        state, start, total, count = None, time.perf_counter(), 0.0, 0
        for step, i in enumerate(range(0, train.shape[0] - 1, SEQUENCE)):
            if args.max_steps is not None and step >= args.max_steps:
                break
            chunk = slice(i, min(i + SEQUENCE, train.shape[0] - 1))
            batch = (train[chunk], train[chunk.start + 1 : chunk.stop + 1])
            loss, state = train_step(model, optimizer, batch, state)
            total, count = total + loss.item(), count + 1
            if step % 50 == 0:
                rate = (step + 1) * SEQUENCE * args.batch_size / (time.perf_counter() - start)
                print(
                    f"epoch {epoch} step {step:4d} loss {loss.item():.3f} perplexity"
                    f" {math.exp(total / count):8.1f} ({rate:,.0f} tokens/s)"
                )
        model.eval()
        with torch.no_grad():
            state, nll, tokens = None, 0.0, 0
            for i in range(0, min(test.shape[0] - 1, 2000), SEQUENCE):
                chunk = slice(i, min(i + SEQUENCE, test.shape[0] - 1))
                logits, state = model(torch.from_numpy(test[chunk]), state)
                targets = torch.from_numpy(test[chunk.start + 1 : chunk.stop + 1]).reshape(-1)
                nll += nn.functional.cross_entropy(logits.reshape(-1, vocabulary), targets, reduction="sum").item()
                tokens += targets.numel()
        print(f"epoch {epoch}: test perplexity {math.exp(nll / tokens):.1f}")


if __name__ == "__main__":
    main()
