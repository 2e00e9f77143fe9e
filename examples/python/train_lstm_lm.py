"""Train a 2-layer LSTM language model on Penn Treebank text with Needle, from Python.

    python examples/python/train_lstm_lm.py                    # /work/shared/data/ptb (valid + test only)
    python examples/python/train_lstm_lm.py --data DIR         # a folder with ptb.train/valid/test.txt
    python examples/python/train_lstm_lm.py --resume           # continue from out/lstm_lm/checkpoint.safetensors
    python examples/python/train_lstm_lm.py --max-steps 5      # a quick smoke run

Embedding -> dropout -> LSTM (2 layers) -> dropout -> Linear decoder over the vocabulary, trained with
truncated backpropagation through time: the hidden state is carried across batches (detached, so gradients
stop at the batch boundary), gradients are clipped to a global norm, Adam with a cosine schedule over the
epochs. With the full corpus it trains on train, evaluates on valid each epoch and reports test perplexity;
with only ptb.valid.txt and ptb.test.txt it trains on valid and evaluates on test, and says so. At the end
the test perplexity is printed next to a unigram model's (word counts of the training text, add-one
smoothed). The same training from C++ is examples/cpp/train_lstm_lm.cpp.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from training_utils import (
    LanguageSplits,
    MetricsLog,
    Progress,
    load_checkpoint,
    plot_losses,
    save_checkpoint,
    unigram_perplexity,
)

import needle as ndl
from needle import nn

DEFAULT_DATA = Path("/work/shared/data/ptb")
EVAL_BATCH_SIZE = 10


class LSTMLanguageModel(nn.Module):
    """Word ids (seq_len, batch) -> logits (seq_len * batch, vocab) and the final (h, c)."""

    def __init__(self, vocab_size: int, embed: int, hidden: int, layers: int, dropout: float, device: ndl.Device):
        super().__init__()
        self.hidden = hidden
        self.embedding = nn.Embedding(vocab_size, embed, device=device)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(embed, hidden, layers, device=device)
        self.decoder = nn.Linear(hidden, vocab_size, device=device)

    def forward(
        self, x: ndl.Tensor, state: tuple[ndl.Tensor, ndl.Tensor] | None = None
    ) -> tuple[ndl.Tensor, tuple[ndl.Tensor, ndl.Tensor]]:
        seq_len, batch = x.shape
        output, state = self.lstm(self.dropout(self.embedding(x)), state)
        logits = self.decoder(self.dropout(output).reshape((seq_len * batch, self.hidden)))
        return logits, state


def detach(state: tuple[ndl.Tensor, ndl.Tensor]) -> tuple[ndl.Tensor, ndl.Tensor]:
    """The state's values without their history: backpropagation stops at the batch boundary."""
    return state[0].detach(), state[1].detach()


def evaluate(model: LSTMLanguageModel, ids: list[int], bptt: int, device: ndl.Device) -> float:
    """Mean cross entropy per token over ``ids``, the hidden state carried through the whole text."""
    model.eval()
    batches = ndl.data.batchify(ids, EVAL_BATCH_SIZE, device=device)
    loss_fn = nn.SoftmaxLoss()
    total, tokens = 0.0, 0
    state = None
    with ndl.no_grad():
        for i in range(0, batches.shape[0] - 1, bptt):
            x, y = ndl.data.get_batch(batches, i, bptt, device=device)
            logits, state = model(x, state)
            total += loss_fn(logits, y).item() * y.shape[0]
            tokens += y.shape[0]
    return total / max(tokens, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with ptb.{train,valid,test}.txt")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seq-len", "--bptt", type=int, default=35, dest="seq_len", help="truncated BPTT length")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam's learning rate")
    parser.add_argument("--embed", type=int, default=200)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--clip", type=float, default=0.5, help="gradient norm limit")
    parser.add_argument("--max-steps", type=int, default=0, help="at most this many batches per epoch (0: all)")
    parser.add_argument("--device", default="cpu", help="cpu or ref")
    parser.add_argument("--out", type=Path, default=Path("out/lstm_lm"))
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    device = ndl.ref() if args.device == "ref" else ndl.cpu()
    ndl.manual_seed(args.seed)  # seeds NumPy's state too: initial weights and dropout repeat

    splits = LanguageSplits(args.data)
    print(f"PTB from {args.data}: {splits.describe()}")
    if splits.note:
        print(splits.note)
    train_batches = ndl.data.batchify(splits.train, args.batch_size, device=device)
    positions = list(range(0, train_batches.shape[0] - 1, args.seq_len))
    if args.max_steps > 0:
        positions = positions[: args.max_steps]

    model = LSTMLanguageModel(splits.vocab_size, args.embed, args.hidden, args.layers, args.dropout, device)
    loss_fn = nn.SoftmaxLoss()
    optimizer = ndl.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = ndl.optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(
        f"model: Embedding({splits.vocab_size}, {args.embed}) -> LSTM({args.embed}, {args.hidden}) x {args.layers} "
        f"-> Linear({args.hidden}, {splits.vocab_size}), dropout {args.dropout}, {n_params:,} parameters; "
        f"Adam lr {args.lr} (cosine), clip {args.clip}, batch {args.batch_size}, bptt {args.seq_len}"
    )

    checkpoint = args.out / "checkpoint.safetensors"
    fields = ["epoch", "train_loss", "train_ppl", "eval_loss", "eval_ppl", "lr", "seconds", "tokens_per_s"]
    log = MetricsLog(args.out / "metrics.csv", fields)
    first_epoch = 0
    if args.resume and checkpoint.exists():
        first_epoch, restored = load_checkpoint(model, optimizer, scheduler, checkpoint)
        if not restored:
            for _ in range(first_epoch):
                scheduler.step()
        print(f"resumed from {checkpoint} after epoch {first_epoch}")

    eval_loss = math.nan
    for epoch in range(first_epoch, args.epochs):
        model.train()
        lr = optimizer.lr
        start = time.perf_counter()
        progress = Progress(positions, len(positions), f"epoch {epoch + 1}/{args.epochs}", "tokens")
        state = None
        for i in progress:
            x, y = ndl.data.get_batch(train_batches, i, args.seq_len, device=device)
            logits, state = model(x, state)
            loss = loss_fn(logits, y)
            optimizer.reset_grad()
            loss.backward()
            ndl.optim.clip_grad_norm(model.parameters(), args.clip)
            optimizer.step()
            state = detach(state)
            progress.update(loss.item(), y.shape[0])
        scheduler.step()
        seconds = time.perf_counter() - start
        eval_loss = evaluate(model, splits.eval, args.seq_len, device)
        print(
            f"epoch {epoch + 1}: train loss {progress.mean_loss:.4f} (ppl {math.exp(progress.mean_loss):.1f}) | "
            f"{splits.eval_name} loss {eval_loss:.4f} ppl {math.exp(eval_loss):.1f} | {seconds:.1f} s, "
            f"{progress.samples / seconds:,.0f} tokens/s"
        )
        log.append(
            {
                "epoch": epoch + 1,
                "train_loss": round(progress.mean_loss, 6),
                "train_ppl": round(math.exp(progress.mean_loss), 3),
                "eval_loss": round(eval_loss, 6),
                "eval_ppl": round(math.exp(eval_loss), 3),
                "lr": lr,
                "seconds": round(seconds, 2),
                "tokens_per_s": round(progress.samples / seconds, 1),
            }
        )
        save_checkpoint(model, optimizer, scheduler, checkpoint, epoch + 1)

    if plot_losses(log, args.out / "loss.png", "2-layer LSTM on PTB", ("train_loss", "eval_loss")):
        print(f"loss curve: {args.out / 'loss.png'}")
    print(f"metrics: {log.path}; checkpoint: {checkpoint}")
    # The per-epoch evaluation already ran on the test text when there is no separate validation text.
    same_text = splits.eval is splits.test
    if same_text and not math.isnan(eval_loss):
        test_loss = eval_loss
    else:
        test_loss = evaluate(model, splits.test, args.seq_len, device)
    test_ppl = math.exp(test_loss)
    unigram = unigram_perplexity(splits.train, splits.test, splits.vocab_size)
    # Lower perplexity is better: say by what factor the model beats (or trails) the baseline.
    factor, word = (unigram / test_ppl, "lower") if test_ppl <= unigram else (test_ppl / unigram, "higher")
    print(f"test perplexity: {test_ppl:.1f} (unigram baseline {unigram:.1f}: {factor:.2f}x {word})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
