"""Train a small decoder-only transformer language model on Penn Treebank text with Needle, from Python.

    python examples/python/train_transformer_lm.py                 # /work/shared/data/ptb (valid + test only)
    python examples/python/train_transformer_lm.py --data DIR      # a folder with ptb.train/valid/test.txt
    python examples/python/train_transformer_lm.py --resume        # continue from out/transformer_lm/checkpoint...
    python examples/python/train_transformer_lm.py --max-steps 5   # a quick smoke run
    python examples/python/generate.py                             # then sample text from the checkpoint

needle.nn.Transformer: word embeddings plus learned position embeddings, pre-LayerNorm blocks with causal
multi-head self-attention and a GELU MLP, a final LayerNorm and a Linear head over the vocabulary. Each
batch holds `batch-size` windows of `seq-len` consecutive words; the model predicts every next word of its
window. AdamW with a linear warm-up then a cosine decay, per step. With the full corpus it trains on train,
evaluates on valid each epoch and reports test perplexity; with only ptb.valid.txt and ptb.test.txt it
trains on valid and evaluates on test, and says so. At the end the test perplexity is printed next to a
unigram model's (word counts of the training text, add-one smoothed). The same training from C++ is
examples/cpp/train_transformer_lm.cpp.
"""

from __future__ import annotations

import argparse
import json
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


def batch_first(batches: ndl.NDArray, i: int, seq_len: int, device: ndl.Device) -> tuple[ndl.Tensor, ndl.Tensor]:
    """get_batch's (seq, batch) window turned into the transformer's (batch, seq) input, and the targets in
    the same order as the logits reshaped to (batch * seq, vocab)."""
    x, y = ndl.data.get_batch(batches, i, seq_len)
    length, batch = x.shape
    inputs = np.ascontiguousarray(x.numpy().T)
    targets = np.ascontiguousarray(y.numpy().reshape(length, batch).T.reshape(-1))
    return (
        ndl.Tensor(inputs, device=device, requires_grad=False),
        ndl.Tensor(targets, device=device, requires_grad=False),
    )


def evaluate(model: nn.Module, ids: list[int], seq_len: int, vocab_size: int, device: ndl.Device) -> float:
    """Mean cross entropy per token over ``ids`` cut into windows of ``seq_len`` words (each window starts
    without context, as in training)."""
    model.eval()
    batches = ndl.data.batchify(ids, EVAL_BATCH_SIZE)
    loss_fn = nn.SoftmaxLoss()
    total, tokens = 0.0, 0
    with ndl.no_grad():
        for i in range(0, batches.shape[0] - 1, seq_len):
            x, y = batch_first(batches, i, seq_len, device)
            logits = model(x).reshape((y.shape[0], vocab_size))
            total += loss_fn(logits, y).item() * y.shape[0]
            tokens += y.shape[0]
    return total / max(tokens, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with ptb.{train,valid,test}.txt")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", "--bptt", type=int, default=64, dest="seq_len", help="context length")
    parser.add_argument("--lr", type=float, default=2e-3, help="AdamW's peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, default=100, help="warm-up steps (at most a tenth of all steps)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--mlp", type=int, default=512, help="width of each block's MLP")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--clip", type=float, default=1.0, help="gradient norm limit")
    parser.add_argument("--max-steps", type=int, default=0, help="at most this many batches per epoch (0: all)")
    parser.add_argument("--device", default="cpu", help="cpu or ref")
    parser.add_argument("--out", type=Path, default=Path("out/transformer_lm"))
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
    train_batches = ndl.data.batchify(splits.train, args.batch_size)
    positions = list(range(0, train_batches.shape[0] - 1, args.seq_len))
    if args.max_steps > 0:
        positions = positions[: args.max_steps]

    vocab = splits.vocab_size
    model = nn.Transformer(
        vocab, args.dim, args.layers, args.heads, args.mlp, args.seq_len, args.dropout, device=device
    )
    loss_fn = nn.SoftmaxLoss()
    optimizer = ndl.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    total_steps = args.epochs * len(positions)
    warmup = max(1, min(args.warmup, total_steps // 10))
    cosine = ndl.optim.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup, 1))
    scheduler = ndl.optim.LinearWarmup(optimizer, warmup, start_factor=0.1, then=cosine)
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(
        f"model: Transformer(vocab {vocab}, dim {args.dim}, {args.layers} layers, {args.heads} heads, "
        f"MLP {args.mlp}, context {args.seq_len}, dropout {args.dropout}), {n_params:,} parameters; "
        f"AdamW lr {args.lr} wd {args.weight_decay}, {warmup} warm-up steps then cosine over {total_steps}, "
        f"clip {args.clip}, batch {args.batch_size}"
    )

    checkpoint = args.out / "checkpoint.safetensors"
    # What generate.py needs to rebuild the model around the checkpoint and to map ids back to words.
    config = {"vocab_size": vocab, "dim": args.dim, "layers": args.layers, "heads": args.heads, "mlp": args.mlp}
    config |= {"seq_len": args.seq_len, "data": str(args.data.resolve())}
    (args.out / "model.json").write_text(json.dumps(config, indent=2) + "\n")
    fields = ["epoch", "train_loss", "train_ppl", "eval_loss", "eval_ppl", "lr", "seconds", "tokens_per_s"]
    log = MetricsLog(args.out / "metrics.csv", fields)
    first_epoch = 0
    if args.resume and checkpoint.exists():
        first_epoch, restored = load_checkpoint(model, optimizer, scheduler, checkpoint)
        if not restored:
            for _ in range(first_epoch * len(positions)):
                scheduler.step()
        print(f"resumed from {checkpoint} after epoch {first_epoch}")

    eval_loss = math.nan
    for epoch in range(first_epoch, args.epochs):
        model.train()
        start = time.perf_counter()
        progress = Progress(positions, len(positions), f"epoch {epoch + 1}/{args.epochs}", "tokens")
        for i in progress:
            x, y = batch_first(train_batches, i, args.seq_len, device)
            logits = model(x).reshape((y.shape[0], vocab))
            loss = loss_fn(logits, y)
            optimizer.reset_grad()
            loss.backward()
            ndl.optim.clip_grad_norm(model.parameters(), args.clip)
            optimizer.step()
            scheduler.step()
            progress.update(loss.item(), y.shape[0])
        seconds = time.perf_counter() - start
        eval_loss = evaluate(model, splits.eval, args.seq_len, vocab, device)
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
                "lr": optimizer.lr,  # at the end of the epoch
                "seconds": round(seconds, 2),
                "tokens_per_s": round(progress.samples / seconds, 1),
            }
        )
        save_checkpoint(model, optimizer, scheduler, checkpoint, epoch + 1)

    if plot_losses(log, args.out / "loss.png", "Transformer on PTB", ("train_loss", "eval_loss")):
        print(f"loss curve: {args.out / 'loss.png'}")
    print(f"metrics: {log.path}; checkpoint: {checkpoint}")
    # The per-epoch evaluation already ran on the test text when there is no separate validation text.
    same_text = splits.eval is splits.test
    if same_text and not math.isnan(eval_loss):
        test_loss = eval_loss
    else:
        test_loss = evaluate(model, splits.test, args.seq_len, vocab, device)
    test_ppl = math.exp(test_loss)
    unigram = unigram_perplexity(splits.train, splits.test, splits.vocab_size)
    # Lower perplexity is better: say by what factor the model beats (or trails) the baseline.
    factor, word = (unigram / test_ppl, "lower") if test_ppl <= unigram else (test_ppl / unigram, "higher")
    print(f"test perplexity: {test_ppl:.1f} (unigram baseline {unigram:.1f}: {factor:.2f}x {word})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
