"""Checks the import rules of docs/architecture.md: every C++ file includes only its own layer and the
layers it may use, and no layer above the array layer calls a Backend. Prints each include or call that
breaks a rule and exits 1 if there is any.

Usage: python scripts/check_layers.py [ROOT]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# The array layer's files inside core/; the rest of core/ is vocabulary.
ARRAY_FILES = {"ndarray", "array_ops", "fused_ops", "quantized_ops", "storage", "array_checks", "dense_layout"}

# Layer -> the layers its files may include (its own always). "debug_hooks" is the one door from the engine
# into the debugging tools: the attachment points of docs/architecture.md ("Seeing inside").
MAY_USE: dict[str, set[str]] = {
    "vocabulary": set(),
    "backend_api": {"vocabulary"},
    "backends": {"vocabulary", "backend_api"},
    "array": {"vocabulary", "backend_api"},
    "autograd": {"vocabulary", "array", "ops", "debug_hooks"},
    "ops": {"vocabulary", "array", "autograd", "debug_hooks"},
    "nn": {"vocabulary", "array", "autograd", "ops"},
    "optim": {"vocabulary", "array", "autograd"},
    "data": {"vocabulary", "array"},
    "io": {"vocabulary", "array", "nn", "autograd"},
    "debug": {"vocabulary", "backend_api", "array", "autograd", "ops", "debug_hooks"},
    # Process groups and data parallelism: collectives on arrays, gradient hooks, wrapped modules.
    "dist": {"vocabulary", "array", "autograd", "ops", "nn"},
    "debug_hooks": {"vocabulary", "array", "autograd"},
}

# Layers above the array layer reach kernels only through array functions, never through a Backend.
ABOVE_ARRAY = {"autograd", "ops", "nn", "optim", "data", "io", "dist"}
BACKEND_CALL = re.compile(r"\b(backend_for|builtin_backend_for)\s*\(")

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)


def layer_of(path: str) -> str | None:
    """The layer of a file, given as include/needle/... or src/... relative to the root, or as an include
    path ("needle/core/ndarray.h" or "backend/ref/ref_kernels.h")."""
    parts = path.split("/")
    if parts[0] == "include":
        parts = parts[1:]
    if parts[0] in ("needle", "src"):
        parts = parts[1:]
    if len(parts) < 2:
        return None
    folder, stem = parts[0], Path(parts[-1]).stem
    if folder == "core":
        return "array" if stem in ARRAY_FILES else "vocabulary"
    if folder == "backend":
        # Public headers (include/needle/backend) are the kernel interface; src/backend/** the backends.
        return "backend_api" if path.startswith(("include/", "needle/")) else "backends"
    if folder == "debug" and stem in {"hooks", "call_site"} and path.endswith(".h"):
        return "debug_hooks"
    if folder in MAY_USE:
        return folder
    return None


def violations(root: Path) -> list[str]:
    found = []
    files = sorted([*root.glob("include/needle/**/*.h"), *root.glob("src/**/*.h"), *root.glob("src/**/*.cpp")])
    files += sorted([*root.glob("src/**/*.cu"), *root.glob("src/**/*.cuh")])
    for file in files:
        rel = file.relative_to(root).as_posix()
        layer = layer_of(rel)
        if layer is None:
            continue
        text = file.read_text(encoding="utf-8")
        if layer in ABOVE_ARRAY:
            for match in BACKEND_CALL.finditer(text):
                line = text[: match.start()].count("\n") + 1
                found.append(
                    f"{rel}:{line}: the {layer} layer calls {match.group(1)} (kernels go through array functions)"
                )
        for match in INCLUDE.finditer(text):
            target = match.group(1)
            # Internal headers (src/...) are named from src/; public ones start with needle/.
            used = layer_of(target if target.startswith("needle/") else "src/" + target)
            if used is None or used == layer or used in MAY_USE[layer]:
                continue
            line = text[: match.start()].count("\n") + 1
            found.append(f"{rel}:{line}: the {layer} layer includes {target} (the {used} layer)")
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    found = violations(root)
    for line in found:
        print(line)
    if found:
        print(f"check_layers: {len(found)} include(s) break the layer rules of docs/architecture.md")
        return 1
    print("check_layers: every include follows the layer rules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
