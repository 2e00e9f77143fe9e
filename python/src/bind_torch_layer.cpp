// needle.torch's most frequent Python calls, in C++. needle.torch.Tensor is a Python class over a Needle
// tensor (its `_t` slot): every op's result is wrapped in one, and the arithmetic operators run many times in
// every step of every model. Written in Python, the wrapper and the operator's dispatch cost more than a small
// op itself (tiny_add in BENCHMARKS.md); here they cost a C++ call. The class itself, and the general path of
// each operator (promotion, broadcasting checks, PyTorch's error messages), stay in
// python/needle/torch/_tensor.py, which calls install() right after defining the class.
#include "tensor_bindings.h"

namespace needle::python {

namespace {

// needle.torch.Tensor and the names of its two slots, set by install().
struct TorchTensorClass {
  nb::object type;
  nb::object t_name;         // "_t": the Needle tensor
  nb::object computed_name;  // "_computed": made by an op that records gradients (so not a leaf)
};

TorchTensorClass& torch_class() {
  // Never destroyed: its references must not be released after the interpreter has finalized.
  static auto* cls = new TorchTensorClass();
  return *cls;
}

const TorchTensorClass& installed_class() {
  const TorchTensorClass& cls = torch_class();
  NEEDLE_CHECK(cls.type.is_valid(), RuntimeError, "needle.torch's Tensor class is not installed");
  return cls;
}

// A needle.torch.Tensor over `core`, a Python object of Needle's Tensor (what _tensor.py's _wrap did in
// Python): the class's own allocation, then its two slots.
nb::object wrap_object(nb::handle core, bool computed) {
  const TorchTensorClass& cls = installed_class();
  auto* type = reinterpret_cast<PyTypeObject*>(cls.type.ptr());
  nb::object result = nb::steal(type->tp_alloc(type, 0));
  if (!result.is_valid()) throw nb::python_error();
  if (PyObject_SetAttr(result.ptr(), cls.t_name.ptr(), core.ptr()) != 0 ||
      PyObject_SetAttr(result.ptr(), cls.computed_name.ptr(), computed ? Py_True : Py_False) != 0) {
    throw nb::python_error();
  }
  return result;
}

nb::object wrap_tensor(Tensor t) {
  const bool computed = !t.is_leaf();
  return wrap_object(nb::cast(std::move(t)), computed);
}

// x._t of a needle.torch.Tensor.
nb::object core_of(nb::handle x) {
  nb::object core = nb::steal(PyObject_GetAttr(x.ptr(), installed_class().t_name.ptr()));
  if (!core.is_valid()) throw nb::python_error();
  return core;
}

using TensorOp = Tensor (*)(const Tensor&, const Tensor&);
using ScalarOp = Tensor (*)(const Tensor&, const Scalar&);

// The common cases of an arithmetic operator: two tensors of one dtype, or a tensor and a Python float or int
// (Needle's scalar ops promote as PyTorch does with a Python number). Anything else goes to the general
// method named `general` (self.add(other), ...), written in Python.
nb::object binary(nb::handle self, nb::handle other, TensorOp tensor_op, ScalarOp scalar_op, const char* general) {
  const nb::object self_core = core_of(self);
  const auto a = nb::cast<Tensor>(self_core);
  if (PyObject_TypeCheck(other.ptr(), reinterpret_cast<PyTypeObject*>(installed_class().type.ptr())) != 0) {
    const auto b = nb::cast<Tensor>(core_of(other));
    if (a.dtype() == b.dtype()) return wrap_tensor(tensor_op(a, b));
  } else if (scalar_op != nullptr && PyFloat_CheckExact(other.ptr())) {
    return wrap_tensor(scalar_op(a, Scalar(PyFloat_AS_DOUBLE(other.ptr()))));
  } else if (scalar_op != nullptr && PyLong_CheckExact(other.ptr())) {  // exactly int: bool takes the general path
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(other.ptr(), &overflow);
    if (overflow == 0 && !(value == -1 && PyErr_Occurred() != nullptr)) {
      return wrap_tensor(scalar_op(a, Scalar(static_cast<std::int64_t>(value))));
    }
    PyErr_Clear();  // beyond int64: the general path says so in PyTorch's words
  }
  return self.attr(general)(other);
}

// Sets `cls.name` to `fn` as a method (bound to the instance like a function defined in the class body).
void set_method(nb::handle cls, const char* name, const nb::object& fn) {
  nb::object method = nb::steal(PyInstanceMethod_New(fn.ptr()));
  if (!method.is_valid()) throw nb::python_error();
  nb::setattr(cls, name, method);
}

}  // namespace

void bind_torch_layer(nb::module_& m) {
  m.def(
      "torch_install",
      [](nb::type_object cls) {
        TorchTensorClass& installed = torch_class();
        installed.type = cls;
        installed.t_name = nb::str("_t");
        installed.computed_name = nb::str("_computed");
        const auto op = [](TensorOp tensor_op, ScalarOp scalar_op, const char* general) {
          return nb::cpp_function([tensor_op, scalar_op, general](nb::handle self, nb::handle other) {
            return binary(self, other, tensor_op, scalar_op, general);
          });
        };
        set_method(cls, "__add__", op(&ops::add, &ops::add_scalar, "add"));
        set_method(cls, "__radd__", op(&ops::add, &ops::add_scalar, "add"));
        set_method(cls, "__sub__", op(&ops::sub, nullptr, "sub"));
        set_method(cls, "__mul__", op(&ops::multiply, &ops::mul_scalar, "mul"));
        set_method(cls, "__rmul__", op(&ops::multiply, &ops::mul_scalar, "mul"));
        set_method(cls, "__truediv__", op(&ops::divide, &ops::divide_scalar, "div"));
      },
      nb::arg("cls"),
      "Makes `cls` (needle.torch.Tensor) the class torch_wrap creates, and gives it the C++ common cases of +, -, "
      "* and / (operands they do not cover go to cls.add, cls.sub, cls.mul and cls.div).");
  m.def(
      "torch_conv2d",
      [](nb::handle input, nb::handle weight, nb::handle bias, std::int64_t stride, std::int64_t padding) {
        // PyTorch's NCHW input and OIHW weight are views of what Needle's convolution reads, NHWC and HWIO.
        const auto x = nb::cast<Tensor>(core_of(input));
        const auto w = nb::cast<Tensor>(core_of(weight));
        Tensor out = ops::conv(ops::permute(x, {0, 2, 3, 1}), ops::permute(w, {2, 3, 1, 0}), stride, padding);
        if (!bias.is_none()) out = ops::add(out, nb::cast<Tensor>(core_of(bias)));
        return wrap_tensor(ops::permute(out, {0, 3, 1, 2}));
      },
      nb::arg("input"), nb::arg("weight"), nb::arg("bias").none(), nb::arg("stride"), nb::arg("padding"),
      "needle.torch's Conv2d in its common case (one group, no dilation, square kernel, stride and padding): "
      "the torch.Tensor input (N, C, H, W) convolved with weight (C_out, C, k, k), plus bias (C_out) or None. "
      "The layer checks the shapes first.");
  m.def(
      "torch_wrap", [](nb::handle t) { return wrap_object(t, !nb::cast<Tensor>(t).is_leaf()); }, nb::arg("t"),
      "A needle.torch.Tensor over Needle tensor `t` (no copy).");
}

}  // namespace needle::python
