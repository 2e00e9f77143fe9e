"""The layer rules of docs/architecture.md hold, and the check that enforces them can fail."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_layers", ROOT / "scripts" / "check_layers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_layers"] = module
    spec.loader.exec_module(module)
    return module


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_source_tree_follows_the_layer_rules() -> None:
    assert load_checker().violations(ROOT) == []


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        # A backend reaching up into the array layer.
        ("src/backend/cpu/bad.cpp", '#include "needle/core/ndarray.h"\n', "the backends layer includes"),
        # An op including a concrete backend.
        ("src/ops/bad.cpp", '#include "backend/cpu/cpu_backend.h"\n', "the ops layer includes"),
        # An op calling a Backend directly instead of an array function.
        ("src/ops/bad.cpp", "void f() { backend_for(Device()); }\n", "calls backend_for"),
        # The vocabulary including the array layer.
        ("include/needle/core/dtype.h", '#include "needle/core/ndarray.h"\n', "the vocabulary layer includes"),
        # The optimizers recording ops.
        ("src/optim/bad.cpp", '#include "needle/ops/ops.h"\n', "the optim layer includes"),
    ],
)
def test_a_lower_layer_including_a_higher_one_is_reported(tmp_path: Path, rel: str, text: str, expected: str) -> None:
    checker = load_checker()
    write(tmp_path, "include/needle/core/ndarray.h", "// ok\n")
    write(tmp_path, "src/ops/good.cpp", '#include "needle/core/ndarray.h"\n')
    assert checker.violations(tmp_path) == []
    write(tmp_path, rel, text)
    found = checker.violations(tmp_path)
    assert len(found) == 1
    assert expected in found[0]
    assert rel in found[0]
