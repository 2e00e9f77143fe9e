"""Sample text from the transformer language model that train_transformer_lm.py trained on Penn Treebank.

    python examples/python/generate.py                                   # from out/transformer_lm
    python examples/python/generate.py --prompt "the company said" --tokens 40 --temperature 0.8 --top-k 40
    python examples/python/generate.py --greedy --compare                # also without the cache: same words
    python examples/python/generate.py --int8                            # int8 weights (quantize_dynamic)

The model is rebuilt from out/transformer_lm/model.json and its weights loaded from the checkpoint. The
prompt runs through the model once (prefill) and fills a key/value cache; each new word then costs one
decode step that attends to the cache instead of rerunning the whole sequence. Words outside the
vocabulary become <unk>. Prints the text and the prefill and decode speeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import needle as ndl
from needle import nn, quantization


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/transformer_lm"), help="train_transformer_lm.py's --out")
    parser.add_argument("--prompt", default="the company said", help="words to continue")
    parser.add_argument("--tokens", type=int, default=30, help="words to generate")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=40, help="sample among the k most likely words (0: all)")
    parser.add_argument("--top-p", type=float, default=0.95, help="and within this much probability mass")
    parser.add_argument("--greedy", action="store_true", help="always the most likely word (temperature 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--int8", action="store_true", help="int8 weights (needle.quantization.quantize_dynamic)")
    parser.add_argument("--compare", action="store_true", help="also generate without the cache and compare")
    args = parser.parse_args()

    config_path = args.out / "model.json"
    checkpoint = args.out / "checkpoint.safetensors"
    if not config_path.exists() or not checkpoint.exists():
        print(f"no trained model in {args.out}: run examples/python/train_transformer_lm.py first", file=sys.stderr)
        return 1
    config = json.loads(config_path.read_text())
    dictionary = ndl.data.Corpus(Path(config["data"])).dictionary
    model = nn.Transformer(
        config["vocab_size"], config["dim"], config["layers"], config["heads"], config["mlp"], config["seq_len"]
    )
    # The checkpoint also holds the optimizer's state ("optim.", "scheduler."): only the model's entries load.
    saved = ndl.load(checkpoint)
    model.load_state_dict({k.removeprefix("model."): v for k, v in saved.items() if k.startswith("model.")})
    model.eval()
    if args.int8:
        quantization.quantize_dynamic(model)

    unknown = dictionary.word2idx.get("<unk>", 0)
    words = args.prompt.split()
    prompt = np.array([[dictionary.word2idx.get(w, unknown) for w in words]], dtype=np.int64)
    room = config["seq_len"] - prompt.shape[1]
    if room <= 0:
        print(f"the prompt has {prompt.shape[1]} words; the model's context is {config['seq_len']}", file=sys.stderr)
        return 1
    new_tokens = min(args.tokens, room)
    temperature = 0.0 if args.greedy else args.temperature
    options = {"temperature": temperature, "top_k": args.top_k, "top_p": args.top_p, "seed": args.seed}

    # Prefill alone, then the whole generation, each timed.
    cache = nn.KVCache(model, 1, prompt.shape[1] + new_tokens)
    start = time.perf_counter()
    model(ndl.Tensor(prompt, dtype="int64"), cache=cache)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    ids = model.generate(prompt, new_tokens, cache=cache, **options).numpy()[0]
    total = time.perf_counter() - start
    decode = max(total - prefill, 1e-9)

    text = " ".join(dictionary.idx2word[i] for i in ids[prompt.shape[1] :])
    print(f"{args.prompt} || {text}")
    print(
        f"{'int8' if args.int8 else 'float32'} model; prefill {prompt.shape[1] / prefill:,.0f} tokens/s, "
        f"decode {(new_tokens - 1) / decode if new_tokens > 1 else 0:,.0f} tokens/s with the cache"
    )
    if args.compare:
        start = time.perf_counter()
        uncached = model.generate(prompt, new_tokens, use_cache=False, **options).numpy()[0]
        seconds = time.perf_counter() - start
        same = "the same words" if np.array_equal(uncached, ids) else "DIFFERENT words"
        print(f"without the cache: {new_tokens / seconds:,.0f} tokens/s, {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
