// needle.optim's C++ side: the optimizers (updates in C++, in place), the learning-rate schedulers and
// gradient clipping (include/needle/optim).
#include <nanobind/stl/map.h>

#include <memory>
#include <vector>

#include "needle/optim/clip_grad.h"
#include "needle/optim/lr_scheduler.h"
#include "needle/optim/optimizer.h"
#include "tensor_bindings.h"

namespace needle::python {

namespace {

using optim::LRScheduler;
using optim::Optimizer;

void bind_optimizers(nb::module_& m) {
  nb::class_<Optimizer>(m, "Optimizer", "A C++ optimizer: updates its parameters in place from their gradients.")
      .def("step", &Optimizer::step, "One update of every parameter that has a gradient.")
      .def("reset_grad", &Optimizer::reset_grad, "Drops every parameter's gradient.")
      .def("zero_grad", &Optimizer::zero_grad, "reset_grad().")
      .def_prop_rw("lr", &Optimizer::lr, &Optimizer::set_lr, "The learning rate (ValueError when set negative).")
      .def_prop_ro("params", &Optimizer::params, "The parameters, in the order given.")
      .def("state_dict", &Optimizer::state_dict,
           "The state a resumed run needs, as NDArrays by name: 'lr', 'param_count' and the buffers "
           "'state.<index>.<field>' (plus 'step' for Adam and AdamW).")
      .def("load_state_dict", &Optimizer::load_state_dict, nb::arg("state"),
           "Restores a state_dict() of the same kind of optimizer over parameters of the same count, shapes and "
           "dtypes; ValueError, changing nothing, when it does not match.")
      .def_prop_ro("name", [](const Optimizer& o) { return std::string(o.name()); });
  nb::class_<optim::SGD, Optimizer>(m, "SGD")
      .def(nb::init<std::vector<Tensor>, double, double, double>(), nb::arg("params"), nb::arg("lr") = 0.01,
           nb::arg("momentum") = 0.0, nb::arg("weight_decay") = 0.0,
           "Needle's SGD: u <- momentum u + (1 - momentum) (grad + weight_decay p); p <- p - lr u.")
      .def_prop_rw("momentum", &optim::SGD::momentum, &optim::SGD::set_momentum, "In [0, 1).")
      .def_prop_rw("weight_decay", &optim::SGD::weight_decay, &optim::SGD::set_weight_decay, ">= 0.");
  nb::class_<optim::Adam, Optimizer>(m, "Adam")
      .def(nb::init<std::vector<Tensor>, double, double, double, double, double>(), nb::arg("params"),
           nb::arg("lr") = 0.01, nb::arg("beta1") = 0.9, nb::arg("beta2") = 0.999, nb::arg("eps") = 1e-8,
           nb::arg("weight_decay") = 0.0, "Needle's Adam with bias correction (weight decay added to the gradient).")
      .def_prop_ro("steps", &optim::Adam::steps, "Calls to step() so far.")
      .def_prop_rw("beta1", &optim::Adam::beta1, &optim::Adam::set_beta1, "In [0, 1).")
      .def_prop_rw("beta2", &optim::Adam::beta2, &optim::Adam::set_beta2, "In [0, 1).")
      .def_prop_rw("eps", &optim::Adam::eps, &optim::Adam::set_eps, ">= 0.")
      .def_prop_rw("weight_decay", &optim::Adam::weight_decay, &optim::Adam::set_weight_decay, ">= 0.");
  nb::class_<optim::AdamW, optim::Adam>(m, "AdamW")
      .def(nb::init<std::vector<Tensor>, double, double, double, double, double>(), nb::arg("params"),
           nb::arg("lr") = 0.01, nb::arg("beta1") = 0.9, nb::arg("beta2") = 0.999, nb::arg("eps") = 1e-8,
           nb::arg("weight_decay") = 0.01, "Adam with decoupled weight decay (PyTorch's AdamW).");
}

void bind_schedulers(nb::module_& m) {
  nb::class_<LRScheduler>(m, "LRScheduler",
                          "A learning-rate schedule driving an optimizer: call step() after optimizer.step().")
      .def("step", &LRScheduler::step, "Advances the schedule by one and sets the optimizer's learning rate.")
      .def("get_lr", &LRScheduler::get_lr, "The learning rate of the current step.")
      .def("lr_at", &LRScheduler::lr_at, nb::arg("epoch"), "The learning rate `epoch` steps after construction.")
      .def("state_dict", &LRScheduler::state_dict, "'last_epoch' and 'base_lr' as 0-d NDArrays.")
      .def("load_state_dict", &LRScheduler::load_state_dict, nb::arg("state"),
           "Restores a state_dict() and sets the optimizer's learning rate to that step's; ValueError, changing "
           "nothing, when it does not match.")
      .def_prop_ro("last_epoch", &LRScheduler::last_epoch)
      .def_prop_ro("base_lr", &LRScheduler::base_lr);
  // The schedulers hold a reference to their optimizer: keep it alive as long as they live.
  nb::class_<optim::StepLR, LRScheduler>(m, "StepLR")
      .def(nb::init<Optimizer&, std::int64_t, double>(), nb::arg("optimizer"), nb::arg("step_size"),
           nb::arg("gamma") = 0.1, nb::keep_alive<1, 2>(), "base_lr * gamma ** (epoch // step_size).");
  nb::class_<optim::CosineAnnealingLR, LRScheduler>(m, "CosineAnnealingLR")
      .def(nb::init<Optimizer&, std::int64_t, double>(), nb::arg("optimizer"), nb::arg("T_max"),
           nb::arg("eta_min") = 0.0, nb::keep_alive<1, 2>(),
           "eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2.");
  nb::class_<optim::LinearWarmup, LRScheduler>(m, "LinearWarmup")
      .def(nb::init<Optimizer&, std::int64_t, double, std::shared_ptr<const LRScheduler>>(), nb::arg("optimizer"),
           nb::arg("warmup_steps"), nb::arg("start_factor") = 1.0 / 3.0, nb::arg("then") = nb::none(),
           nb::keep_alive<1, 2>(),
           "base_lr * (start_factor + (1 - start_factor) * epoch / warmup_steps) during the warm-up, then base_lr or "
           "the schedule `then` (counting from the end of the warm-up).");
  m.def("clip_grad_norm", &optim::clip_grad_norm, nb::arg("params"), nb::arg("max_norm"),
        "Scales the gradients so that their global 2-norm is at most max_norm; returns the norm before clipping.");
}

}  // namespace

void bind_optim(nb::module_& m) {
  bind_optimizers(m);
  bind_schedulers(m);
}

}  // namespace needle::python
