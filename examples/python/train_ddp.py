"""Data-parallel training with needle.distributed: the README's MLP on Fashion-MNIST, or the transformer
language model on Penn Treebank, on several processes.

    mpirun -np 2 python examples/python/train_ddp.py --model mlp            # as root: add --allow-run-as-root
    mpirun -np 2 python examples/python/train_ddp.py --model transformer
    python examples/python/train_ddp.py --model mlp                         # one process works too

Every rank builds the same model (DistributedDataParallel copies rank 0's weights to all of them) and trains
on its own share of each global batch: a DistributedSampler's shard of the images, or its columns of the
token stream. Backward averages the gradients over the ranks, so the ranks stay identical and the result is
that of one process training on the whole global batch (same --batch-size, same learning rate). Rank 0
prints progress, evaluates and saves the checkpoint (out/ddp_<model>/checkpoint.safetensors, --resume
continues on every rank). Each rank writes out/ddp_<model>/rank<r>.log: its step time and how long it
waited for the gradient all-reduce (a rank that waits much less than the others is the slow one: the
others wait for it). On a small machine give mpirun `--oversubscribe --bind-to none` and each rank one
thread (--threads 1).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

import numpy as np
from train_mlp import make_model
from train_transformer_lm import batch_first
from train_transformer_lm import evaluate as evaluate_lm
from training_utils import LanguageSplits, Progress, evaluate, find_idx_files, load_checkpoint, save_checkpoint

import needle as ndl
import needle.distributed as dist
from needle import nn


class RankLog:
    """Per-rank timing: each step's wall time and the part of it spent waiting for the all-reduce at the
    end of backward, summarized every `every` steps into this rank's log file."""

    def __init__(self, path: Path, model: dist.DistributedDataParallel, every: int) -> None:
        self._file: TextIO = path.open("a")
        self._model = model
        self._every = every
        self._steps, self._seconds, self._wait = 0, 0.0, 0.0
        self.epoch_seconds, self.epoch_wait = 0.0, 0.0

    def step(self, seconds: float) -> None:
        stats = self._model.comm_stats()
        self._steps += 1
        self._seconds += seconds
        self._wait += stats["last_wait_seconds"]
        self.epoch_seconds += seconds
        self.epoch_wait += stats["last_wait_seconds"]
        if self._steps == self._every:
            self._file.write(
                f"{time.strftime('%H:%M:%S')} rank {dist.get_rank()}: {1e3 * self._seconds / self._steps:.1f} ms/step, "
                f"waiting for the all-reduce {1e3 * self._wait / self._steps:.1f} ms/step, "
                f"{stats['hidden_fraction']:.0%} of all-reduce time hidden behind backward\n"
            )
            self._file.flush()
            self._steps, self._seconds, self._wait = 0, 0.0, 0.0

    def end_epoch(self) -> str:
        text = (
            f"rank {dist.get_rank()}: {self.epoch_seconds:.1f} s of steps, "
            f"{self.epoch_wait:.1f} s waiting for the all-reduce"
        )
        self.epoch_seconds, self.epoch_wait = 0.0, 0.0
        return text


def report_ranks(log: RankLog) -> None:
    """Rank 0 prints every rank's epoch timing (gathered), so a straggler shows."""
    line = log.end_epoch().encode().ljust(160)[:160]
    lines = dist.all_gather(ndl.NDArray(np.frombuffer(line, dtype=np.uint8).copy())).numpy()
    if dist.get_rank() == 0:
        for row in lines:
            print("  " + row.tobytes().decode().rstrip(), flush=True)


def global_mean(total: float, count: float) -> float:
    """Sum of `total` and of `count` over the ranks, divided."""
    both = ndl.NDArray(np.array([total, count], dtype=np.float64))
    dist.all_reduce(both)
    values = both.numpy()
    return float(values[0] / max(values[1], 1.0))


def wrap(
    local: nn.Module,
    optimizer: ndl.optim.Optimizer,
    scheduler: ndl.optim.LRScheduler,
    args: argparse.Namespace,
    out: Path,
) -> tuple[dist.DistributedDataParallel, int, RankLog]:
    """Resumes `local` and its optimizer from the checkpoint (every rank reads it) with --resume, wraps it for
    data parallelism, and opens this rank's log; returns the wrapped model, the first epoch and the log."""
    checkpoint = out / "checkpoint.safetensors"
    first_epoch = 0
    if args.resume and checkpoint.exists():
        first_epoch = load_checkpoint(local, optimizer, scheduler, checkpoint)[0]
    model = dist.DistributedDataParallel(local)
    return model, first_epoch, RankLog(out / f"rank{dist.get_rank()}.log", model, args.log_every)


def on_rank0(compute: Callable[[], list[float]], count: int) -> list[float]:
    """`compute()` (evaluation, checkpoint) on rank 0 only, its results sent to every rank: the others wait
    here meanwhile."""
    values = ndl.NDArray(np.array(compute() if dist.get_rank() == 0 else [0.0] * count, dtype=np.float64))
    dist.broadcast(values)
    return [float(v) for v in values.numpy()]


def timed_steps(items: Iterable[object], log: RankLog) -> Iterable[object]:
    """Yields the items and logs the time from one to the next (the training step between)."""
    start = time.perf_counter()
    for item in items:
        yield item
        now = time.perf_counter()
        log.step(now - start)
        start = now


def run_mlp(args: argparse.Namespace, out: Path, device: ndl.Device) -> float:
    rank, size = dist.get_rank(), dist.get_world_size()
    train_set = ndl.data.MNISTDataset(*map(str, find_idx_files(args.data, "train")))
    test_set = ndl.data.MNISTDataset(*map(str, find_idx_files(args.data, "t10k")))
    sampler = dist.DistributedSampler(train_set, shuffle=True, seed=args.seed)
    per_rank = args.batch_size // size
    loader = ndl.data.DataLoader(train_set, per_rank, sampler=sampler, num_workers=1, device=device)
    local = make_model(args.hidden, args.dropout)
    local.to(device)
    optimizer = ndl.optim.Adam(local.parameters(), lr=args.lr)
    scheduler = ndl.optim.CosineAnnealingLR(optimizer, T_max=args.epochs)
    model, first_epoch, log = wrap(local, optimizer, scheduler, args, out)
    loss_fn = nn.SoftmaxLoss()
    if rank == 0:
        print(f"{size} ranks x batch {per_rank} = global batch {per_rank * size}; {len(loader)} steps per epoch")
    accuracy = 0.0
    for epoch in range(first_epoch, args.epochs):
        sampler.set_epoch(epoch)
        model.train()
        steps = len(loader) if args.max_steps <= 0 else min(args.max_steps, len(loader))
        items = timed_steps(itertools.islice(loader, steps), log)
        bar = Progress(items, steps, f"epoch {epoch + 1}/{args.epochs}", "images") if rank == 0 else None
        loss_sum, seen = 0.0, 0
        for images, labels in bar or items:  # type: ignore[misc]
            loss = loss_fn(model(images), labels)
            optimizer.reset_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * labels.shape[0]
            seen += labels.shape[0]
            if bar is not None:
                bar.update(loss.item(), labels.shape[0])
        scheduler.step()
        train_loss = global_mean(loss_sum, seen)

        def evaluate_and_save(finished: int = epoch + 1) -> list[float]:
            test_loader = ndl.data.DataLoader(test_set, 1000, device=device)
            results = evaluate(local, test_loader, loss_fn)
            save_checkpoint(local, optimizer, scheduler, out / "checkpoint.safetensors", finished)
            return list(results)

        test_loss, accuracy = on_rank0(evaluate_and_save, 2)
        if rank == 0:
            print(f"epoch {epoch + 1}: train loss {train_loss:.4f} | test loss {test_loss:.4f} acc {accuracy:.2%}")
        report_ranks(log)
    if rank == 0:
        print(f"final test accuracy: {accuracy:.2%}")
    return accuracy


def run_transformer(args: argparse.Namespace, out: Path, device: ndl.Device) -> float:
    rank, size = dist.get_rank(), dist.get_world_size()
    splits = LanguageSplits(args.lm_data)
    per_rank = args.lm_batch_size // size
    # The stream cut into global-batch columns; each rank trains on its own columns.
    stream = ndl.data.batchify(splits.train, per_rank * size).numpy()
    mine = ndl.NDArray(np.ascontiguousarray(stream[:, rank * per_rank : (rank + 1) * per_rank]))
    positions = list(range(0, mine.shape[0] - 1, args.seq_len))
    if args.max_steps > 0:
        positions = positions[: args.max_steps]
    vocab = splits.vocab_size
    local = nn.Transformer(vocab, 128, 2, 4, 512, args.seq_len, 0.1, device=device)
    optimizer = ndl.optim.AdamW(local.parameters(), lr=2e-3, weight_decay=0.1)
    total_steps = args.lm_epochs * len(positions)
    warmup = max(1, min(100, total_steps // 10))
    cosine = ndl.optim.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup, 1))
    scheduler = ndl.optim.LinearWarmup(optimizer, warmup, start_factor=0.1, then=cosine)
    model, first_epoch, log = wrap(local, optimizer, scheduler, args, out)
    loss_fn = nn.SoftmaxLoss()
    if rank == 0:
        print(f"PTB: {splits.describe()}; {size} ranks x batch {per_rank}; {len(positions)} steps per epoch")
    perplexity = float("nan")
    for epoch in range(first_epoch, args.lm_epochs):
        model.train()
        items = timed_steps(positions, log)
        bar = Progress(items, len(positions), f"epoch {epoch + 1}/{args.lm_epochs}", "tokens") if rank == 0 else None
        loss_sum, seen = 0.0, 0
        for i in bar or items:
            x, y = batch_first(mine, int(i), args.seq_len, device)  # type: ignore[call-overload]
            loss = loss_fn(model(x).reshape((y.shape[0], vocab)), y)
            optimizer.reset_grad()
            loss.backward()
            ndl.optim.clip_grad_norm(local.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * y.shape[0]
            seen += y.shape[0]
            if bar is not None:
                bar.update(loss.item(), y.shape[0])
        train_loss = global_mean(loss_sum, seen)

        def evaluate_and_save(finished: int = epoch + 1) -> list[float]:
            test_loss = evaluate_lm(local, splits.test, args.seq_len, vocab, device)
            save_checkpoint(local, optimizer, scheduler, out / "checkpoint.safetensors", finished)
            return [test_loss]

        perplexity = float(np.exp(on_rank0(evaluate_and_save, 1)[0]))
        if rank == 0:
            print(f"epoch {epoch + 1}: train ppl {np.exp(train_loss):.1f} | test ppl {perplexity:.1f}")
        report_ranks(log)
    if rank == 0:
        print(f"final test perplexity: {perplexity:.1f}")
    return perplexity


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("mlp", "transformer"), default="mlp")
    parser.add_argument("--data", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--lm-data", type=Path, default=Path("/work/shared/data/ptb"))
    parser.add_argument("--epochs", type=int, default=10, help="MLP epochs")
    parser.add_argument("--lm-epochs", type=int, default=6, help="transformer epochs")
    parser.add_argument("--batch-size", type=int, default=128, help="MLP global batch (split over the ranks)")
    parser.add_argument("--lm-batch-size", type=int, default=8, help="transformer global batch")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--max-steps", type=int, default=0, help="at most this many steps per epoch (0: all)")
    parser.add_argument("--threads", type=int, default=0, help="threads per rank (0: Needle's default)")
    parser.add_argument("--log-every", type=int, default=50, help="steps per line of the rank logs")
    parser.add_argument("--device", default="cpu", help="cpu or ref")
    parser.add_argument("--out", type=Path, default=None, help="default: out/ddp_<model>")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    dist.init()
    if args.threads > 0:
        ndl.set_num_threads(args.threads)
    if args.model == "mlp" and not args.data.is_dir():
        print(f"{args.data} does not exist: install Debian's dataset-fashion-mnist or pass --data DIR", file=sys.stderr)
        return 2
    out = args.out or Path(f"out/ddp_{args.model}")
    out.mkdir(parents=True, exist_ok=True)
    ndl.manual_seed(args.seed + dist.get_rank())  # ranks differ in dropout; weights come from rank 0
    device = ndl.ref() if args.device == "ref" else ndl.cpu()
    if args.model == "mlp":
        run_mlp(args, out, device)
    else:
        run_transformer(args, out, device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
