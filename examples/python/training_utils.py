"""What every training example shares: a progress bar, per-epoch metrics in CSV, checkpoints that resume,
and an optional loss-curve picture. Plain Python around Needle; no math here."""

from __future__ import annotations

import csv
import itertools
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

import needle as ndl

T = TypeVar("T")


class Progress:
    """A one-line progress bar with running loss and speed; plain periodic lines when not on a terminal."""

    def __init__(self, items: Iterable[T], total: int, label: str, unit: str = "samples") -> None:
        self._items = items
        self._total = max(total, 1)
        self._label = label
        self._unit = unit
        self._tty = sys.stdout.isatty()
        self.loss_sum = 0.0
        self.count = 0
        self.samples = 0

    def update(self, loss: float, samples: int) -> None:
        self.loss_sum += loss * samples
        self.samples += samples
        self.count += 1

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.samples, 1)

    def __iter__(self) -> Iterator[T]:
        start = time.perf_counter()
        last_line = -1
        for i, item in enumerate(self._items):
            yield item
            elapsed = time.perf_counter() - start
            speed = self.samples / elapsed if elapsed > 0 else 0.0
            done = i + 1
            width = 30
            filled = int(width * done / self._total)
            text = (
                f"{self._label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self._total} "
                f"loss {self.mean_loss:.4f} {speed:,.0f} {self._unit}/s"
            )
            if self._tty:
                print("\r" + text, end="", flush=True)
            elif (10 * done) // self._total != last_line:  # about ten lines per epoch in logs
                last_line = (10 * done) // self._total
                print(text, flush=True)
        if self._tty:
            print()


class MetricsLog:
    """Appends one row per epoch to a CSV file (kept across resumed runs)."""

    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path = path
        self.fields = fields
        if not path.exists():
            with path.open("w", newline="") as f:
                csv.writer(f).writerow(fields)

    def append(self, row: dict[str, float | int]) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row[k] for k in self.fields])

    def rows(self) -> list[dict[str, str]]:
        with self.path.open() as f:
            return list(csv.DictReader(f))


#: What a checkpoint holds: the model's state under "model.", the optimizer's under "optim." and the
#: learning-rate schedule's under "scheduler." (so a resumed run continues with the same Adam moments,
#: momentum buffers and step counts); the number of finished epochs is in the metadata.
CHECKPOINT_CONTENTS = "model+optim+scheduler"
_CHECKPOINT_PARTS = ("model.", "optim.", "scheduler.")


def save_checkpoint(
    model: ndl.nn.Module,
    optimizer: ndl.optim.Optimizer,
    scheduler: ndl.optim.LRScheduler,
    path: Path,
    epoch: int,
) -> None:
    """Writes model, optimizer and schedule and the finished epoch to one safetensors file; atomically, so a
    crash never leaves a half-written checkpoint."""
    states = (model.state_dict(), optimizer.state_dict(), scheduler.state_dict())
    tensors: dict[str, Any] = {}
    for prefix, state in zip(_CHECKPOINT_PARTS, states, strict=True):
        tensors.update({prefix + name: value for name, value in state.items()})
    tmp = path.with_suffix(".tmp")
    ndl.save(tensors, tmp, metadata={"epoch": str(epoch), "contents": CHECKPOINT_CONTENTS})
    os.replace(tmp, path)


def load_checkpoint(
    model: ndl.nn.Module, optimizer: ndl.optim.Optimizer, scheduler: ndl.optim.LRScheduler, path: Path
) -> tuple[int, bool]:
    """Loads a checkpoint of ``save_checkpoint``; returns the number of finished epochs and whether the
    optimizer and the schedule were restored. An older, model-only checkpoint (no "contents" metadata) still
    loads: the optimizer and the schedule then start fresh, which is printed, and the caller advances the
    schedule itself."""
    metadata = ndl.checkpoint.load_metadata(path)
    epoch = int(metadata.get("epoch", "0"))
    contents = metadata.get("contents")
    if contents is None:
        model.load_state_dict(ndl.load(path))
        print(
            f"note: {path} holds the model only (an older checkpoint): "
            "the optimizer's state and the schedule start fresh"
        )
        return epoch, False
    if contents != CHECKPOINT_CONTENTS:
        raise ValueError(f"{path}: unknown checkpoint contents {contents!r}")
    parts: dict[str, dict[str, Any]] = {prefix: {} for prefix in _CHECKPOINT_PARTS}
    for name, value in ndl.load(path).items():
        prefix = next((p for p in _CHECKPOINT_PARTS if name.startswith(p)), None)
        if prefix is None:
            raise ValueError(f"{path}: unexpected key {name!r} in a checkpoint")
        parts[prefix][name[len(prefix) :]] = value
    model.load_state_dict(parts["model."])
    optimizer.load_state_dict(parts["optim."])
    scheduler.load_state_dict(parts["scheduler."])
    return epoch, True


def plot_losses(log: MetricsLog, png: Path, title: str, keys: tuple[str, ...] = ("train_loss", "test_loss")) -> bool:
    """Draws the loss columns ``keys`` per epoch to a PNG when matplotlib is installed; returns whether it
    did."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = log.rows()
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in keys:
        if rows and key in rows[0]:
            ax.plot(epochs, [float(r[key]) for r in rows], marker="o", label=key.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return True


# ---- language models (train_lstm_lm.py, train_transformer_lm.py) ------------------------------------


class LanguageSplits:
    """Which word-id sequences a language model trains on, evaluates on each epoch and is tested on.

    With the full Penn Treebank (ptb.train.txt, ptb.valid.txt, ptb.test.txt) it trains on train, evaluates
    on valid and tests on test. A folder holding only ptb.valid.txt and ptb.test.txt (as the shared copy
    does) gives valid as the training text and test for both evaluations; ``note`` says so."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise SystemExit(f"{folder} is not a folder with ptb.train.txt / ptb.valid.txt / ptb.test.txt")
        corpus = ndl.data.Corpus(folder)
        self.vocab_size = len(corpus.dictionary)
        if corpus.train:
            self.train, self.train_name = corpus.train, "train"
            self.eval, self.eval_name = (corpus.valid, "valid") if corpus.valid else (corpus.test, "test")
            self.test = corpus.test or corpus.valid
            self.note = ""
        elif corpus.valid and corpus.test:
            self.train, self.train_name = corpus.valid, "valid"
            self.eval, self.eval_name = corpus.test, "test"
            self.test = corpus.test
            self.note = (
                f"no ptb.train.txt in {folder}: training on ptb.valid.txt and evaluating on ptb.test.txt "
                "(pass --data DIR with the full corpus for the standard split)"
            )
        else:
            raise SystemExit(f"{folder} needs ptb.train.txt, or both ptb.valid.txt and ptb.test.txt")
        if not self.test:
            raise SystemExit(f"{folder} has no test text (ptb.test.txt or ptb.valid.txt)")

    def describe(self) -> str:
        return (
            f"vocabulary {self.vocab_size:,} words; {self.train_name} {len(self.train):,} tokens (training), "
            f"{self.eval_name} {len(self.eval):,} (per-epoch evaluation), test {len(self.test):,}"
        )


def unigram_perplexity(train: list[int], test: list[int], vocab_size: int) -> float:
    """Perplexity on ``test`` of the unigram model fitted on ``train``'s word counts, add-one smoothed over
    the whole vocabulary: the baseline a language model has to beat."""
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=vocab_size).astype(np.float64) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(np.exp(-log_p[np.asarray(test, dtype=np.int64)].mean()))


# ---- image classifiers (train_cnn.py, train_resnet9.py) ---------------------------------------------


def find_idx_files(folder: Path, split: str) -> tuple[Path, Path]:
    """The image and label files of `split` ("train" or "t10k") in an MNIST-format folder, gzipped or not."""
    for suffix in (".gz", ""):
        images = folder / f"{split}-images-idx3-ubyte{suffix}"
        labels = folder / f"{split}-labels-idx1-ubyte{suffix}"
        if images.exists() and labels.exists():
            return images, labels
    raise SystemExit(f"no {split}-images-idx3-ubyte[.gz] / {split}-labels-idx1-ubyte[.gz] in {folder}")


def count_correct(logits: ndl.Tensor, labels: ndl.Tensor) -> int:
    """How many rows of `logits` (N, classes) have their largest value at the row's label."""
    return int((logits.numpy().argmax(axis=1) == labels.numpy()).sum())


def evaluate(
    model: ndl.nn.Module, loader: ndl.data.DataLoader, loss_fn: ndl.nn.Module, max_batches: int = 0
) -> tuple[float, float]:
    """Mean loss and accuracy of `model` in eval mode over `loader` (its first `max_batches` batches when
    that is positive); leaves the model in eval mode."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with ndl.no_grad():
        for i, (images, labels) in enumerate(loader):
            if 0 < max_batches <= i:
                break
            logits = model(images)
            total_loss += loss_fn(logits, labels).item() * labels.shape[0]
            correct += count_correct(logits, labels)
            seen += labels.shape[0]
    return total_loss / max(seen, 1), correct / max(seen, 1)


def train_epoch(
    model: ndl.nn.Module,
    loader: ndl.data.DataLoader,
    loss_fn: ndl.nn.Module,
    optimizer: ndl.optim.Optimizer,
    label: str,
    max_steps: int = 0,
) -> tuple[float, float, float]:
    """One pass of training over `loader` (its first `max_steps` batches when that is positive) with a
    progress bar; returns the mean training loss, the training accuracy and the seconds it took."""
    model.train()
    start = time.perf_counter()
    steps = len(loader) if max_steps <= 0 else min(max_steps, len(loader))
    progress = Progress(itertools.islice(loader, steps), steps, label, "images")
    correct = 0
    for images, labels in progress:
        logits = model(images)
        loss = loss_fn(logits, labels)
        optimizer.reset_grad()
        loss.backward()
        optimizer.step()
        progress.update(loss.item(), labels.shape[0])
        correct += count_correct(logits, labels)
    return progress.mean_loss, correct / max(progress.samples, 1), time.perf_counter() - start
