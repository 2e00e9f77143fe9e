"""Compares ``needle.torch`` with real PyTorch on cases written once against the PyTorch API.

The cases (tests/python/torch_cases/cases_*.py) import only NumPy and take the ``torch`` module as an
argument. Each module's cases run once under real PyTorch in the reference interpreter (a separate process:
PyTorch is never a dependency of Needle's environment) and once here under ``needle.torch``; the test
compares every returned array.

The reference interpreter is, in order: $NEEDLE_TORCH_PYTHON, .torch-venv/bin/python (PyPI's PyTorch,
scripts/setup_torch_reference.sh), or Debian's /usr/bin/python3 with python3-torch (scripts/setup.sh
installs it). Without one the tests skip, saying so.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = Path(__file__).resolve().parent / "torch_cases"


def _has_torch(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import torch, numpy"], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def reference_python() -> str | None:
    """The interpreter with real PyTorch, or None."""
    candidates = [os.environ.get("NEEDLE_TORCH_PYTHON", ""), str(ROOT / ".torch-venv/bin/python"), "/usr/bin/python3"]
    for python in candidates:
        if python and Path(python).exists() and _has_torch(python):
            return python
    return None


NO_REFERENCE = (
    "no interpreter with real PyTorch: set NEEDLE_TORCH_PYTHON, run scripts/setup_torch_reference.sh, "
    "or install Debian's python3-torch"
)


def load_cases(name: str) -> ModuleType:
    """The case module tests/python/torch_cases/<name>.py."""
    path = CASES_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"torch_cases_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def case_names(name: str) -> list[str]:
    """The ``case_*`` functions of a case module, in name order."""
    return sorted(n for n in dir(load_cases(name)) if n.startswith("case_"))


@functools.cache
def reference_results(name: str) -> dict[str, np.ndarray[Any, Any]]:
    """Every case of module ``name`` run under real PyTorch (once per test session)."""
    python = reference_python()
    assert python is not None
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "results.npz"
        run = subprocess.run(
            [python, str(CASES_DIR / "run_reference.py"), str(CASES_DIR / f"{name}.py"), str(out)],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "OMP_NUM_THREADS": "1", "NEEDLE_TORCH_SCRATCH": scratch_dir()},
        )
        if run.returncode != 0:
            raise RuntimeError(f"the PyTorch reference run of {name} failed:\n{run.stderr[-4000:]}")
        with np.load(out) as saved:
            return {key: saved[key] for key in saved.files}


@functools.cache
def scratch_dir() -> str:
    """A folder both runs of a case can use for files (a checkpoint real PyTorch writes and needle.torch
    reads), removed when the test session ends."""
    path = tempfile.mkdtemp(prefix="needle-torch-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def compare(name: str, case: str, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """Runs ``case`` of module ``name`` under needle.torch and checks it against PyTorch's results."""
    import needle.torch as torch

    os.environ["NEEDLE_TORCH_SCRATCH"] = scratch_dir()

    reference = {k.split("/", 1)[1]: v for k, v in reference_results(name).items() if k.split("/", 1)[0] == case}
    function = getattr(load_cases(name), case)
    tolerance = getattr(function, "tolerance", None)
    if tolerance is not None:
        rtol, atol = tolerance
    if "!error" in reference:
        expected = str(reference["!error"])
        raised: Exception | None = None
        try:
            function(torch)
        except Exception as error:  # compared with PyTorch's error below
            raised = error
        assert raised is not None, f"{case}: PyTorch raises {expected}, needle.torch raised nothing"
        assert type(raised).__name__ == expected or isinstance(raised, _builtin(expected)), (
            f"{case}: PyTorch raises {expected}, needle.torch raised {type(raised).__name__}: {raised}"
        )
        return
    outputs = {key: np.asarray(value) for key, value in function(torch).items()}
    assert sorted(outputs) == sorted(reference), f"{case}: keys {sorted(outputs)} vs PyTorch's {sorted(reference)}"
    for key, expected_value in reference.items():
        got = outputs[key]
        where = f"{case}: '{key}'"
        assert got.shape == expected_value.shape, f"{where}: shape {got.shape} vs PyTorch's {expected_value.shape}"
        if expected_value.dtype.kind in "US":
            assert str(got) == str(expected_value), f"{where}: {got} vs PyTorch's {expected_value}"
            continue
        assert got.dtype == expected_value.dtype, f"{where}: dtype {got.dtype} vs PyTorch's {expected_value.dtype}"
        if expected_value.dtype.kind in "biu":
            np.testing.assert_array_equal(got, expected_value, err_msg=where)
        else:
            np.testing.assert_allclose(got, expected_value, rtol=rtol, atol=atol, err_msg=where)


def _builtin(name: str) -> type[BaseException]:
    """The built-in exception class called ``name`` (an exception class nothing raises otherwise)."""
    import builtins

    found = getattr(builtins, name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else _Never


class _Never(Exception):
    """Raised by nothing: the class to compare with when PyTorch's error is not a built-in one."""
