"""Accuracy of int8 post-training quantization (`needle.quantization`) on the trained examples: each model's test
metric in float32 and after quantization, from the checkpoint its example script wrote.

    python benchmarks/quantization_accuracy.py                        # the examples' out/<name>/ checkpoints
    python benchmarks/quantization_accuracy.py --cnn /tmp/cnn/checkpoint.safetensors --only cnn
    python benchmarks/quantization_accuracy.py --calibration-batches 16 --percentile 99.9

Models (a model whose checkpoint is missing is skipped, with a message):

* mlp: examples/python/train_mlp.py's MLP on Fashion-MNIST, test accuracy (10,000 images);
* cnn: examples/python/train_cnn.py's CNN on Fashion-MNIST, test accuracy;
* lstm: examples/python/train_lstm_lm.py's LSTM language model on Penn Treebank, test perplexity (the hidden
  state carried through the whole text, windows of --bptt words, as the example evaluates);
* transformer: examples/python/train_transformer_lm.py's transformer language model on Penn Treebank, test
  perplexity (windows of the model's context length, each without earlier context, as the example evaluates).

Each model is built by its example's code, with the sizes read from the checkpoint's weight shapes (the number
of attention heads is not in the weights: --heads, else the "heads" of the model.json the example writes next
to the checkpoint, else the example's default), and evaluated by its example's evaluation function, on the
CPU. Every column starts from a freshly loaded float32 checkpoint:

* float32: the model as trained;
* int8 (dynamic): `quantize_dynamic`, every Linear and LSTM with int8 weights (one scale per output channel) and
  int8 activations scaled per row at run time; convolutions stay float32;
* int8 (static, minmax / percentile): `quantize_static`, every Conv's input scale calibrated on the first
  --calibration-batches shuffled training batches of 128 images (largest magnitude, or its --percentile-th
  percentile), then the Linear layers as in the dynamic column. Only for models with convolutions.

"difference" is the worst int8 column against float32: accuracy points lost (goal: at most 0.5) or perplexity
gained in percent (goal: at most 2%). The table is Markdown, ready for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples" / "python"))

import train_cnn  # noqa: E402
import train_lstm_lm  # noqa: E402
import train_mlp  # noqa: E402
import train_transformer_lm  # noqa: E402
from training_utils import CHECKPOINT_CONTENTS, LanguageSplits, evaluate, unigram_perplexity  # noqa: E402

import needle as ndl  # noqa: E402
from needle import nn, quantization  # noqa: E402

MODELS = ("mlp", "cnn", "lstm", "transformer")
ACCURACY_GOAL_POINTS = 0.5  # int8 test accuracy at most this many points below float32
PERPLEXITY_GOAL_PERCENT = 2.0  # int8 test perplexity at most this many percent above float32
CALIBRATION_BATCH_SIZE = 128
TEST_BATCH_SIZE = 1000
DEFAULT_HEADS = 4  # train_transformer_lm.py's --heads

State = dict[str, Any]


@dataclass
class Result:
    """One row of the table: a model's test metric in float32 and in each int8 variant (None: not applicable)."""

    model: str
    dataset: str
    metric: str  # "test accuracy" (higher is better) or "test perplexity" (lower is better)
    float32: float
    dynamic: float
    minmax: float | None = None
    percentile: float | None = None

    @property
    def is_accuracy(self) -> bool:
        return self.metric == "test accuracy"

    def int8_values(self) -> list[float]:
        return [v for v in (self.dynamic, self.minmax, self.percentile) if v is not None]

    def worst_difference(self) -> float:
        """Accuracy points lost (negative: lost) or perplexity percent gained, of the worst int8 column."""
        if self.is_accuracy:
            return 100.0 * (min(self.int8_values()) - self.float32)
        return 100.0 * (max(self.int8_values()) / self.float32 - 1.0)

    def within_goal(self) -> bool:
        if self.is_accuracy:
            return -self.worst_difference() <= ACCURACY_GOAL_POINTS
        return self.worst_difference() <= PERPLEXITY_GOAL_PERCENT

    def format_value(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        return f"{100.0 * value:.2f}%" if self.is_accuracy else f"{value:.2f}"


# ---- checkpoints ------------------------------------------------------------------------------------------


def model_state(path: Path) -> State:
    """The model's tensors in a checkpoint of the examples' `save_checkpoint` (or an older model-only file)."""
    tensors = ndl.load(path)
    if ndl.checkpoint.load_metadata(path).get("contents") != CHECKPOINT_CONTENTS:
        return tensors
    return {name[len("model.") :]: value for name, value in tensors.items() if name.startswith("model.")}


def fresh_model(build: Callable[[], nn.Module], path: Path) -> nn.Module:
    """A new float32 model with the checkpoint's weights, in evaluation mode (quantization works in place, so
    every variant starts from one of these)."""
    model = build()
    model.load_state_dict(model_state(path))
    model.eval()
    return model


def timed(label: str, value: Callable[[], float], show: Callable[[float], str]) -> float:
    start = time.perf_counter()
    result = value()
    print(f"  {label}: {show(result)} ({time.perf_counter() - start:.1f} s)", flush=True)
    return result


# ---- the models -------------------------------------------------------------------------------------------


def fashion_mnist(folder: Path, split: str) -> ndl.data.MNISTDataset:
    return ndl.data.MNISTDataset(*map(str, train_mlp.find_idx_files(folder, split)))


def classifier_result(
    name: str,
    build: Callable[[], nn.Module],
    path: Path,
    args: argparse.Namespace,
    static: bool,
) -> Result:
    """Test accuracy of a Fashion-MNIST classifier: float32, dynamic int8 and (with `static`) static int8."""
    test_loader = ndl.data.DataLoader(fashion_mnist(args.fashion_mnist, "t10k"), TEST_BATCH_SIZE, device=ndl.cpu())
    loss_fn = nn.SoftmaxLoss()

    def accuracy(model: nn.Module) -> float:
        return evaluate(model, test_loader, loss_fn)[1]

    def show(value: float) -> str:
        return f"{100.0 * value:.2f}%"

    result = Result(name, "Fashion-MNIST", "test accuracy", 0.0, 0.0)
    result.float32 = timed("float32", lambda: accuracy(fresh_model(build, path)), show)
    result.dynamic = timed(
        "int8 dynamic", lambda: accuracy(quantization.quantize_dynamic(fresh_model(build, path))), show
    )
    if static:
        ndl.manual_seed(args.seed)
        train_loader = ndl.data.DataLoader(
            fashion_mnist(args.fashion_mnist, "train"), CALIBRATION_BATCH_SIZE, shuffle=True, device=ndl.cpu()
        )
        batches = []
        for images, _ in train_loader:
            if len(batches) == args.calibration_batches:
                break
            batches.append(images)

        def static_accuracy(observer: str) -> float:
            model = fresh_model(build, path)
            quantization.quantize_static(model, batches, observer=observer, percentile=args.percentile)
            return accuracy(model)

        result.minmax = timed("int8 static, minmax", lambda: static_accuracy("minmax"), show)
        result.percentile = timed("int8 static, percentile", lambda: static_accuracy("percentile"), show)
    return result


def mlp_result(path: Path, args: argparse.Namespace) -> Result:
    hidden = int(model_state(path)["1.weight"].shape[1])
    return classifier_result("MLP", lambda: train_mlp.make_model(hidden, 0.0), path, args, static=False)


def cnn_result(path: Path, args: argparse.Namespace) -> Result:
    return classifier_result("CNN", train_cnn.make_model, path, args, static=True)


def ptb_splits(args: argparse.Namespace, vocab_size: int) -> LanguageSplits:
    splits = LanguageSplits(args.ptb)
    if splits.vocab_size != vocab_size:
        raise SystemExit(
            f"{args.ptb} gives a vocabulary of {splits.vocab_size} words but the checkpoint has {vocab_size}: "
            "pass --ptb with the folder the model was trained on"
        )
    return splits


def language_model_result(
    name: str,
    build: Callable[[], nn.Module],
    path: Path,
    splits: LanguageSplits,
    mean_loss: Callable[[nn.Module], float],
) -> Result:
    """Test perplexity of a PTB language model: float32 and dynamic int8."""

    def perplexity(model: nn.Module) -> float:
        return math.exp(mean_loss(model))

    def show(value: float) -> str:
        return f"perplexity {value:.2f}"

    unigram = unigram_perplexity(splits.train, splits.test, splits.vocab_size)
    print(f"  unigram baseline: perplexity {unigram:.1f} ({len(splits.test):,} test tokens)")
    result = Result(name, "Penn Treebank", "test perplexity", 0.0, 0.0)
    result.float32 = timed("float32", lambda: perplexity(fresh_model(build, path)), show)
    result.dynamic = timed(
        "int8 dynamic", lambda: perplexity(quantization.quantize_dynamic(fresh_model(build, path))), show
    )
    return result


def lstm_result(path: Path, args: argparse.Namespace) -> Result:
    state = model_state(path)
    vocab_size, embed = (int(n) for n in state["embedding.weight"].shape)
    hidden = int(state["lstm.lstm_cells.0.W_hh"].shape[0])
    layers = sum(1 for name in state if name.startswith("lstm.lstm_cells.") and name.endswith(".W_ih"))
    print(f"  LSTM language model: vocabulary {vocab_size}, embedding {embed}, hidden {hidden}, {layers} layers")
    splits = ptb_splits(args, vocab_size)
    device = ndl.cpu()

    def build() -> nn.Module:
        return train_lstm_lm.LSTMLanguageModel(vocab_size, embed, hidden, layers, 0.0, device)

    def mean_loss(model: nn.Module) -> float:
        return train_lstm_lm.evaluate(model, splits.test, args.bptt, device)  # type: ignore[arg-type]

    return language_model_result("LSTM LM", build, path, splits, mean_loss)


def transformer_heads(path: Path, given: int | None) -> tuple[int, str]:
    """The transformer's number of attention heads and where it came from: --heads, the model.json that
    train_transformer_lm.py writes next to its checkpoint, or the example's default."""
    if given is not None:
        return given, "--heads"
    config = path.parent / "model.json"
    if config.is_file():
        return int(json.loads(config.read_text())["heads"]), str(config)
    return DEFAULT_HEADS, f"no {config}: the example's default; --heads to change"


def transformer_result(path: Path, args: argparse.Namespace) -> Result:
    state = model_state(path)
    vocab_size, dim = (int(n) for n in state["token_embedding.weight"].shape)
    context = int(state["positional_embedding.weight"].shape[0])
    layers = sum(1 for name in state if name.startswith("layers.") and name.endswith(".ln1.weight"))
    mlp = int(state["layers.0.mlp.0.weight"].shape[1])
    heads, source = transformer_heads(path, args.heads)
    print(
        f"  transformer language model: vocabulary {vocab_size}, dim {dim}, {layers} layers, {heads} heads "
        f"({source}), MLP {mlp}, context {context}"
    )
    splits = ptb_splits(args, vocab_size)
    device = ndl.cpu()

    def build() -> nn.Module:
        return nn.Transformer(vocab_size, dim, layers, heads, mlp, context, 0.0, device=device)

    def mean_loss(model: nn.Module) -> float:
        return train_transformer_lm.evaluate(model, splits.test, context, vocab_size, device)

    return language_model_result("Transformer LM", build, path, splits, mean_loss)


RUNNERS: dict[str, Callable[[Path, argparse.Namespace], Result]] = {
    "mlp": mlp_result,
    "cnn": cnn_result,
    "lstm": lstm_result,
    "transformer": transformer_result,
}


# ---- the table --------------------------------------------------------------------------------------------


def print_table(results: list[Result], command: str) -> None:
    print(
        "\n| model | dataset | metric | float32 | int8 (dynamic) | int8 (static, minmax) | int8 (static, percentile) "
        "| difference |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        difference = f"{r.worst_difference():+.2f}" + (" points" if r.is_accuracy else "%")
        mark = "within goal" if r.within_goal() else "MISSES GOAL"
        print(
            f"| {r.model} | {r.dataset} | {r.metric} | {r.format_value(r.float32)} | {r.format_value(r.dynamic)} "
            f"| {r.format_value(r.minmax)} | {r.format_value(r.percentile)} | {difference} ({mark}) |"
        )
    print(
        f"\ndifference: worst int8 column against float32 (goals: at most {ACCURACY_GOAL_POINTS} accuracy points "
        f"lost, at most {PERPLEXITY_GOAL_PERCENT}% perplexity gained); n/a: no convolutions to calibrate.\n"
        f"command: {command}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlp", type=Path, default=Path("out/mlp/checkpoint.safetensors"), help="MLP checkpoint")
    parser.add_argument("--cnn", type=Path, default=Path("out/cnn/checkpoint.safetensors"), help="CNN checkpoint")
    parser.add_argument(
        "--lstm", type=Path, default=Path("out/lstm_lm/checkpoint.safetensors"), help="LSTM language model checkpoint"
    )
    parser.add_argument(
        "--transformer",
        type=Path,
        default=Path("out/transformer_lm/checkpoint.safetensors"),
        help="transformer language model checkpoint",
    )
    parser.add_argument("--only", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    parser.add_argument("--fashion-mnist", type=Path, default=train_mlp.DEFAULT_DATA, help="Fashion-MNIST folder")
    parser.add_argument("--ptb", type=Path, default=train_lstm_lm.DEFAULT_DATA, help="the models' PTB folder")
    parser.add_argument("--heads", type=int, help="the transformer's attention heads (default: from model.json)")
    parser.add_argument("--bptt", type=int, default=35, help="the LSTM's evaluation window (train_lstm_lm's --bptt)")
    parser.add_argument("--calibration-batches", type=int, default=8, help="training batches for static scales")
    parser.add_argument("--percentile", type=float, default=99.99, help="the percentile observer's percentile")
    parser.add_argument("--seed", type=int, default=0, help="seeds the choice of calibration batches")
    args = parser.parse_args()

    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}: choose from {', '.join(MODELS)}")

    threads = os.environ.get("NEEDLE_NUM_THREADS", "(default)")
    print(f"Needle {ndl.__version__}, CPU, NEEDLE_NUM_THREADS={threads}")
    results: list[Result] = []
    for name in chosen:
        path: Path = getattr(args, name)
        if not path.is_file():
            print(f"{name}: skipped, no checkpoint at {path} (train it with its example, or pass --{name} PATH)")
            continue
        print(f"{name}: {path}", flush=True)
        results.append(RUNNERS[name](path, args))
    if not results:
        print("no checkpoints found: nothing measured", file=sys.stderr)
        return 1
    command = shlex.join(["python", "benchmarks/quantization_accuracy.py", *sys.argv[1:]])
    print_table(results, command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
