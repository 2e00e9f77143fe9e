"""Autoregressive generation with a KV cache: Needle's Transformer and the same model in PyTorch (eager, with a
KV cache of its own), batch 1, at 1 thread and at 2 threads.

    python benchmarks/generation.py                              # contexts 64, 256 and 1024; 1 and 2 threads
    python benchmarks/generation.py --contexts 64 --threads 1 --reps 3
    python benchmarks/generation.py --torch-python /path/to/python-with-torch

What is measured, for a prompt of C tokens (C = 64 and 256 on gpt_mini's shape: vocab 65, dim 128, 4 layers,
4 heads, MLP 512; C = 1024 on a wider model: vocab 10000, dim 512, 6 layers, 8 heads, MLP 2048):

* prefill: one forward over the C prompt tokens into an empty cache; C / time tokens per second;
* cached decode: after the prefill (untimed), 16 steps of one token each, every step feeding the greedy choice
  (argmax of the last logits) of the step before; 16 / time;
* uncached decode: every new token a full forward over the whole sequence so far (C, C + 1, ... tokens), as
  generation without a cache does; --uncached-steps / time.

Both frameworks read the last position's logits into a NumPy array at every step, as a sampling loop does.
The PyTorch model is written here: pre-LayerNorm blocks with bias-free q/k/v/out projections, exact-erf GELU,
learned positions, a KV cache preallocated per layer as (batch, heads, capacity, head_dim) tensors that each
forward writes at [length, length + n) and attends over [0, length + n) with
`F.scaled_dot_product_attention`, all under `torch.inference_mode()`. Needle runs under `needle.no_grad()`
with `needle.nn.KVCache`. Both get the same weights: Needle's randomly initialised model's `state_dict()`,
saved to a temporary .npz that the PyTorch side loads (Needle's Linear weight is (in, out), PyTorch's its
transpose). Before any timing, the two must agree on the prompt's logits (max |difference| within 1e-4 of
the logits' scale) and on a 16-token greedy continuation (Needle's `generate(..., temperature=0)` and its
own cached loop against PyTorch's); a disagreement is printed as MISMATCH.

PyTorch runs in a worker process that this script drives over a pipe, so the two take turns repetition by
repetition and machine noise hits both alike. PyTorch comes from --torch-python or, by default, the first of
.torch-venv (scripts/setup_torch_reference.sh), this interpreter, python3 on PATH and /usr/bin/python3 that
can `import torch`. Each thread count runs in fresh processes whose thread pools are sized by
NEEDLE_NUM_THREADS, OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS. --warmups untimed repetitions,
then the median of --reps timed ones. The tables are Markdown, ready for BENCHMARKS.md; "ratio" is PyTorch's
time / Needle's time (above 1: Needle is faster), and "cache speed-up" is cached decode tokens/s over uncached
decode tokens/s."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from workloads import TorchWorker, find_torch_python, thread_env, torch_env

DECODE_STEPS = 16  # cached decode steps timed, and tokens of the greedy agreement check
LOGIT_TOLERANCE = 1e-4  # max |Needle - PyTorch| over the prompt's logits, relative to max(1, max |logit|)
WARM_TOKENS = 8  # the untimed forwards that wake the thread pools between turns


@dataclass(frozen=True)
class Shape:
    name: str
    vocab: int
    dim: int
    layers: int
    heads: int
    hidden: int

    def describe(self) -> str:
        sizes = f"vocab {self.vocab}, dim {self.dim}, {self.layers} layers, {self.heads} heads, MLP {self.hidden}"
        return f"{self.name}: {sizes}"


GPT_MINI = Shape("gpt_mini", vocab=65, dim=128, layers=4, heads=4, hidden=512)
WIDE = Shape("wide", vocab=10000, dim=512, layers=6, heads=8, hidden=2048)
MODEL_FOR_CONTEXT = {64: GPT_MINI, 256: GPT_MINI, 1024: WIDE}
KINDS = ("prefill", "cached", "uncached")


def max_seq_len(context: int) -> int:
    """Positions the model needs: the prompt, the decoded tokens, and some room."""
    return context + 2 * DECODE_STEPS


class LanguageModel(Protocol):
    """What the timing code needs from either framework (token ids are int64 NumPy arrays of shape (1, n);
    logits come back as float32 NumPy arrays)."""

    def reset(self) -> None: ...

    def cached(self, ids: np.ndarray) -> np.ndarray:
        """Appends ids to the cache; returns the last position's logits (vocab,)."""
        ...

    def full(self, ids: np.ndarray) -> np.ndarray:
        """A forward without cache over ids; returns the last position's logits (vocab,)."""
        ...

    def all_logits(self, ids: np.ndarray) -> np.ndarray:
        """A forward without cache; every position's logits (n, vocab)."""
        ...


# ---- timing, the same code for both frameworks --------------------------------------------------------------


def greedy_cached(lm: LanguageModel, prompt: np.ndarray, steps: int) -> list[int]:
    lm.reset()
    logits = lm.cached(prompt)
    tokens: list[int] = []
    for _ in range(steps):
        tokens.append(int(np.argmax(logits)))
        logits = lm.cached(np.array([[tokens[-1]]], dtype=np.int64))
    return tokens


def measure(lm: LanguageModel, prompt: np.ndarray, uncached_steps: int, kind: str) -> float:
    """Seconds of one repetition of `kind` (see the module docstring); work before the timer is untimed."""
    if kind == "prefill":
        lm.reset()
        start = time.perf_counter()
        lm.cached(prompt)
        return time.perf_counter() - start
    if kind == "cached":
        lm.reset()
        logits = lm.cached(prompt)
        start = time.perf_counter()
        for _ in range(DECODE_STEPS):
            logits = lm.cached(np.array([[np.argmax(logits)]], dtype=np.int64))
        return time.perf_counter() - start
    if kind == "uncached":
        sequence = prompt
        start = time.perf_counter()
        for _ in range(uncached_steps):
            logits = lm.full(sequence)
            sequence = np.concatenate([sequence, np.array([[np.argmax(logits)]], dtype=np.int64)], axis=1)
        return time.perf_counter() - start
    raise ValueError(f"unknown measurement {kind}")


def warm(lm: LanguageModel, seconds: float) -> None:
    """Untimed forwards for `seconds`, so that the thread pools are awake when the timer starts."""
    ids = np.zeros((1, WARM_TOKENS), dtype=np.int64)
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        lm.full(ids)


# ---- Needle --------------------------------------------------------------------------------------------------


class NeedleLM:
    """Needle's nn.Transformer with an nn.KVCache; `has_cache` is False on a build without nn.KVCache (then
    only the uncached measurements and checks run)."""

    def __init__(self, shape: Shape, context: int) -> None:
        import needle as ndl

        self.ndl = ndl
        ndl.manual_seed(0)
        self.model: Any = ndl.nn.Transformer(
            shape.vocab,
            shape.dim,
            shape.layers,
            shape.heads,
            shape.hidden,
            max_seq_len=max_seq_len(context),
            dropout=0.0,
            causal=True,
        )
        self.model.eval()
        kv_cache: Any = getattr(ndl.nn, "KVCache", None)
        self.has_cache = kv_cache is not None
        self.cache: Any = kv_cache(self.model, 1, context + DECODE_STEPS) if self.has_cache else None

    def tensor(self, ids: np.ndarray) -> Any:
        return self.ndl.Tensor(ids, dtype="int64", requires_grad=False)

    def reset(self) -> None:
        self.cache.reset()

    def cached(self, ids: np.ndarray) -> np.ndarray:
        logits = self.model(self.tensor(ids), cache=self.cache)
        return np.array(logits.numpy()[0, -1])

    def full(self, ids: np.ndarray) -> np.ndarray:
        return np.array(self.model(self.tensor(ids)).numpy()[0, -1])

    def all_logits(self, ids: np.ndarray) -> np.ndarray:
        return np.array(self.model(self.tensor(ids)).numpy()[0])

    def generate(self, prompt: np.ndarray, steps: int) -> list[int]:
        out = self.model.generate(self.tensor(prompt), steps, temperature=0.0, use_cache=True)
        return [int(t) for t in out.numpy()[0, prompt.shape[1] :]]

    def save_weights(self, path: Path) -> None:
        arrays: dict[str, Any] = {name: array.numpy() for name, array in self.model.state_dict().items()}
        np.savez(path, **arrays)


# ---- the same model in PyTorch (built inside the worker process) ---------------------------------------------


def torch_lm(shape: Shape, context: int, weights: Path) -> LanguageModel:
    import torch  # type: ignore[import-not-found,unused-ignore]
    from torch import nn  # type: ignore[import-not-found,unused-ignore]

    F = nn.functional
    head_dim = shape.dim // shape.heads

    class Attention(nn.Module):  # type: ignore[misc,unused-ignore]
        """Needle's MultiHeadAttention: bias-free projections; with a cache, keys and values of the new
        positions are written into it and the queries attend over everything it holds."""

        def __init__(self) -> None:
            super().__init__()
            self.q_projection = nn.Linear(shape.dim, shape.dim, bias=False)
            self.k_projection = nn.Linear(shape.dim, shape.dim, bias=False)
            self.v_projection = nn.Linear(shape.dim, shape.dim, bias=False)
            self.out_projection = nn.Linear(shape.dim, shape.dim, bias=False)

        def forward(self, x: Any, keys: Any, values: Any, start: int) -> Any:
            b, n, _ = x.shape

            def split(t: Any) -> Any:
                return t.view(b, n, shape.heads, head_dim).transpose(1, 2)

            q, k, v = split(self.q_projection(x)), split(self.k_projection(x)), split(self.v_projection(x))
            if keys is None:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                end = start + n
                keys[:, :, start:end] = k
                values[:, :, start:end] = v
                k, v = keys[:, :, :end], values[:, :, :end]
                if n == 1:  # the newest position sees every cached one
                    a = F.scaled_dot_product_attention(q, k, v)
                elif start == 0:
                    a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
                else:  # position start + i sees j <= start + i (is_causal would align the mask top-left)
                    mask = torch.arange(end)[None, :] <= torch.arange(start, end)[:, None]
                    a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.out_projection(a.transpose(1, 2).reshape(b, n, shape.dim))

    class Layer(nn.Module):  # type: ignore[misc,unused-ignore]
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(shape.dim, eps=1e-5), nn.LayerNorm(shape.dim, eps=1e-5)
            self.attn = Attention()
            # Indices as Needle's (Linear, GELU, Dropout, Linear), so that the state_dict keys match.
            self.mlp = nn.Sequential(
                nn.Linear(shape.dim, shape.hidden), nn.GELU(), nn.Identity(), nn.Linear(shape.hidden, shape.dim)
            )

        def forward(self, x: Any, keys: Any, values: Any, start: int) -> Any:
            h = x + self.attn(self.ln1(x), keys, values, start)
            return h + self.mlp(self.ln2(h))

    class Transformer(nn.Module):  # type: ignore[misc,unused-ignore]
        def __init__(self) -> None:
            super().__init__()
            self.token_embedding = nn.Embedding(shape.vocab, shape.dim)
            self.positional_embedding = nn.Embedding(max_seq_len(context), shape.dim)
            self.layers = nn.ModuleList([Layer() for _ in range(shape.layers)])
            self.norm = nn.LayerNorm(shape.dim, eps=1e-5)
            self.head = nn.Linear(shape.dim, shape.vocab)

        def forward(self, tokens: Any, cache: KVCache | None = None) -> Any:
            start = cache.length if cache is not None else 0
            n = tokens.shape[1]
            x = self.token_embedding(tokens) + self.positional_embedding(torch.arange(start, start + n))
            for i, layer in enumerate(self.layers):
                x = layer(x, None, None, 0) if cache is None else layer(x, cache.keys[i], cache.values[i], start)
            if cache is not None:
                cache.length += n
            return self.head(self.norm(x))

    class KVCache:
        def __init__(self, batch: int, capacity: int) -> None:
            size = (batch, shape.heads, capacity, head_dim)
            self.keys = [torch.zeros(size) for _ in range(shape.layers)]
            self.values = [torch.zeros(size) for _ in range(shape.layers)]
            self.length = 0

    model = Transformer().eval()
    with np.load(weights) as arrays:
        state = {}
        for name, target in model.state_dict().items():
            value = arrays[name]
            owner = model.get_submodule(name.rsplit(".", 1)[0])
            if isinstance(owner, nn.Linear) and name.endswith(".weight"):
                value = value.T  # Needle stores (in, out)
            state[name] = torch.from_numpy(np.ascontiguousarray(value).reshape(tuple(target.shape)))
    model.load_state_dict(state, strict=True)

    class TorchLM:
        def __init__(self) -> None:
            self.cache = KVCache(1, context + DECODE_STEPS)

        def reset(self) -> None:
            self.cache.length = 0

        def cached(self, ids: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return np.array(model(torch.from_numpy(ids), self.cache)[0, -1].numpy())

        def full(self, ids: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return np.array(model(torch.from_numpy(ids))[0, -1].numpy())

        def all_logits(self, ids: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return np.array(model(torch.from_numpy(ids))[0].numpy())

    return TorchLM()


def torch_worker() -> None:
    """Reads one JSON command per line, answers one JSON line each: {"setup": case} builds the model of a case
    with the weights it names; {"greedy": n}, {"logits": path} (writes the prompt's logits there as .npy),
    {"warm": seconds} and {"run": kind} (seconds of one repetition)."""
    import torch  # type: ignore[import-not-found,unused-ignore]

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    lm: LanguageModel | None = None
    prompt = np.zeros((1, 0), dtype=np.int64)
    uncached_steps = 0
    for line in sys.stdin:
        command = json.loads(line)
        answer: dict[str, Any] = {"ok": True}
        if "setup" in command:
            case = command["setup"]
            lm = torch_lm(Shape(**case["shape"]), case["context"], Path(case["weights"]))
            prompt = np.array([case["prompt"]], dtype=np.int64)
            uncached_steps = case["uncached_steps"]
        elif lm is None:
            answer = {"error": "no setup"}
        elif "greedy" in command:
            answer = {"tokens": greedy_cached(lm, prompt, command["greedy"])}
        elif "logits" in command:
            np.save(command["logits"], lm.all_logits(prompt))
        elif "warm" in command:
            warm(lm, command["warm"])
        else:
            answer = {"seconds": measure(lm, prompt, uncached_steps, command["run"])}
        print(json.dumps(answer), flush=True)


class GenerationWorker(TorchWorker):
    """The PyTorch side of this script (its --torch-worker loop) in its own process."""

    def __init__(self, python: str, env: dict[str, str]) -> None:
        super().__init__(python, env, script=__file__)

    def warm(self, seconds: float) -> None:
        self.ask({"warm": seconds})

    def run(self, kind: str) -> float:
        return float(self.ask({"run": kind})["seconds"])


# ---- one thread count, in a child process ---------------------------------------------------------------------


def check_agreement(needle: NeedleLM, worker: TorchWorker, prompt: np.ndarray, folder: Path) -> str:
    """Compares the prompt's logits and the greedy continuations; returns the table's check cell (and prints
    every disagreement to stderr)."""
    problems: list[str] = []
    logits_path = folder / "torch_logits.npy"
    worker.ask({"logits": str(logits_path)})
    theirs = np.load(logits_path)
    ours = needle.all_logits(prompt)
    difference = float(np.max(np.abs(ours - theirs)))
    scale = max(1.0, float(np.max(np.abs(theirs))))
    if not difference <= LOGIT_TOLERANCE * scale:
        problems.append(f"prompt logits differ by {difference:.2e} (scale {scale:.2f})")
    reference = worker.ask({"greedy": DECODE_STEPS})["tokens"]
    continuations = {"PyTorch": reference}
    if needle.has_cache:
        continuations["Needle cached loop"] = greedy_cached(needle, prompt, DECODE_STEPS)
        if hasattr(needle.model, "generate"):
            continuations["Needle generate"] = needle.generate(prompt, DECODE_STEPS)
    else:  # no cache in this build: greedy by full forwards
        sequence, tokens = prompt, []
        for _ in range(DECODE_STEPS):
            tokens.append(int(np.argmax(needle.full(sequence))))
            sequence = np.concatenate([sequence, np.array([[tokens[-1]]], dtype=np.int64)], axis=1)
        continuations["Needle uncached loop"] = tokens
    for who, tokens in continuations.items():
        if tokens != reference:
            first = next((i for i, (a, b) in enumerate(zip(tokens, reference, strict=False)) if a != b), len(tokens))
            problems.append(
                f"{who} greedy continuation differs from PyTorch's at token {first}: {tokens} vs {reference}"
            )
    for problem in problems:
        print(f"MISMATCH (context {prompt.shape[1]}): {problem}", file=sys.stderr, flush=True)
    verdict = "MISMATCH" if problems else f"{DECODE_STEPS} greedy tokens agree"
    return f"{verdict}; max logit diff {difference:.1e}"


def run_thread_count(args: argparse.Namespace) -> None:
    """Runs in a child process whose thread environment is already set; prints one JSON line per context."""
    import needle as ndl

    threads = int(os.environ["NEEDLE_NUM_THREADS"])
    if hasattr(ndl, "set_num_threads"):
        ndl.set_num_threads(threads)
    torch_python = find_torch_python(args.torch_python)
    worker = GenerationWorker(torch_python, torch_env()) if torch_python else None
    # As in workloads.py: with several threads, pause before each turn until the other library's threads
    # sleep, then wake this one's for 0.1 s with untimed forwards.
    settle = args.settle if args.settle is not None else (0.25 if threads > 1 else 0.0)
    rng = np.random.default_rng(0)
    try:
        with ndl.no_grad(), tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for context in (int(c) for c in args.contexts.split(",")):
                shape = MODEL_FOR_CONTEXT.get(context, WIDE if context > 256 else GPT_MINI)
                needle = NeedleLM(shape, context)
                prompt = rng.integers(0, shape.vocab, (1, context), dtype=np.int64)
                weights = folder / f"weights_{context}.npz"
                needle.save_weights(weights)
                record: dict[str, Any] = {"context": context, "model": shape.describe(), "threads": threads}
                runners: dict[str, tuple[Callable[[float], None], Callable[[str], float]]] = {}
                kinds = {"needle": KINDS if needle.has_cache else ("uncached",)}
                runners["needle"] = (
                    partial(warm, needle),
                    partial(measure, needle, prompt, args.uncached_steps),
                )
                if worker is not None:
                    case = {
                        "shape": asdict(shape),
                        "context": context,
                        "weights": str(weights),
                        "prompt": prompt[0].tolist(),
                        "uncached_steps": args.uncached_steps,
                    }
                    worker.ask({"setup": case})
                    record["check"] = check_agreement(needle, worker, prompt, folder)
                    kinds["torch"] = KINDS
                    runners["torch"] = (worker.warm, worker.run)
                times: dict[str, dict[str, list[float]]] = {f: {k: [] for k in kinds[f]} for f in runners}
                for kind in KINDS:
                    for rep in range(args.warmups + args.reps):
                        for framework, (warm_up, run) in runners.items():
                            if kind not in kinds[framework]:
                                continue
                            if settle > 0:
                                time.sleep(settle)
                                warm_up(0.1)
                            seconds = run(kind)
                            if rep >= args.warmups:
                                times[framework][kind].append(seconds)
                record["medians"] = {
                    f: {k: statistics.median(v) for k, v in by_kind.items()} for f, by_kind in times.items()
                }
                record["uncached_steps"] = args.uncached_steps
                print(json.dumps(record), flush=True)
    finally:
        if worker is not None:
            print(json.dumps({"torch_version": worker.info["torch"]}), flush=True)
            worker.close()


# ---- tables --------------------------------------------------------------------------------------------------


def tokens_per_second(record: dict[str, Any], framework: str, kind: str) -> float | None:
    seconds = record["medians"].get(framework, {}).get(kind)
    if seconds is None:
        return None
    tokens = {"prefill": record["context"], "cached": DECODE_STEPS, "uncached": record["uncached_steps"]}[kind]
    return float(tokens / seconds)


def cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def ratio(numerator: float | None, denominator: float | None, suffix: str = "") -> str:
    return "n/a" if numerator is None or denominator is None else f"{numerator / denominator:.2f}{suffix}"


def print_table(records: list[dict[str, Any]], threads: int) -> None:
    print(f"\n{threads} thread{'s' if threads > 1 else ''} (batch 1; tokens per second):\n")
    print(
        "| context | model | prefill Needle | prefill PyTorch | ratio | cached decode Needle | cached decode PyTorch "
        "| ratio | uncached decode Needle | uncached decode PyTorch | cache speed-up Needle | cache speed-up PyTorch "
        "| check |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in records:
        rate = {(f, k): tokens_per_second(r, f, k) for f in ("needle", "torch") for k in KINDS}
        print(
            f"| {r['context']} | {r['model']} "
            f"| {cell(rate['needle', 'prefill'])} | {cell(rate['torch', 'prefill'])} "
            f"| {ratio(rate['needle', 'prefill'], rate['torch', 'prefill'])} "
            f"| {cell(rate['needle', 'cached'])} | {cell(rate['torch', 'cached'])} "
            f"| {ratio(rate['needle', 'cached'], rate['torch', 'cached'])} "
            f"| {cell(rate['needle', 'uncached'])} | {cell(rate['torch', 'uncached'])} "
            f"| {ratio(rate['needle', 'cached'], rate['needle', 'uncached'], 'x')} "
            f"| {ratio(rate['torch', 'cached'], rate['torch', 'uncached'], 'x')} | {r.get('check', 'no PyTorch')} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contexts", default="64,256,1024", help="prompt lengths, comma-separated")
    parser.add_argument("--uncached-steps", type=int, default=4, help="tokens timed in uncached decode")
    parser.add_argument(
        "--settle", type=float, help="seconds to pause before each timed turn (default 0.25 with 2+ threads, else 0)"
    )
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--torch-python", help="interpreter that has PyTorch")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.torch_worker:
        torch_worker()
        return 0
    if args.child:
        run_thread_count(args)
        return 0
    if args.uncached_steps < 1 or args.uncached_steps > DECODE_STEPS:
        parser.error(f"--uncached-steps must lie in [1, {DECODE_STEPS}]")

    torch_python = find_torch_python(args.torch_python)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()}")
    print(f"PyTorch: {torch_python or 'not found (pass --torch-python)'}")
    print(
        f"median of {args.reps} repetitions after {args.warmups} warm-ups, interleaved; cached decode: "
        f"{DECODE_STEPS} tokens, uncached decode: {args.uncached_steps} tokens"
    )
    for threads in (int(t) for t in args.threads.split(",")):
        child_args = [sys.executable, __file__, "--child", "--reps", str(args.reps), "--warmups", str(args.warmups)]
        child_args += ["--contexts", args.contexts, "--uncached-steps", str(args.uncached_steps)]
        if args.torch_python:
            child_args += ["--torch-python", args.torch_python]
        if args.settle is not None:
            child_args += ["--settle", str(args.settle)]
        out = subprocess.run(child_args, env=thread_env(threads), capture_output=True, text=True)
        sys.stderr.write(out.stderr)
        if out.returncode != 0:
            return out.returncode
        records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        for record in records:
            if "torch_version" in record:
                print(f"PyTorch version: {record['torch_version']}")
        print_table([r for r in records if "context" in r], threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
