"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/): small valid files of each
format, in the input layout its target expects, plus minimal edge cases. Deterministic, so running it
again reproduces the checked-in files (with the pinned NumPy).

    python tests/fuzz/make_corpus.py [OUT_DIR]        # default: tests/fuzz/corpus

Needs only NumPy: the files are written from the formats' descriptions, not by Needle.
"""

from __future__ import annotations

import gzip
import json
import pickle
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


# ---- safetensors: 8-byte little-endian header size, JSON header padded to 8, then the data ----


def safetensors(arrays: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    codes = {"float32": "F32", "float64": "F64", "int32": "I32", "int64": "I64", "bool": "BOOL"}
    data = b""
    for name, array in arrays.items():
        raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": codes[array.dtype.name],
            "shape": list(array.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds() -> dict[str, bytes]:
    return {
        "empty_dict": safetensors({}),
        "every_dtype": safetensors(
            {
                "f32": np.array([1.5, -2.0], dtype=np.float32),
                "f64": np.arange(6, dtype=np.float64).reshape(2, 3),
                "i32": np.array([[-7]], dtype=np.int32),
                "i64": np.array(9, dtype=np.int64),
                "bool": np.array([True, False, True]),
            },
            {"format": "pt", "note": "caf\u00e9"},
        ),
        "empty_tensor": safetensors({"e": np.zeros((0, 3), dtype=np.float32), "x": np.ones(1, dtype=np.float32)}),
        "header_only": struct.pack("<Q", 2) + b"{}",
        "short": b"\x08\x00\x00",
    }


# ---- MNIST: a 2-byte split (little-endian) + the images IDX file + the labels IDX file ----


def idx(magic: int, dims: list[int], data: bytes) -> bytes:
    return struct.pack(">" + "I" * (1 + len(dims)), magic, *dims) + data


def mnist_input(images: bytes, labels: bytes) -> bytes:
    return struct.pack("<H", len(images)) + images + labels


def mnist_seeds() -> dict[str, bytes]:
    pixels = bytes(range(0, 240, 20))  # 2 images of 3 x 2
    images = idx(0x803, [2, 3, 2], pixels)
    labels = idx(0x801, [2], bytes([7, 1]))
    return {
        "two_images": mnist_input(images, labels),
        "two_images_gzipped": mnist_input(gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0)),
        "no_images": mnist_input(idx(0x803, [0, 28, 28], b""), idx(0x801, [0], b"")),
        "wrong_magic": mnist_input(idx(0x801, [1, 1, 1], b"\x00"), idx(0x803, [1], b"\x00")),
    }


# ---- CIFAR-10: a test_batch pickle (protocol 2) as the python-version archive holds ----


def cifar_batch(n: int) -> bytes:
    rng = np.random.default_rng(n)
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"seed_{i}.png".encode() for i in range(n)],
    }
    return pickle.dumps(batch, protocol=2)


def cifar_seeds() -> dict[str, bytes]:
    return {
        "one_image": cifar_batch(1),
        "no_images": cifar_batch(0),
        "empty_dict": pickle.dumps({}, protocol=2),
        "list_of_ints": pickle.dumps([1, 2, 3], protocol=2),
    }


# ---- PTB: max_lines byte (255: none), batch size byte, bptt byte, then the text ----


def ptb_seeds() -> dict[str, bytes]:
    text = " the cat sat on the mat \n <unk> N years ago \n\n a b c d e f \n"
    return {
        "three_lines": b"\xff\x02\x03" + text.encode(),
        "two_lines_of_three": b"\x02\x03\x01" + text.encode(),
        "no_text": b"\xff\x01\x01",
        "crlf_no_final_newline": b"\xff\x04\x02" + b"one two\r\nthree\tfour  five",
        "utf8": b"\xff\x01\x05" + "na\u00efve caf\u00e9 \u65e5\u672c\n".encode(),
    }


# ---- strided views: FuzzedDataProvider input, so any bytes are a program; a few fixed ones ----


def strided_seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(2024)
    return {f"random_{n}": rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (16, 48, 96, 160)}


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus"
    targets = {
        "fuzz_safetensors": safetensors_seeds(),
        "fuzz_mnist": mnist_seeds(),
        "fuzz_cifar": cifar_seeds(),
        "fuzz_ptb": ptb_seeds(),
        "fuzz_strided": strided_seeds(),
    }
    for target, seeds in targets.items():
        folder = out / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in seeds.items():
            (folder / name).write_bytes(data)
        print(f"{folder}: {len(seeds)} files, {sum(len(d) for d in seeds.values())} bytes")


if __name__ == "__main__":
    main()
