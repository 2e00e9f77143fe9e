"""Runs every case of one case module under real PyTorch and saves the results.

Usage: python run_reference.py CASES.py OUT.npz

Each ``case_*`` function of the module takes the ``torch`` module and returns a dict of NumPy arrays (or
strings); the results are stored as ``<case>/<key>``. A case that raises is stored as ``<case>/!error``
with the exception's type name, so that a test can check that Needle raises the same kind of error.
This script imports only NumPy and PyTorch: it runs in the reference interpreter, which has no Needle.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    cases_path, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    spec = importlib.util.spec_from_file_location(cases_path.stem, cases_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.set_num_threads(1)
    results = {}
    for name in dir(module):
        if not name.startswith("case_"):
            continue
        try:
            outputs = getattr(module, name)(torch)
        except Exception as error:
            results[f"{name}/!error"] = np.array(type(error).__name__)
            continue
        for key, value in outputs.items():
            results[f"{name}/{key}"] = np.asarray(value)
    np.savez(out_path, **results)


if __name__ == "__main__":
    main()
