// Shared declarations of the autograd bindings: how a needle::Tensor crosses into Python, and the
// argument conversions used by both the Tensor methods and the functional ops.
//
// Python's `Tensor` class is needle::TensorImpl held by std::shared_ptr, so the same C++ tensor always
// maps to the same Python object while that object lives (nanobind's instance map), and Python
// subclasses (nn.Parameter) keep their type when they come back from C++. needle::Tensor, the C++
// handle around the shared pointer, converts to and from that class with the type caster below.
#pragma once

#include <nanobind/stl/shared_ptr.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bindings.h"

namespace nanobind::detail {

template <>
struct type_caster<needle::Tensor> {
  using ImplCaster = make_caster<std::shared_ptr<needle::TensorImpl>>;
  NB_TYPE_CASTER(needle::Tensor, ImplCaster::Name)

  bool from_python(handle src, std::uint32_t flags, cleanup_list* cleanup) noexcept {
    ImplCaster impl;
    if (!impl.from_python(src, flags, cleanup)) return false;
    value = needle::Tensor(std::move(impl.value));
    return true;
  }

  // An undefined tensor (no gradient, no weight) is None.
  static handle from_cpp(const needle::Tensor& tensor, rv_policy policy, cleanup_list* cleanup) noexcept {
    if (!tensor.defined()) return none().release();
    return ImplCaster::from_cpp(tensor.impl(), policy, cleanup);
  }
};

}  // namespace nanobind::detail

namespace needle::python {

// A tensor outside the graph holding `value` (masks, constants, converted operands).
inline Tensor constant_tensor(const NDArray& value) { return Tensor(value, false); }

// A 0-d constant for a scalar operand next to `like`: the scalar only lifts like's dtype category.
Tensor scalar_tensor(const Scalar& value, const Tensor& like);

// A non-tensor operand next to `like` (an NDArray, a NumPy array, a list) as a constant tensor; NumPy
// arrays and lists go to like's device. std::nullopt when `other` is none of these.
std::optional<Tensor> operand_tensor(nb::handle other, const Tensor& like);

// Reductions with Needle's `axes`/`keepdims` and PyTorch's `dim`/`keepdim` spellings: None reduces every
// axis, an empty sequence reduces none (NumPy).
using TensorReduceFn = Tensor (*)(const Tensor&, const Axes&, bool);
Tensor reduce_tensor(TensorReduceFn fn, const char* op, const Tensor& a, const AxisArg& axes, bool keepdims,
                     const AxisArg& dim, std::optional<bool> keepdim);

// The axes argument given under either of its names (an error naming `op` when both are given).
AxisArg either_axes(const char* op, const AxisArg& axes, const AxisArg& dim);

// Needle's transpose axes: None, or a pair given as one sequence or as two ints.
std::optional<std::pair<std::int64_t, std::int64_t>> transpose_axes(
    const nb::args& dims, const std::optional<std::vector<std::int64_t>>& axes);

// A permutation given as one sequence or as several ints.
Axes axes_from_args(const nb::args& args, const char* op);

// The output of `op` (a built-in Op, or a Python object with compute() and gradient()) on `inputs`.
Tensor make_from_op(nb::handle op, const std::vector<Tensor>& inputs);
// The Python object standing for t's op (the Python op object itself for ops defined in Python), or None.
nb::object op_object(const Tensor& t);

// "Tensor([...], shape=(2, 3), dtype=float32, device=cpu(), requires_grad=True, op=add)".
std::string tensor_repr(const Tensor& t);

void bind_tensor(nb::module_& m);
void bind_autograd(nb::module_& m);
void bind_tensor_ops(nb::module_& m);

}  // namespace needle::python
