"""The CIFAR-10 loader's restricted pickle reader on hostile files: nesting far deeper than a batch's
(a clear ValueError naming the file, not a crash), an object that contains itself (refused, and repeated
failed loads keep no memory), and a key stored twice (the last value wins, as with Python's pickle)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from needle import data


def batch(labels: list[int]) -> dict[bytes, object]:
    n = len(labels)
    return {b"data": np.full((n, 3072), 7, dtype=np.uint8), b"labels": labels}


def test_deep_nesting_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    # 300,000 nested lists in 600 KB. Run in a subprocess: a regression overflows the stack.
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02" + b"]" * 300_000 + b"a" * 299_999 + b".")
    script = textwrap.dedent(
        f"""
        from needle import data
        try:
            data.CIFAR10Dataset({str(tmp_path)!r}, train=False)
        except ValueError as e:
            print(e)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert f"{path}': pickle nesting deeper than 100 levels" in result.stdout


def test_nested_tuples_are_refused_too(tmp_path: Path) -> None:
    (tmp_path / "test_batch").write_bytes(b"\x80\x02N" + b"\x85" * 100_000 + b".")
    with pytest.raises(ValueError, match="test_batch': pickle nesting deeper than 100 levels"):
        data.CIFAR10Dataset(tmp_path, train=False)


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("where", ["list", "dict"])
def test_self_containing_objects_are_refused_without_leaking(tmp_path: Path, where: str) -> None:
    filler = b"x" * (1 << 20)
    if where == "list":
        hostile: list[object] = [filler]
        hostile.append(hostile)
        root: object = {b"data": hostile, b"labels": [1]}
    else:
        inner: dict[bytes, object] = {b"filler": filler}
        inner[b"self"] = inner
        root = {b"data": inner, b"labels": [1]}
    (tmp_path / "test_batch").write_bytes(pickle.dumps(root, protocol=2))
    with pytest.raises(ValueError, match=r"test_batch': a (list|dict) that contains itself"):
        data.CIFAR10Dataset(tmp_path, train=False)
    if not Path("/proc/self/statm").exists():
        return
    # Each failed load used to leak the whole structure (1 MiB here); now nothing of it stays.
    for _ in range(5):
        with pytest.raises(ValueError, match="contains itself"):
            data.CIFAR10Dataset(tmp_path, train=False)
    before = resident_bytes()
    for _ in range(40):
        with pytest.raises(ValueError, match="contains itself"):
            data.CIFAR10Dataset(tmp_path, train=False)
    assert resident_bytes() - before < 16 << 20


def test_a_duplicate_key_keeps_its_last_value(tmp_path: Path) -> None:
    # Pickle a dict with b"labels" and b"labelz" after it, then rename the second: the file now stores
    # b"labels" twice, and Python's pickle (like the reader) keeps the last value.
    root = batch([9, 9])
    root[b"labelz"] = [4, 2]
    raw = pickle.dumps(root, protocol=2)
    assert raw.count(b"labelz") == 1
    raw = raw.replace(b"labelz", b"labels")
    assert pickle.loads(raw, encoding="bytes")[b"labels"] == [4, 2]
    (tmp_path / "test_batch").write_bytes(raw)
    ds = data.CIFAR10Dataset(tmp_path, train=False)
    assert len(ds) == 2
    assert [int(ds[i][1]) for i in range(2)] == [4, 2]
    np.testing.assert_allclose(ds[0][0], np.full((3, 32, 32), 7 / 255.0), rtol=1e-6)
