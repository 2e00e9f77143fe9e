// Autograd in Python: the built-in Op objects, ops defined in Python (needle.autograd.TensorOp) joining the
// C++ graph, grad mode and the topological order.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tensor_bindings.h"

namespace needle::python {

namespace {

// An op written in Python: any object with compute(*arrays) -> NDArray and gradient(out_grad, node) ->
// Tensor | tuple of (Tensor | None). Its output joins the C++ graph like a built-in op's, and the engine
// calls back into Python for the gradient.
class PythonOp final : public SingleOutputOp {
 public:
  explicit PythonOp(nb::object op) : op_(std::move(op)) {}
  PythonOp(const PythonOp&) = delete;
  PythonOp& operator=(const PythonOp&) = delete;
  PythonOp(PythonOp&&) = delete;
  PythonOp& operator=(PythonOp&&) = delete;
  ~PythonOp() override {
    if (Py_IsInitialized() == 0) {
      (void)op_.release();  // the interpreter is gone: nothing left to release
      return;
    }
    const nb::gil_scoped_acquire gil;
    op_.reset();
  }

  [[nodiscard]] const nb::object& object() const { return op_; }

  [[nodiscard]] std::string name() const override {
    const nb::gil_scoped_acquire gil;
    const nb::object name = nb::getattr(op_, "name", nb::none());
    if (nb::isinstance<nb::str>(name)) return nb::cast<std::string>(name);
    return nb::cast<std::string>(nb::type_name(op_.type()));
  }

  [[nodiscard]] NDArray compute(const std::vector<NDArray>& inputs) const override {
    const nb::gil_scoped_acquire gil;
    const nb::object compute = op_.attr("compute");
    const nb::object args = nb::steal(PyTuple_New(static_cast<Py_ssize_t>(inputs.size())));
    if (!args.is_valid()) throw nb::python_error();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      PyTuple_SET_ITEM(args.ptr(), static_cast<Py_ssize_t>(i), nb::cast(inputs[i]).release().ptr());
    }
    const nb::object result = nb::steal(PyObject_Call(compute.ptr(), args.ptr(), nullptr));
    if (!result.is_valid()) throw nb::python_error();
    if (nb::isinstance<NDArray>(result)) return nb::cast<NDArray>(result);
    // NumPy arrays and scalars: onto the inputs' device.
    return to_ndarray(result, inputs.empty() ? default_device() : inputs.front().device(), std::nullopt);
  }

  // Needle's gradient(out_grad, node) has no mask: a Python op computes every input's gradient, and the
  // engine drops those no input needs.
  [[nodiscard]] std::vector<Tensor> gradient(const Tensor& out_grad, const Tensor& node,
                                             const NeedsGrad& /*needs_grad*/) const override {
    const nb::gil_scoped_acquire gil;
    const nb::object result = op_.attr("gradient")(out_grad, node);
    return gradients_from_python(result, name());
  }

  // Tensor -> one gradient; a sequence of Tensor / None -> one each (None: no gradient).
  static std::vector<Tensor> gradients_from_python(const nb::handle result, const std::string& op) {
    if (nb::isinstance<TensorImpl>(result)) return {nb::cast<Tensor>(result)};
    NEEDLE_CHECK(!result.is_none() && nb::hasattr(result, "__iter__"), TypeError, op,
                 ".gradient: expected a Tensor or a tuple of Tensors (or None), got ",
                 nb::cast<std::string>(nb::type_name(result.type())));
    std::vector<Tensor> grads;
    for (const nb::handle item : result) {
      if (item.is_none()) {
        grads.emplace_back();
        continue;
      }
      NEEDLE_CHECK(nb::isinstance<TensorImpl>(item), TypeError, op,
                   ".gradient: expected Tensors or None in the returned tuple, got ",
                   nb::cast<std::string>(nb::type_name(item.type())));
      grads.push_back(nb::cast<Tensor>(item));
    }
    return grads;
  }

 private:
  nb::object op_;
};

// Op.gradient(out_grad, node) from Python for an op with one output: every input that requires a gradient
// gets one.
std::vector<Tensor> gradient_of(const Op& op, const Tensor& out_grad, const Tensor& node) {
  NEEDLE_CHECK(op.num_outputs() == 1, TypeError, op.name(), ".gradient: the op has ", op.num_outputs(),
               " outputs, whose gradients it computes together; call backward() on a result instead");
  NeedsGrad needs_grad;
  for (const Tensor& input : node.inputs()) needs_grad.push_back(input.requires_grad());
  return op.gradient_outputs({out_grad}, {node}, node.inputs(), needs_grad);
}

nb::tuple to_python_tuple(const std::vector<Tensor>& tensors) {
  nb::list items;
  for (const Tensor& t : tensors) items.append(nb::cast(t));
  return nb::tuple(items);
}

}  // namespace

Tensor make_from_op(nb::handle op, const std::vector<Tensor>& inputs) {
  // A built-in op (a C++ instance), or a Python subclass of Op (needle.autograd.TensorOp) whose C++ part is
  // never constructed: the subclass implements compute and gradient in Python.
  if (nb::isinstance<Op>(op) && nb::inst_ready(op)) return Tensor::from_op(nb::cast<std::shared_ptr<Op>>(op), inputs);
  NEEDLE_CHECK(nb::hasattr(op, "compute") && nb::hasattr(op, "gradient"), TypeError,
               "make_from_op: an op needs compute(*arrays) and gradient(out_grad, node) methods (got ",
               nb::cast<std::string>(nb::type_name(op.type())), ")");
  return Tensor::from_op(std::make_shared<const PythonOp>(nb::borrow(op)), inputs);
}

nb::object op_object(const Tensor& t) {
  const std::shared_ptr<const Op>& op = t.op();
  if (!op) return nb::none();
  if (const auto* python_op = dynamic_cast<const PythonOp*>(op.get())) return python_op->object();
  return nb::cast(op);
}

void bind_autograd(nb::module_& m) {
  nb::class_<Op>(m, "Op",
                 "A differentiable operation built into Needle's C++ core (the `op` of tensors it produced). "
                 "Define new ops in Python by subclassing needle.autograd.TensorOp (which implements compute and "
                 "gradient in Python).")
      .def_prop_ro("name", &Op::name, "Short name: \"add\", \"matmul\", ...")
      .def(
          "compute",
          [](const Op& op, const nb::args& arrays) {
            std::vector<NDArray> inputs;
            inputs.reserve(arrays.size());
            for (const nb::handle array : arrays) inputs.push_back(nb::cast<NDArray>(array));
            std::vector<NDArray> outputs = op.compute_outputs(inputs);
            if (outputs.size() == 1) return nb::cast(std::move(outputs.front()));
            nb::list items;
            for (NDArray& output : outputs) items.append(nb::cast(std::move(output)));
            return nb::object(nb::tuple(items));
          },
          nb::sig("def compute(self, *arrays: NDArray) -> NDArray | tuple[NDArray, ...]"),
          "The forward computation on arrays (a tuple for an op with several outputs).")
      .def(
          "gradient",
          [](const Op& op, const Tensor& out_grad, const Tensor& node) -> nb::object {
            const std::vector<Tensor> grads = gradient_of(op, out_grad, node);
            if (grads.size() == 1) return nb::cast(grads.front());
            return to_python_tuple(grads);
          },
          nb::arg("out_grad"), nb::arg("node"),
          nb::sig("def gradient(self, out_grad: Tensor, node: Tensor) -> Tensor | tuple[Tensor | None, ...] | None"),
          "The gradient of each input given the output's gradient: a Tensor for a one-input op, else a tuple "
          "(None where an input gets no gradient).")
      .def(
          "gradient_as_tuple",
          [](const Op& op, const Tensor& out_grad, const Tensor& node) {
            return to_python_tuple(gradient_of(op, out_grad, node));
          },
          nb::arg("out_grad"), nb::arg("node"),
          nb::sig("def gradient_as_tuple(self, out_grad: Tensor, node: Tensor) -> tuple[Tensor | None, ...]"),
          "gradient() as a tuple with one entry per input.")
      .def(
          "__call__",
          [](const std::shared_ptr<Op>& op, const nb::args& inputs) {
            return Tensor::from_op(op, nb::cast<std::vector<Tensor>>(inputs));
          },
          nb::sig("def __call__(self, *inputs: Tensor) -> Tensor"), "Applies this op to new inputs.")
      .def("__repr__", [](const Op& op) { return str("<needle op '", op.name(), "'>"); });

  m.def("grad_enabled", &grad_enabled, "True unless graph recording is disabled on this thread (no_grad).");
  m.def("set_grad_enabled", &set_grad_enabled, nb::arg("enabled"), "Turns graph recording on or off for this thread.");
  m.def("topological_order", &autograd::topological_order, nb::arg("outputs"),
        "Every tensor reachable from `outputs` through op inputs, each after all of its inputs (Needle's "
        "find_topo_sort).");
  m.def("live_tensor_count", &TensorImpl::live_count,
        "Number of tensors alive in this process (Needle's autograd.TENSOR_COUNTER).");
}

}  // namespace needle::python
