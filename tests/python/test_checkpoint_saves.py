"""Saving checkpoints safely: two threads or two processes saving different state dicts to one path leave,
at every moment, exactly one writer's complete file; a failed save raises naming the path, keeps the old
file and leaves no temporary file behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import needle as ndl

ROUNDS = 20
HERE = Path(__file__).resolve().parent


def state(writer: int, round_: int) -> dict[str, np.ndarray]:
    """Writer 0's and writer 1's dicts differ in names, shapes and dtypes, and every value encodes (writer,
    round), so a file mixing two saves is told apart from any whole one."""
    value = writer * 1000 + round_
    out = {"id": np.array([writer, round_], dtype=np.int64)}
    if writer == 0:
        out["common"] = np.full(20000, value, dtype=np.float32)
        out["only_a"] = np.full((7, 3), value, dtype=np.float64)
    else:
        out["common"] = np.full((5000, 3), value, dtype=np.int64)
        out["only_b"] = np.full(11, value, dtype=np.int32)
    return out


def is_whole(loaded: dict[str, ndl.NDArray]) -> bool:
    arrays = {name: array.numpy() for name, array in loaded.items()}
    writer, round_ = (int(v) for v in arrays["id"])
    expected = state(writer, round_)
    return arrays.keys() == expected.keys() and all(
        arrays[k].dtype == v.dtype and arrays[k].shape == v.shape and np.array_equal(arrays[k], v)
        for k, v in expected.items()
    )


def write_rounds(path: str, writer: int) -> None:
    """A writer's saves; also run by the child processes of the test below."""
    for round_ in range(ROUNDS):
        ndl.save(state(writer, round_), path)


def load_while(path: Path, busy: Callable[[], bool]) -> tuple[int, int]:
    """Loads `path` while busy() is true: (loads, loads that were not one writer's whole file)."""
    loads = torn = 0
    while busy():
        try:
            torn += not is_whole(ndl.load(path))
        except (ValueError, RuntimeError):
            torn += 1
        loads += 1
    return loads, torn


def test_two_threads_saving_to_one_path(tmp_path: Path) -> None:
    path = tmp_path / "shared.safetensors"
    ndl.save(state(0, 0), path)
    errors: list[BaseException] = []

    def run(writer: int) -> None:
        try:
            write_rounds(str(path), writer)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    # save releases the GIL, so the two writers really do overlap.
    writers = [threading.Thread(target=run, args=(w,)) for w in (0, 1)]
    for t in writers:
        t.start()
    loads, torn = load_while(path, lambda: any(t.is_alive() for t in writers))
    for t in writers:
        t.join()
    assert errors == []
    assert torn == 0, f"{torn} of {loads} loads were not one writer's whole file"
    assert is_whole(ndl.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.safetensors"]


def test_two_processes_saving_to_one_path(tmp_path: Path) -> None:
    path = tmp_path / "shared.safetensors"
    ndl.save(state(1, 0), path)
    # Each child imports this file and runs write_rounds(path, writer).
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_checkpoint_saves as t; "
        "t.ndl._core.set_float_input_policy('numpy'); t.write_rounds(sys.argv[2], int(sys.argv[3]))"
    )
    children = [
        subprocess.Popen([sys.executable, "-c", code, str(HERE), str(path), str(w)], stderr=subprocess.PIPE, text=True)
        for w in (0, 1)
    ]
    loads, torn = load_while(path, lambda: any(c.poll() is None for c in children))
    for c in children:
        _, err = c.communicate(timeout=120)
        assert c.returncode == 0, err
    assert torn == 0, f"{torn} of {loads} loads were not one writer's whole file"
    assert is_whole(ndl.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared.safetensors"]


def test_a_failed_save_names_the_path_and_leaves_nothing_behind(tmp_path: Path) -> None:
    folder = tmp_path / "a_folder"
    folder.mkdir()
    with pytest.raises(RuntimeError, match=f"{re.escape(str(folder))}.*cannot replace it"):
        ndl.save(state(0, 1), folder)
    missing = tmp_path / "missing" / "x.safetensors"
    with pytest.raises(RuntimeError, match=f"{re.escape(str(missing))}.*cannot open for writing"):
        ndl.save(state(0, 1), missing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only folders")
def test_an_unwritable_folder_keeps_its_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    ndl.save(state(1, 2), path)
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(RuntimeError, match=f"{re.escape(str(path))}.*Permission denied"):
            ndl.save(state(0, 3), path)
    finally:
        tmp_path.chmod(0o755)
    assert is_whole(ndl.load(path))
    assert ndl.load(path)["id"].numpy().tolist() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]
