"""torch.save / torch.load of needle.torch in PyTorch's zip format: files written here load in real PyTorch
(and into a PyTorch model of the same architecture), files written by real PyTorch load here, and a crafted
or damaged file is refused with a clear error, never executed and never a crash."""

import contextlib
import io
import os
import pickle
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from torch_reference import NO_REFERENCE, reference_python

import needle.torch as torch

needs_reference = pytest.mark.skipif(reference_python() is None, reason=NO_REFERENCE)


def _run_reference(script: str, cwd: Path) -> str:
    python = reference_python()
    assert python is not None
    run = subprocess.run([python, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


MODEL = """
def make_model(nn):
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)
    )
"""


def _make_model() -> torch.nn.Module:
    scope: dict[str, object] = {}
    exec(MODEL, scope)  # the same architecture source as the reference script's
    return scope["make_model"](torch.nn)  # type: ignore[operator]


@needs_reference
def test_checkpoint_written_here_loads_in_pytorch(tmp_path: Path) -> None:
    model = _make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x = torch.randn(2, 1, 4, 4)
    model(x).sum().backward()
    optimizer.step()
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 7,
        "history": [0.5, 0.25],
        "name": "cnn",
        "view": torch.arange(12.0).reshape(3, 4).t(),
        "dtype": torch.float64,
    }
    torch.save(checkpoint, tmp_path / "needle.pt")
    np.savez(tmp_path / "expected.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
    model.eval()
    np.save(tmp_path / "eval_out.npy", model(x).detach().numpy())
    np.save(tmp_path / "x.npy", x.numpy())
    script = (
        MODEL
        + """
import numpy as np, torch
ckpt = torch.load("needle.pt")
expected = np.load("expected.npz")
for key in expected.files:
    assert np.array_equal(ckpt["model"][key].numpy(), expected[key]), key
    assert ckpt["model"][key].shape == expected[key].shape, key
model = make_model(torch.nn)
model.load_state_dict(ckpt["model"])
model.eval()
out = model(torch.from_numpy(np.load("x.npy"))).detach().numpy()
assert np.allclose(out, np.load("eval_out.npy"), rtol=1e-5, atol=1e-6), (out, np.load("eval_out.npy"))
opt = torch.optim.Adam(model.parameters(), lr=0.01)
opt.load_state_dict(ckpt["optimizer"])
assert ckpt["epoch"] == 7 and ckpt["history"] == [0.5, 0.25] and ckpt["name"] == "cnn"
assert ckpt["dtype"] is torch.float64
assert ckpt["view"].tolist() == torch.arange(12.0).reshape(3, 4).t().tolist()
print("ok", sorted(ckpt["optimizer"]["state"][0]))
"""
    )
    assert "ok ['exp_avg', 'exp_avg_sq', 'step']" in _run_reference(script, tmp_path)


@needs_reference
def test_checkpoint_written_by_pytorch_loads_here(tmp_path: Path) -> None:
    script = (
        MODEL
        + """
import numpy as np, torch
torch.manual_seed(0)
model = make_model(torch.nn)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
model(torch.randn(2, 1, 4, 4)).sum().backward()
opt.step()
base = torch.arange(20.0)
torch.save({
    "model": model.state_dict(), "optimizer": opt.state_dict(), "step": 3,
    "shared_a": base[2:8].view(2, 3), "shared_b": base[::5], "half": torch.ones(3, dtype=torch.float16) / 3,
    "ints": torch.tensor([1, -2], dtype=torch.int32), "flags": torch.tensor([True, False]),
    "param": torch.nn.Parameter(torch.ones(2)), "nested": {"a": [1, 2.5, None, "x"], "b": (torch.zeros(1),)},
}, "torch.pt")
np.savez("expected.npz", **{k: v.numpy() for k, v in model.state_dict().items()})
"""
    )
    _run_reference(script, tmp_path)
    ckpt = torch.load(tmp_path / "torch.pt")
    expected = np.load(tmp_path / "expected.npz")
    for key in expected.files:
        np.testing.assert_array_equal(ckpt["model"][key].numpy(), expected[key], err_msg=key)
    model = _make_model()
    model.load_state_dict(ckpt["model"])  # PyTorch's layouts: loads strictly, shapes match
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.load_state_dict(ckpt["optimizer"])
    assert ckpt["step"] == 3
    np.testing.assert_array_equal(ckpt["shared_a"].numpy(), np.arange(20.0)[2:8].reshape(2, 3))
    np.testing.assert_array_equal(ckpt["shared_b"].numpy(), np.arange(20.0)[::5])
    np.testing.assert_allclose(ckpt["half"].numpy(), np.full(3, 1 / 3, np.float16).astype(np.float32))
    assert ckpt["ints"].dtype is torch.int32
    assert ckpt["ints"].tolist() == [1, -2]
    assert ckpt["flags"].tolist() == [True, False]
    assert isinstance(ckpt["param"], torch.nn.Parameter)
    assert ckpt["param"].requires_grad
    assert ckpt["nested"]["a"] == [1, 2.5, None, "x"]
    assert ckpt["nested"]["b"][0].shape == (1,)


def test_round_trip_here(tmp_path: Path) -> None:
    state = {"w": torch.randn(3, 4), "i": torch.tensor([1, 2]), "s": torch.tensor(2.5), "e": torch.zeros(0, 3)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    for key, value in state.items():
        assert loaded[key].dtype is value.dtype
        assert loaded[key].shape == value.shape
        np.testing.assert_array_equal(loaded[key].numpy(), value.numpy())


def _archive(records: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in records.items():
            archive.writestr(f"archive/{name}", data)
    return out.getvalue()


class _Evil:
    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, ("touch pwned",))


def test_crafted_pickle_is_refused_and_never_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    path.write_bytes(_archive({"data.pkl": pickle.dumps({"x": _Evil()}, protocol=2), "version": b"3\n"}))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global (posix|os)\.system"):
        torch.load(path)
    assert not (tmp_path / "pwned").exists()


def test_damaged_files_give_clear_errors(tmp_path: Path) -> None:
    good = io.BytesIO()
    torch.save({"w": torch.arange(10.0)}, good)
    data = good.getvalue()
    not_zip = tmp_path / "plain.pt"
    not_zip.write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(RuntimeError, match="not a PyTorch zip checkpoint"):
        torch.load(not_zip)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises((RuntimeError, pickle.UnpicklingError)):
        torch.load(truncated)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        records = {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}
    short = dict(records, **{"data/0": records["data/0"][:8]})
    short_path = tmp_path / "short.pt"
    short_path.write_bytes(_archive(short))
    with pytest.raises(pickle.UnpicklingError, match="holds 8 bytes, not 10 elements"):
        torch.load(short_path)
    missing = {k: v for k, v in records.items() if k != "data/0"}
    missing_path = tmp_path / "missing.pt"
    missing_path.write_bytes(_archive(missing))
    with pytest.raises(pickle.UnpicklingError, match="data/0 is missing"):
        torch.load(missing_path)


def test_random_corruption_never_crashes(tmp_path: Path) -> None:
    source = io.BytesIO()
    torch.save({"w": torch.randn(4, 5), "meta": {"epoch": 3, "names": ["a", "b"]}}, source)
    with zipfile.ZipFile(io.BytesIO(source.getvalue())) as archive:
        records = {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}
    rng = np.random.default_rng(0)
    path = tmp_path / "mutated.pt"
    for _ in range(300):
        mutated = bytearray(records["data.pkl"])
        for _ in range(int(rng.integers(1, 4))):
            mutated[int(rng.integers(0, len(mutated)))] = int(rng.integers(0, 256))
        path.write_bytes(_archive(dict(records, **{"data.pkl": bytes(mutated)})))
        with contextlib.suppress(pickle.UnpicklingError, RuntimeError, ValueError, TypeError, MemoryError):
            torch.load(path)


def test_random_damage_to_the_archive_never_crashes(tmp_path: Path) -> None:
    source = io.BytesIO()
    torch.save({"w": torch.randn(3, 4), "step": 2}, source)
    data = source.getvalue()
    rng = np.random.default_rng(1)
    path = tmp_path / "damaged.pt"
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            damaged[int(rng.integers(0, len(damaged)))] = int(rng.integers(0, 256))
        path.write_bytes(bytes(damaged))
        with contextlib.suppress(pickle.UnpicklingError, RuntimeError, MemoryError):
            torch.load(path)
