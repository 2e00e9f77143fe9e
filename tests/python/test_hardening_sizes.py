"""Sizes, strides, offsets and byte counts that do not fit in int64 are refused with a clear exception.

Each case used to crash the interpreter (a size that wrapped to something small, then an out-of-bounds
access), raise an unclear error, or silently give a wrong value. Cases that could crash run in a fresh
interpreter, so that a regression fails its test instead of taking the whole test run down.
"""

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd

PRELUDE = """
import numpy as np
import needle as ndl
from needle import backend_ndarray as nd
"""


def raised_in_subprocess(statements: str) -> str:
    """Runs `statements` in a fresh interpreter and returns "Type: message" of the exception they raise, Type
    being the built-in class it is (needle.ArgumentError is a ValueError first)."""
    code = (
        PRELUDE
        + "try:\n"
        + textwrap.indent(textwrap.dedent(statements).strip(), "    ")
        + "\nexcept Exception as e:\n"
        + "    kind = next(c for c in type(e).__mro__ if c.__module__ == 'builtins')\n"
        + "    print(f'{kind.__name__}: {e}')\n"
        + "else:\n    print('no exception')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"the interpreter died with code {result.returncode}: {result.stderr[-2000:]}"
    return result.stdout.strip().splitlines()[-1]


def safetensors_bytes(entry: str, data: bytes = b"") -> bytes:
    header = ('{"t":' + entry + "}").encode()
    return struct.pack("<Q", len(header)) + header + data


def test_zeros_whose_size_wraps_is_refused() -> None:
    # 2**32 * 2**32 wrapped to 0 elements, and z[5, 5] then read far outside the storage.
    out = raised_in_subprocess("z = nd.zeros((2**32, 2**32))\nz[5, 5]")
    assert out == "ValueError: zeros: shape (4294967296, 4294967296) has more than 2**63 - 1 elements"


def test_reshape_and_broadcast_to_check_the_requested_size() -> None:
    out = raised_in_subprocess("nd.zeros((4,)).reshape((2**62 + 1, 4))")
    assert out.startswith(
        "ValueError: reshape: cannot reshape array of shape (4,) into shape (4611686018427387905, 4), which has more"
    )
    out = raised_in_subprocess("b = nd.zeros((4,)).broadcast_to((2**62 + 1, 4))\nb * 2.0")
    assert out == "ValueError: broadcast_to: shape (4611686018427387905, 4) has more than 2**63 - 1 elements"


def test_as_strided_span_that_wraps_is_refused() -> None:
    out = raised_in_subprocess("nd.zeros((4,)).as_strided((4,), (-0x5555555555555555,))[1]")
    assert out.startswith("ValueError: as_strided: shape (4,) with strides (-6148914691236517205,)")
    assert "reaches outside the storage of 4 elements" in out


def test_max_pool2d_window_arithmetic_is_checked() -> None:
    out = raised_in_subprocess(
        """
        x = ndl.Tensor(np.zeros((1, 1, 4, 4), dtype=np.float32))
        ndl.nn.functional.max_pool2d(x, 2**62, stride=1, padding=2**61)
        """
    )
    assert out.startswith("ValueError: max_pool2d: padding 2305843009213693952 makes the padded input of shape")


def test_safetensors_empty_tensor_with_huge_dimensions_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    shape = "[0,4611686018427387904,4611686018427387904]"
    path.write_bytes(safetensors_bytes('{"dtype":"F32","shape":' + shape + ',"data_offsets":[0,0]}'))
    out = raised_in_subprocess(f"t = ndl.load({str(path)!r})['t']\nt.sum(axis=0)[0, 0]")
    assert out.startswith("ValueError: load_safetensors:")
    assert "shape is too large: (0, 4611686018427387904, 4611686018427387904) of dtype F32" in out


def test_mnist_header_whose_product_wraps_is_refused(tmp_path: Path) -> None:
    images = tmp_path / "images.idx"
    labels = tmp_path / "labels.idx"
    # 4 images of 2**31 x 2**31 pixels: 2**64 bytes, which wrapped to the 0 bytes this file holds.
    images.write_bytes(struct.pack(">IIII", 0x803, 4, 2**31, 2**31))
    labels.write_bytes(struct.pack(">II", 0x801, 4) + bytes(4))
    out = raised_in_subprocess(
        f"""
        dataset = ndl.data.MNISTDataset({str(images)!r}, {str(labels)!r})
        for batch in ndl.data.DataLoader(dataset, batch_size=2):
            pass
        """
    )
    assert out.startswith("ValueError: MNISTDataset: ")
    assert "the header announces 4 x 2147483648 x 2147483648 bytes of images, more than 2**63 - 1" in out


def test_allocation_failures_name_the_call_and_the_size() -> None:
    # 2**50 elements lie beyond any machine's address space, yet fit in int64: MemoryError, not ValueError.
    with pytest.raises(MemoryError, match=r"^arange: an array of shape \(1125899906842624,\) and dtype int64 \("):
        nd.arange(2**50)
    with pytest.raises(MemoryError, match=r"9\.0 PB\) cannot be allocated"):
        nd.arange(2**50)
    labels = ndl.Tensor(np.array([0, 1, 2]), dtype="int64")
    with pytest.raises(MemoryError, match=r"^one_hot: 1125899906842624 classes for indices of shape \(3,\)"):
        ndl.ops.one_hot(labels, 2**50)
    with pytest.raises(MemoryError, match=r"^one_hot: 1125899906842624 classes"):
        nd.cpu().one_hot(2**50, [0, 1])
    with pytest.raises(MemoryError, match=r"^zeros: an array of shape \(33554432, 33554432\) and dtype float32"):
        nd.zeros((2**25, 2**25))


def test_sizes_that_do_not_fit_name_the_call() -> None:
    labels = ndl.Tensor(np.array([0, 1, 2]), dtype="int64")
    with pytest.raises(ValueError, match=r"^one_hot: 4611686018427387905 classes .* larger than 2\*\*63 - 1 bytes"):
        ndl.ops.one_hot(labels, 2**62 + 1)
    a = nd.zeros((2, 2))
    with pytest.raises(ValueError, match=r"^pad: padding axis 1 of size 2 by \(9223372036854775807, 1\)"):
        nd.pad(a, ((0, 0), (2**63 - 1, 1)))
    with pytest.raises(ValueError, match=r"^pad: shape \(4611686018427387906, 4611686018427387906\) has more"):
        ndl.ops.pad(ndl.Tensor(a), ((2**62, 0), (2**62, 0)))
    with pytest.raises(ValueError, match=r"^dilate: dilating axis 0 of size 2 by 4611686018427387904 gives more"):
        ndl.ops.dilate(ndl.Tensor(a), (0,), 2**62)
    with pytest.raises(ValueError, match=r"^dilate: dilating an array of shape \(2, 2\) by 2147483648 gives shape"):
        ndl.ops.dilate(ndl.Tensor(a), (0, 1), 2**31)


def test_load_reads_only_what_the_header_announces(tmp_path: Path) -> None:
    if os.path.exists("/dev/zero"):
        # A header length of 0 is refused after reading 8 bytes, not after reading /dev/zero to its end.
        out = raised_in_subprocess("ndl.load('/dev/zero')")
        assert out == """ValueError: load_safetensors: "/dev/zero": the header does not start with '{'"""
    with pytest.raises(ValueError, match=r"is a directory") as error:
        ndl.load(tmp_path)
    assert str(tmp_path) in str(error.value)
    path = tmp_path / "long.safetensors"
    path.write_bytes(struct.pack("<Q", 2**24) + b"{}")
    with pytest.raises(ValueError, match=r"header size 16777216 exceeds the 2 bytes after it"):
        ndl.load(path)


def test_uint64_values_past_int64_are_refused() -> None:
    with pytest.raises(ValueError, match=r"value 18446744073709551615 of a uint64 input does not fit in int64"):
        nd.array(np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(ValueError, match=r"value 9223372036854775808 of a uint64 input"):
        nd.array([2**63])
    with pytest.raises(ValueError, match=r"does not fit in int32"):
        nd.array(np.array([2**63], dtype=np.uint64), dtype="int32")
    assert nd.array(np.array([5, 2**63 - 1], dtype=np.uint64)).numpy().tolist() == [5, 2**63 - 1]
    as_float = nd.array(np.array([2**64 - 1], dtype=np.uint64), dtype="float64").numpy()
    assert as_float.tolist() == [float(2**64 - 1)]
    assert nd.array(np.array([], dtype=np.uint64)).shape == (0,)


@pytest.mark.parametrize("step", [-(2**63), -(2**63) + 1, 2**63 - 1, -3, 3])
@pytest.mark.parametrize("start", [None, 0, 2, -1])
def test_slice_steps_at_the_ends_of_int64_match_numpy(step: int, start: int | None) -> None:
    values = np.arange(4)
    got = nd.array(values)[start::step].numpy()
    np.testing.assert_array_equal(got, values[start::step])
