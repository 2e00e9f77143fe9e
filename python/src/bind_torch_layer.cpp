// needle.torch's most frequent Python calls, in C++. needle.torch.Tensor is a Python class over a Needle
// tensor (its `_t` slot): every op's result is wrapped in one, and the arithmetic operators, `sum()` and
// `backward()` run many times in every step of every model. Written in Python, the wrapper and the method's
// dispatch cost more than a small op itself (tiny_add and tiny_graph in BENCHMARKS.md); here they cost one C
// call. The class itself, and the general path of each method (promotion, broadcasting checks, arguments,
// PyTorch's error messages), stay in python/needle/torch/_tensor.py, which calls install() right after
// defining the class.
//
// Why the C API rather than nanobind functions: these methods are method descriptors of the class, as a
// built-in type's are, so `a + b` and `loss.backward()` reach them without a bound-method object or an
// overload dispatch; and the two slots are read and written where CPython keeps them, without an attribute
// lookup.
#include <Python.h>
#include <structmember.h>  // PyMemberDef: where a slot lies in an instance

#include <list>

#include "tensor_bindings.h"

namespace needle::python {

namespace {

// needle.torch.Tensor, where its two slots lie in an instance, and the general Python methods the fast ones
// hand other arguments to; set by install().
struct TorchTensorClass {
  nb::object type;
  Py_ssize_t core_offset = 0;      // of `_t`: the Needle tensor
  Py_ssize_t computed_offset = 0;  // of `_computed`: made by an op that records gradients (so not a leaf)
  nb::object general_sum;
  nb::object general_backward;
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

// The slot at `offset` of an instance of the class (or of a subclass: slots keep their offsets).
PyObject*& slot(PyObject* instance, Py_ssize_t offset) {
  return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(instance) + offset);
}

// Where CPython keeps slot `name` of `cls` in an instance: the offset its member descriptor reads.
Py_ssize_t slot_offset(nb::handle cls, const char* name) {
  nb::object descriptor = nb::steal(PyObject_GetAttrString(cls.ptr(), name));
  if (!descriptor.is_valid()) throw nb::python_error();
  NEEDLE_CHECK(Py_TYPE(descriptor.ptr()) == &PyMemberDescr_Type, TypeError,
               std::string("torch_install: ") + name + " must be a slot of the class (__slots__)");
  return reinterpret_cast<PyMemberDescrObject*>(descriptor.ptr())->d_member->offset;
}

bool is_torch_tensor(PyObject* x) {
  return PyObject_TypeCheck(x, reinterpret_cast<PyTypeObject*>(installed_class().type.ptr())) != 0;
}

// x._t of a needle.torch.Tensor `x` (the caller has checked its class).
Tensor core_of(PyObject* x) {
  PyObject* core = slot(x, installed_class().core_offset);
  if (core == nullptr) {  // never set: what reading the attribute says
    PyErr_SetString(PyExc_AttributeError, "'Tensor' object has no attribute '_t'");
    throw nb::python_error();
  }
  return nb::cast<Tensor>(nb::handle(core));
}

// x._t, with a TypeError naming `op` and `argument` when x is not a needle.torch.Tensor.
Tensor checked_core_of(nb::handle x, const char* op, const char* argument) {
  NEEDLE_CHECK(is_torch_tensor(x.ptr()), TypeError,
               std::string(op) + ": " + argument + " must be a torch.Tensor, got " + Py_TYPE(x.ptr())->tp_name);
  return core_of(x.ptr());
}

// A needle.torch.Tensor over `core`, a Python object of Needle's Tensor: the class's own allocation (which
// zeroes the slots), then its two slots.
nb::object wrap_object(nb::handle core, bool computed) {
  const TorchTensorClass& cls = installed_class();
  auto* type = reinterpret_cast<PyTypeObject*>(cls.type.ptr());
  nb::object result = nb::steal(type->tp_alloc(type, 0));
  if (!result.is_valid()) throw nb::python_error();
  slot(result.ptr(), cls.core_offset) = Py_NewRef(core.ptr());
  slot(result.ptr(), cls.computed_offset) = Py_NewRef(computed ? Py_True : Py_False);
  return result;
}

nb::object wrap_tensor(Tensor t) {
  const bool computed = !t.is_leaf();
  return wrap_object(nb::cast(std::move(t)), computed);
}

// Runs a method's body for the C API: its result as a new reference, or nullptr with the Python error set
// (the exception classes nanobind's functions would raise for the same C++ exceptions).
template <typename Body>
PyObject* guarded(Body&& body) noexcept {
  try {
    return body().release().ptr();
  } catch (nb::python_error& e) {
    e.restore();
  } catch (const Error& e) {
    set_python_error(e);
  } catch (const nb::cast_error&) {
    PyErr_SetString(PyExc_TypeError, "needle.torch: an argument has the wrong type");
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
  return nullptr;
}

// fn(self, *args, **kwargs) for a method called through the vectorcall protocol.
nb::object call_general(const nb::object& fn, PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                        PyObject* kwnames) {
  const Py_ssize_t keywords = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  std::vector<PyObject*> all(static_cast<std::size_t>(1 + nargs + keywords));
  all[0] = self;
  std::copy(args, args + nargs + keywords, all.begin() + 1);
  nb::object result =
      nb::steal(PyObject_Vectorcall(fn.ptr(), all.data(), static_cast<std::size_t>(1 + nargs), kwnames));
  if (!result.is_valid()) throw nb::python_error();
  return result;
}

using TensorOp = Tensor (*)(const Tensor&, const Tensor&);
using ScalarOp = Tensor (*)(const Tensor&, const Scalar&);

// The common cases of an arithmetic operator: two tensors of one dtype, or a tensor and a Python float or int
// (Needle's scalar ops promote as PyTorch does with a Python number). Anything else goes to the general
// method named `general` (self.add(other), ...), written in Python.
template <TensorOp tensor_op, ScalarOp scalar_op, const char* general>
PyObject* operator_method(PyObject* self, PyObject* other) noexcept {
  return guarded([&]() -> nb::object {
    const Tensor a = core_of(self);
    if (is_torch_tensor(other)) {
      const Tensor b = core_of(other);
      if (a.dtype() == b.dtype()) return wrap_tensor(tensor_op(a, b));
    }
    if constexpr (scalar_op != nullptr) {
      if (PyFloat_CheckExact(other)) return wrap_tensor(scalar_op(a, Scalar(PyFloat_AS_DOUBLE(other))));
      if (PyLong_CheckExact(other)) {  // exactly int: bool takes the general path
        int overflow = 0;
        const long long value = PyLong_AsLongLongAndOverflow(other, &overflow);
        if (overflow == 0 && !(value == -1 && PyErr_Occurred() != nullptr)) {
          return wrap_tensor(scalar_op(a, Scalar(static_cast<std::int64_t>(value))));
        }
        PyErr_Clear();  // beyond int64: the general path says so in PyTorch's words
      }
    }
    return nb::handle(self).attr(general)(nb::handle(other));
  });
}

// x.sum(): the sum of every element of a floating-point tensor. Arguments, and integer tensors (which sum
// to int64), go to the general method.
PyObject* sum_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
  return guarded([&]() -> nb::object {
    if (nargs == 0 && kwnames == nullptr) {
      const Tensor a = core_of(self);
      if (a.dtype() == DType::Float32 || a.dtype() == DType::Float64) return wrap_tensor(ops::summation(a));
    }
    return call_general(installed_class().general_sum, self, args, nargs, kwnames);
  });
}

// x.backward() from a one-element tensor that requires grad. Arguments, and the cases that raise PyTorch's
// errors, go to the general method.
PyObject* backward_method(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) noexcept {
  return guarded([&]() -> nb::object {
    if (nargs == 0 && kwnames == nullptr) {
      const Tensor a = core_of(self);
      if (a.requires_grad() && a.size() == 1) {
        a.backward(Tensor(), /*retain_graph=*/false, /*create_graph=*/false);
        return nb::none();
      }
    }
    return call_general(installed_class().general_backward, self, args, nargs, kwnames);
  });
}

// A C function of either calling convention as the PyCFunction a PyMethodDef stores (through a function type
// without parameters, the cast C compilers accept without a warning).
template <typename Function>
PyCFunction as_method(Function* fn) {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(fn));
}

constexpr char kAdd[] = "add";
constexpr char kSub[] = "sub";
constexpr char kMul[] = "mul";
constexpr char kDiv[] = "div";

// The methods install() gives the class. CPython keeps pointers to these records for the class's lifetime.
PyMethodDef operator_methods[] = {
    {"__add__", as_method(&operator_method<&ops::add, &ops::add_scalar, kAdd>), METH_O, "self + other"},
    {"__radd__", as_method(&operator_method<&ops::add, &ops::add_scalar, kAdd>), METH_O, "other + self"},
    {"__sub__", as_method(&operator_method<&ops::sub, nullptr, kSub>), METH_O, "self - other"},
    {"__mul__", as_method(&operator_method<&ops::multiply, &ops::mul_scalar, kMul>), METH_O, "self * other"},
    {"__rmul__", as_method(&operator_method<&ops::multiply, &ops::mul_scalar, kMul>), METH_O, "other * self"},
    {"__truediv__", as_method(&operator_method<&ops::divide, &ops::divide_scalar, kDiv>), METH_O, "self / other"},
};
// Their docstrings are the general methods', set by install().
PyMethodDef sum_def = {"sum", as_method(&sum_method), METH_FASTCALL | METH_KEYWORDS, nullptr};
PyMethodDef backward_def = {"backward", as_method(&backward_method), METH_FASTCALL | METH_KEYWORDS, nullptr};

void set_method(nb::handle cls, PyMethodDef& def) {
  nb::object method = nb::steal(PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), &def));
  if (!method.is_valid()) throw nb::python_error();
  nb::setattr(cls, def.ml_name, method);
}

// The Python function `cls.name` that a fast method replaces, with its docstring kept for the fast one.
nb::object general_method(nb::handle cls, PyMethodDef& def) {
  nb::object fn = nb::getattr(cls, def.ml_name);
  NEEDLE_CHECK(PyFunction_Check(fn.ptr()), RuntimeError,
               std::string("torch_install: Tensor.") + def.ml_name + " must be a Python function (installed twice?)");
  nb::object doc = fn.attr("__doc__");
  if (!doc.is_none()) {
    static auto* docs = new std::list<std::string>();  // never freed, as def is not; a list keeps c_str() valid
    docs->push_back(nb::cast<std::string>(doc));
    def.ml_doc = docs->back().c_str();
  }
  return fn;
}

}  // namespace

void bind_torch_layer(nb::module_& m) {
  m.def(
      "torch_install",
      [](nb::type_object cls) {
        TorchTensorClass& installed = torch_class();
        NEEDLE_CHECK(!installed.type.is_valid(), RuntimeError, "torch_install: needle.torch's Tensor is installed");
        const Py_ssize_t core_offset = slot_offset(cls, "_t");
        const Py_ssize_t computed_offset = slot_offset(cls, "_computed");
        nb::object general_sum = general_method(cls, sum_def);
        nb::object general_backward = general_method(cls, backward_def);
        for (PyMethodDef& def : operator_methods) set_method(cls, def);
        set_method(cls, sum_def);
        set_method(cls, backward_def);
        installed.core_offset = core_offset;
        installed.computed_offset = computed_offset;
        installed.general_sum = std::move(general_sum);
        installed.general_backward = std::move(general_backward);
        installed.type = cls;
      },
      nb::arg("cls"),
      "Makes `cls` (needle.torch.Tensor, with slots _t and _computed) the class torch_wrap creates, and gives it "
      "the C++ common cases of +, -, * and / (operands they do not cover go to cls.add, cls.sub, cls.mul and "
      "cls.div), of sum() and of backward() (calls with arguments go to the Python methods they replace).");
  m.def(
      "torch_conv2d",
      [](nb::handle input, nb::handle weight, nb::handle bias, std::int64_t stride, std::int64_t padding) {
        // PyTorch's NCHW input and OIHW weight are views of what Needle's convolution reads, NHWC and HWIO.
        const Tensor x = checked_core_of(input, "conv2d", "input");
        const Tensor w = checked_core_of(weight, "conv2d", "weight");
        Tensor out = ops::conv(ops::permute(x, {0, 2, 3, 1}), ops::permute(w, {2, 3, 1, 0}), stride, padding);
        if (!bias.is_none()) out = ops::add(out, checked_core_of(bias, "conv2d", "bias"));
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
