"""The fuzzers' seed corpora (tests/fuzz/corpus/<target>/): tests/fuzz/make_corpus.py reproduces them, and the
seeds meant to be valid are read by Needle's readers, so fuzzing starts from inputs that reach past the first
checks."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import needle as ndl
from needle import data

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"
CORPUS = FUZZ / "corpus"


def test_make_corpus_reproduces_the_checked_in_seeds(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(FUZZ / "make_corpus.py"), str(tmp_path)], check=True, capture_output=True)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    checked_in = sorted(p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file())
    assert made == checked_in
    for name in made:
        if name.parts[0] == "fuzz_cifar":
            continue  # NumPy's pickles of arrays may change between NumPy versions; the reader takes both
        assert (tmp_path / name).read_bytes() == (CORPUS / name).read_bytes(), name
    # Small enough to keep in the repository and to fuzz from quickly.
    assert all((CORPUS / name).stat().st_size <= 8192 for name in checked_in)


def test_safetensors_seeds_load() -> None:
    folder = CORPUS / "fuzz_safetensors"
    loaded = ndl.load(folder / "every_dtype")
    assert sorted(loaded) == ["bool", "f32", "f64", "i32", "i64"]
    assert ndl.load(folder / "empty_dict") == {}
    assert ndl.load(folder / "header_only") == {}
    assert loaded["f64"].numpy().tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(ValueError, match="fewer than the 8-byte header size"):
        ndl.load(folder / "short")


@pytest.mark.parametrize(("seed", "count"), [("two_images", 2), ("two_images_gzipped", 2), ("no_images", 0)])
def test_mnist_seeds_load(tmp_path: Path, seed: str, count: int) -> None:
    raw = (CORPUS / "fuzz_mnist" / seed).read_bytes()
    (split,) = struct.unpack("<H", raw[:2])
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.write_bytes(raw[2 : 2 + split])
    labels.write_bytes(raw[2 + split :])
    assert len(data.MNISTDataset(images, labels)) == count


def test_cifar_seeds_load(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "fuzz_cifar" / "one_image", tmp_path / "test_batch")
    assert len(data.CIFAR10Dataset(tmp_path, train=False)) == 1
    # An empty array pickles its data as __builtin__.bytes(), a global the restricted reader refuses: an
    # edge seed, rejected today.
    shutil.copy(CORPUS / "fuzz_cifar" / "no_images", tmp_path / "test_batch")
    with pytest.raises(ValueError, match=r"__builtin__\.bytes"):
        data.CIFAR10Dataset(tmp_path, train=False)


def test_ptb_seed_loads(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_bytes((CORPUS / "fuzz_ptb" / "three_lines").read_bytes()[3:])
    corpus = data.Corpus(tmp_path)
    assert len(corpus.train) == 20  # 6 + 4 + 0 + 6 words and 4 <eos>
