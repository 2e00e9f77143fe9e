// The compiled core of the `needle` Python package: NDArray, devices, the array functions, Tensor, autograd,
// nn, optim, data and checkpoints.
#include "tensor_bindings.h"

namespace needle::python {

namespace {

// needle._core.ArgumentError, made by bind_errors().
PyObject* argument_error = nullptr;

}  // namespace

void set_python_error(const Error& error) {
  switch (error.kind()) {
    case ErrorKind::Value:
      PyErr_SetString(argument_error != nullptr ? argument_error : PyExc_ValueError, error.what());
      break;
    case ErrorKind::Type:
      PyErr_SetString(PyExc_TypeError, error.what());
      break;
    case ErrorKind::Index:
      PyErr_SetString(PyExc_IndexError, error.what());
      break;
    case ErrorKind::Runtime:
      PyErr_SetString(PyExc_RuntimeError, error.what());
      break;
    case ErrorKind::Memory:
      PyErr_SetString(PyExc_MemoryError, error.what());
      break;
  }
}

void bind_errors(nb::module_& m) {
  // A wrong shape or value is a ValueError in Needle's API and a RuntimeError in PyTorch's, for the same
  // mistake. One class that is both lets code written for either API (needle.torch included) catch it, with no
  // translation layer between the ops and Python.
  nb::object bases = nb::make_tuple(nb::handle(PyExc_ValueError), nb::handle(PyExc_RuntimeError));
  argument_error = PyErr_NewExceptionWithDoc(
      "needle._core.ArgumentError",
      "An op's argument has a wrong shape or value: a ValueError, and also a RuntimeError, the class PyTorch raises "
      "for the same mistake.",
      bases.ptr(), nullptr);
  if (argument_error == nullptr) throw nb::python_error();
  m.attr("ArgumentError") = nb::handle(argument_error);
  // needle::Error carries the Python exception type it stands for.
  nb::register_exception_translator([](const std::exception_ptr& error, void* /*payload*/) {
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      set_python_error(e);
    }
  });
}

}  // namespace needle::python

NB_MODULE(_core, m) {
  using namespace needle::python;
  m.doc() =
      "Needle's compiled core: NDArray, devices, the array functions, Tensor, autograd, the ops, nn, optim, data "
      "and checkpoints.";
  init_numpy();
  // The autograd graph lives in C++ and holds Python objects (tensors created in Python, ops defined in
  // Python); a graph still referenced from a module's globals at exit forms a cycle the garbage collector
  // cannot see, so some instances are legitimately alive when the interpreter finalizes.
  nb::set_leak_warnings(false);
  bind_errors(m);
  bind_device(m);
  bind_ndarray(m);
  bind_array_ops(m);
  bind_random(m);
  bind_init(m);
  bind_tensor(m);
  bind_autograd(m);
  bind_tensor_ops(m);
  bind_nn(m);
  bind_optim(m);
  bind_data(m);
  bind_io(m);
  bind_debug(m);
  bind_threads(m);
  bind_dist(m);
  bind_torch_layer(m);
}
