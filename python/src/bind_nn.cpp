// needle.nn's C++ side: the Module base (parameters, buffers, modes, state dicts, device moves) and every
// layer of include/needle/nn/layers.h with its constructor options and call signature. The Python package
// (python/needle/nn) wraps these objects; the layers' math runs here, in C++.
#include <nanobind/stl/map.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "needle/nn/layers.h"
#include "needle/nn/module.h"
#include "needle/nn/quantized.h"
#include "tensor_bindings.h"

namespace needle::python {

namespace {

using nn::Module;

// A layer's parameter `name` as a Python property: reading gives the tensor the layer computes with (None
// when the layer has none, e.g. no bias); assigning replaces it (Module::set_parameter checks the shape,
// dtype and device), as course code does with `cell.W_ih = Tensor(...)`.
auto parameter_getter(const char* name) {
  return [name](const Module& layer) { return layer.optional_parameter(name); };
}
auto parameter_setter(const char* name) {
  return [name](Module& layer, const Tensor& value) { layer.set_parameter(name, value); };
}
// The same for a buffer (BatchNorm's running statistics).
auto buffer_getter(const char* name) {
  return [name](const Module& layer) { return layer.buffer(name); };
}
auto buffer_setter(const char* name) {
  return [name](Module& layer, const Tensor& value) { layer.set_buffer(name, value); };
}

DType float_dtype(const std::optional<DTypeLike>& dtype) { return to_dtype(dtype).value_or(kDefaultFloat); }

// An optional Tensor argument: None means "undefined" (zeros for recurrent states).
Tensor or_undefined(const std::optional<Tensor>& t) { return t.value_or(Tensor()); }

// The Python object of `t` as an instance of `cls` (a subclass of Tensor, e.g. nn.Parameter): the object
// that already stands for it when there is one, else a new `cls` instance referring to the same C++
// tensor (and keeping it alive), which every later conversion of that tensor returns while it lives.
nb::object adopt_tensor(const Tensor& t, nb::handle cls) {
  TensorImpl* ptr = t.impl().get();
  nb::object existing = nb::find(ptr);
  if (existing.is_valid() && !existing.is_none()) return existing;
  nb::object obj = nb::inst_reference(cls, ptr);
  nb::detail::shared_from_cpp(std::shared_ptr<void>(t.impl()), obj.ptr());
  return obj;
}

nb::list adopt_parameters(const Module& module, nb::handle cls) {
  const nb::handle tensor_type = nb::type<TensorImpl>();
  NEEDLE_CHECK(PyType_Check(cls.ptr()) != 0 && PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(cls.ptr()),
                                                                reinterpret_cast<PyTypeObject*>(tensor_type.ptr())),
               TypeError, "Module.adopt_parameters: expected a subclass of Tensor");
  nb::list out;
  for (const auto& [name, t] : module.named_parameters()) out.append(nb::make_tuple(name, adopt_tensor(t, cls)));
  return out;
}

nb::typed<nb::dict, nb::str, NDArray> state_dict(const Module& module) {
  nb::typed<nb::dict, nb::str, NDArray> out;
  for (const auto& [name, value] : module.state_dict()) out[nb::str(name.c_str())] = nb::cast(value);
  return out;
}

// Moves a tensor's value (and gradient) to `device` inside the same TensorImpl, so every handle to it,
// and its Python object, stays valid (Module.to for parameters held by Python modules).
void move_tensor(const Tensor& t, const Device& device) {
  TensorImpl* impl = t.impl().get();
  impl->value = impl->value.to(device);
  if (impl->grad != nullptr) impl->grad->value = impl->grad->value.to(device);
}

void bind_module(nb::module_& m) {
  nb::class_<Module>(m, "Module",
                     "A C++ module (needle::nn::Module): parameters, buffers and child modules with a forward "
                     "computation. needle.nn's layers wrap these objects.")
      .def_prop_ro("name", &Module::name, "The layer's name (\"Linear\", ...).")
      .def(
          "forward", [](Module& self, const Tensor& x) { return self.forward(x); }, nb::arg("x"),
          "The computation of a module with one input.")
      .def(
          "__call__", [](Module& self, const Tensor& x) { return self.forward(x); }, nb::arg("x"),
          // Layers with several inputs or outputs redefine __call__ with their own signature.
          nb::sig("def __call__(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any"), "forward(x).")
      .def("named_parameters", &Module::named_parameters,
           "(dotted name, tensor) of every parameter, in registration order; shared tensors once.")
      .def("parameters", &Module::parameters, "Every parameter, in registration order; shared tensors once.")
      .def("named_buffers", &Module::named_buffers, "(dotted name, tensor) of every buffer (running statistics).")
      .def("named_children", &Module::named_children, "(name, module) of the direct children.")
      .def("children", &Module::children, "The direct children.")
      .def("parameter", &Module::parameter, nb::arg("name"), "This module's own parameter `name`.")
      .def("buffer", &Module::buffer, nb::arg("name"), "This module's own buffer `name`.")
      .def("child", &Module::child, nb::arg("name"), "This module's direct child `name`.")
      .def("train", &Module::train, nb::arg("mode") = true, "Sets training mode on this module and its descendants.")
      .def("eval", &Module::eval, "train(False).")
      .def_prop_ro("training", &Module::training, "Whether the module is in training mode.")
      .def("state_dict", &state_dict, "Parameters and buffers by dotted name, as NDArrays (the values, not copies).")
      .def("load_state_dict", &Module::load_state_dict, nb::arg("state"), nb::arg("strict") = true,
           "Replaces values by name (copied). Every entry is validated (names with strict, shapes, dtypes) before "
           "any value changes; errors are ValueErrors naming the key.")
      .def("to", &Module::to, nb::arg("device"),
           "Moves every parameter, buffer and gradient to `device`, keeping the Tensor objects.")
      .def("zero_grad", &Module::zero_grad, "Drops every parameter's gradient.")
      .def("adopt_parameters", &adopt_parameters, nb::arg("cls"),
           nb::sig("def adopt_parameters(self, cls: type[Tensor]) -> list[tuple[str, Tensor]]"),
           "named_parameters(), each tensor's Python object made an instance of `cls` (a Tensor subclass) unless "
           "it already has one.")
      .def("__repr__", [](const Module& self) { return self.name() + "()"; });

  m.def("check_state_dict", &nn::check_state_dict, nb::arg("owner"), nb::arg("expected"), nb::arg("state"),
        nb::arg("strict") = true,
        "load_state_dict's checks for any module: `expected` its (dotted name, tensor) entries, `state` the arrays "
        "to load. Raises ValueError '<owner>.load_state_dict: ...' naming the key (missing or unexpected under "
        "strict, wrong shape or dtype); returns the indices of the entries `state` holds.");
  m.def("move_tensor", &move_tensor, nb::arg("tensor"), nb::arg("device"),
        "Moves a tensor's value and gradient to `device` in place (the Tensor object is kept).");
}

// ---- layers ---------------------------------------------------------------------------------------

void bind_basic(nb::module_& m) {
  nb::class_<nn::Identity, Module>(m, "Identity").def(nb::init<>());
  nb::class_<nn::Linear, Module>(m, "Linear")
      .def(
          "__init__",
          [](nn::Linear* self, std::int64_t in_features, std::int64_t out_features, bool bias,
             const std::optional<Device>& device, const std::optional<DTypeLike>& dtype) {
            new (self) nn::Linear(in_features, out_features, bias, device_or_default(device), float_dtype(dtype));
          },
          nb::arg("in_features"), nb::arg("out_features"), nb::arg("bias") = true, nb::arg("device") = nb::none(),
          nb::arg("dtype") = nb::none())
      .def_prop_ro("in_features", &nn::Linear::in_features)
      .def_prop_ro("out_features", &nn::Linear::out_features)
      .def_prop_rw("weight", parameter_getter("weight"), parameter_setter("weight"), "(in_features, out_features).")
      .def_prop_rw("bias", parameter_getter("bias"), parameter_setter("bias"), "(1, out_features), or None.");
  nb::class_<nn::Flatten, Module>(m, "Flatten").def(nb::init<>());
  nb::class_<nn::ReLU, Module>(m, "ReLU").def(nb::init<>());
  nb::class_<nn::Tanh, Module>(m, "Tanh").def(nb::init<>());
  nb::class_<nn::Sigmoid, Module>(m, "Sigmoid").def(nb::init<>());
  nb::class_<nn::GELU, Module>(m, "GELU").def(nb::init<>());
  nb::class_<nn::ModuleList, Module>(m, "ModuleList")
      .def(nb::init<>())
      .def(nb::init<const std::vector<std::shared_ptr<Module>>&>(), nb::arg("modules"))
      .def("append", &nn::ModuleList::append, nb::arg("module"))
      .def("__len__", &nn::ModuleList::size)
      .def("__getitem__", &nn::ModuleList::at, nb::arg("index"));
  nb::class_<nn::Sequential, nn::ModuleList>(m, "Sequential")
      .def(nb::init<>())
      .def(nb::init<const std::vector<std::shared_ptr<Module>>&>(), nb::arg("modules"));
  nb::class_<nn::Residual, Module>(m, "Residual")
      .def(nb::init<std::shared_ptr<Module>>(), nb::arg("fn"))
      .def_prop_ro("fn", &nn::Residual::fn);
  nb::class_<nn::SoftmaxLoss, Module>(m, "SoftmaxLoss")
      .def(nb::init<>())
      .def(
          "__call__",
          [](nn::SoftmaxLoss& self, const Tensor& logits, const Tensor& labels) { return self(logits, labels); },
          nb::arg("logits"), nb::arg("labels"), "Mean cross entropy of logits (N, C) and integer labels (N,).");
  nb::class_<nn::MSELoss, Module>(m, "MSELoss")
      .def(nb::init<>())
      .def(
          "__call__",
          [](nn::MSELoss& self, const Tensor& prediction, const Tensor& target) { return self(prediction, target); },
          nb::arg("prediction"), nb::arg("target"), "Mean of squared differences.");
  nb::class_<nn::Dropout, Module>(m, "Dropout")
      .def(nb::init<double>(), nb::arg("p") = 0.5)
      .def_prop_rw("p", &nn::Dropout::p, &nn::Dropout::set_p, "In [0, 1).");
  nb::class_<nn::Embedding, Module>(m, "Embedding")
      .def(
          "__init__",
          [](nn::Embedding* self, std::int64_t num_embeddings, std::int64_t embedding_dim,
             const std::optional<Device>& device, const std::optional<DTypeLike>& dtype) {
            new (self) nn::Embedding(num_embeddings, embedding_dim, device_or_default(device), float_dtype(dtype));
          },
          nb::arg("num_embeddings"), nb::arg("embedding_dim"), nb::arg("device") = nb::none(),
          nb::arg("dtype") = nb::none())
      .def_prop_ro("num_embeddings", &nn::Embedding::num_embeddings)
      .def_prop_ro("embedding_dim", &nn::Embedding::embedding_dim)
      .def_prop_rw("weight", parameter_getter("weight"), parameter_setter("weight"),
                   "(num_embeddings, embedding_dim).");
}

void bind_norm(nb::module_& m) {
  nb::class_<nn::BatchNorm, Module>(m, "BatchNorm")
      .def_prop_ro("num_features", &nn::BatchNorm::num_features)
      .def_prop_rw("eps", &nn::BatchNorm::eps, &nn::BatchNorm::set_eps, "Finite and >= 0 (ValueError otherwise).")
      .def_prop_rw("momentum", &nn::BatchNorm::momentum, &nn::BatchNorm::set_momentum, "In [0, 1].")
      .def_prop_rw("weight", parameter_getter("weight"), parameter_setter("weight"))
      .def_prop_rw("bias", parameter_getter("bias"), parameter_setter("bias"))
      .def_prop_rw("running_mean", buffer_getter("running_mean"), buffer_setter("running_mean"))
      .def_prop_rw("running_var", buffer_getter("running_var"), buffer_setter("running_var"));
  nb::class_<nn::BatchNorm1d, nn::BatchNorm>(m, "BatchNorm1d")
      .def(
          "__init__",
          [](nn::BatchNorm1d* self, std::int64_t dim, double eps, double momentum, const std::optional<Device>& device,
             const std::optional<DTypeLike>& dtype) {
            new (self) nn::BatchNorm1d(dim, eps, momentum, device_or_default(device), float_dtype(dtype));
          },
          nb::arg("dim"), nb::arg("eps") = 1e-5, nb::arg("momentum") = 0.1, nb::arg("device") = nb::none(),
          nb::arg("dtype") = nb::none());
  nb::class_<nn::BatchNorm2d, nn::BatchNorm>(m, "BatchNorm2d")
      .def(
          "__init__",
          [](nn::BatchNorm2d* self, std::int64_t dim, double eps, double momentum, const std::optional<Device>& device,
             const std::optional<DTypeLike>& dtype) {
            new (self) nn::BatchNorm2d(dim, eps, momentum, device_or_default(device), float_dtype(dtype));
          },
          nb::arg("dim"), nb::arg("eps") = 1e-5, nb::arg("momentum") = 0.1, nb::arg("device") = nb::none(),
          nb::arg("dtype") = nb::none());
  nb::class_<nn::LayerNorm1d, Module>(m, "LayerNorm1d")
      .def(
          "__init__",
          [](nn::LayerNorm1d* self, std::int64_t dim, double eps, const std::optional<Device>& device,
             const std::optional<DTypeLike>& dtype) {
            new (self) nn::LayerNorm1d(dim, eps, device_or_default(device), float_dtype(dtype));
          },
          nb::arg("dim"), nb::arg("eps") = 1e-5, nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none())
      .def_prop_ro("dim", &nn::LayerNorm1d::dim)
      .def_prop_rw("eps", &nn::LayerNorm1d::eps, &nn::LayerNorm1d::set_eps, "Finite and >= 0 (ValueError otherwise).")
      .def_prop_rw("weight", parameter_getter("weight"), parameter_setter("weight"))
      .def_prop_rw("bias", parameter_getter("bias"), parameter_setter("bias"));
}

void bind_conv(nb::module_& m) {
  nb::class_<nn::Conv, Module>(m, "Conv")
      .def(
          "__init__",
          [](nn::Conv* self, std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
             std::int64_t stride, bool bias, const std::optional<Device>& device, const std::optional<DTypeLike>& dtype,
             std::optional<std::int64_t> padding) {
            new (self) nn::Conv(in_channels, out_channels, kernel_size, stride, bias, device_or_default(device),
                                float_dtype(dtype), padding);
          },
          nb::arg("in_channels"), nb::arg("out_channels"), nb::arg("kernel_size"), nb::arg("stride") = 1,
          nb::arg("bias") = true, nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none(),
          nb::arg("padding") = nb::none())
      .def_prop_ro("in_channels", &nn::Conv::in_channels)
      .def_prop_ro("out_channels", &nn::Conv::out_channels)
      .def_prop_ro("kernel_size", &nn::Conv::kernel_size)
      .def_prop_ro("stride", &nn::Conv::stride)
      .def_prop_ro("padding", &nn::Conv::padding)
      .def_prop_rw("weight", parameter_getter("weight"), parameter_setter("weight"),
                   "(kernel_size, kernel_size, in_channels, out_channels).")
      .def_prop_rw("bias", parameter_getter("bias"), parameter_setter("bias"), "(out_channels,), or None.");
  nb::class_<nn::Conv2d, nn::Conv>(m, "Conv2d")
      .def(
          "__init__",
          [](nn::Conv2d* self, std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel_size,
             std::int64_t stride, std::int64_t padding, bool bias, const std::optional<Device>& device,
             const std::optional<DTypeLike>& dtype) {
            new (self) nn::Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias,
                                  device_or_default(device), float_dtype(dtype));
          },
          nb::arg("in_channels"), nb::arg("out_channels"), nb::arg("kernel_size"), nb::arg("stride") = 1,
          nb::arg("padding") = 0, nb::arg("bias") = true, nb::arg("device") = nb::none(),
          nb::arg("dtype") = nb::none());
  nb::class_<nn::MaxPool2d, Module>(m, "MaxPool2d")
      .def(nb::init<std::int64_t, std::optional<std::int64_t>, std::int64_t>(), nb::arg("kernel_size"),
           nb::arg("stride") = nb::none(), nb::arg("padding") = 0);
  nb::class_<nn::AvgPool2d, Module>(m, "AvgPool2d")
      .def(nb::init<std::int64_t, std::optional<std::int64_t>, std::int64_t>(), nb::arg("kernel_size"),
           nb::arg("stride") = nb::none(), nb::arg("padding") = 0);
}

template <typename Cell>
void def_cell_parameters(nb::class_<Cell, Module>& cls) {
  cls.def_prop_ro("input_size", &Cell::input_size)
      .def_prop_ro("hidden_size", &Cell::hidden_size)
      .def_prop_rw("W_ih", parameter_getter("W_ih"), parameter_setter("W_ih"))
      .def_prop_rw("W_hh", parameter_getter("W_hh"), parameter_setter("W_hh"))
      .def_prop_rw("bias_ih", parameter_getter("bias_ih"), parameter_setter("bias_ih"), "None without bias.")
      .def_prop_rw("bias_hh", parameter_getter("bias_hh"), parameter_setter("bias_hh"), "None without bias.");
}

using OptionalState = std::optional<std::pair<std::optional<Tensor>, std::optional<Tensor>>>;

std::pair<Tensor, Tensor> state_pair(const OptionalState& state) {
  if (!state) return {};
  return {or_undefined(state->first), or_undefined(state->second)};
}

void bind_rnn(nb::module_& m) {
  nb::class_<nn::RNNCell, Module> rnn_cell(m, "RNNCell");
  rnn_cell
      .def(
          "__init__",
          [](nn::RNNCell* self, std::int64_t input_size, std::int64_t hidden_size, bool bias,
             const std::string& nonlinearity, const std::optional<Device>& device,
             const std::optional<DTypeLike>& dtype) {
            new (self)
                nn::RNNCell(input_size, hidden_size, bias, nonlinearity, device_or_default(device), float_dtype(dtype));
          },
          nb::arg("input_size"), nb::arg("hidden_size"), nb::arg("bias") = true, nb::arg("nonlinearity") = "tanh",
          nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none())
      .def(
          "__call__",
          [](nn::RNNCell& self, const Tensor& x, const std::optional<Tensor>& h) { return self(x, or_undefined(h)); },
          nb::arg("x"), nb::arg("h") = nb::none(), "h' for x (batch, input_size) and h (batch, hidden_size) or None.")
      .def_prop_ro("nonlinearity", &nn::RNNCell::nonlinearity);
  def_cell_parameters(rnn_cell);

  nb::class_<nn::LSTMCell, Module> lstm_cell(m, "LSTMCell");
  lstm_cell
      .def(
          "__init__",
          [](nn::LSTMCell* self, std::int64_t input_size, std::int64_t hidden_size, bool bias,
             const std::optional<Device>& device, const std::optional<DTypeLike>& dtype) {
            new (self) nn::LSTMCell(input_size, hidden_size, bias, device_or_default(device), float_dtype(dtype));
          },
          nb::arg("input_size"), nb::arg("hidden_size"), nb::arg("bias") = true, nb::arg("device") = nb::none(),
          nb::arg("dtype") = nb::none())
      .def(
          "__call__",
          [](nn::LSTMCell& self, const Tensor& x, const OptionalState& h) { return self(x, state_pair(h)); },
          nb::arg("x"), nb::arg("h") = nb::none(), "(h', c') for x and h = (h0, c0) (None or either None: zeros).");
  def_cell_parameters(lstm_cell);

  nb::class_<nn::RNN, Module>(m, "RNN")
      .def(
          "__init__",
          [](nn::RNN* self, std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers, bool bias,
             const std::string& nonlinearity, const std::optional<Device>& device,
             const std::optional<DTypeLike>& dtype) {
            new (self) nn::RNN(input_size, hidden_size, num_layers, bias, nonlinearity, device_or_default(device),
                               float_dtype(dtype));
          },
          nb::arg("input_size"), nb::arg("hidden_size"), nb::arg("num_layers") = 1, nb::arg("bias") = true,
          nb::arg("nonlinearity") = "tanh", nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none())
      .def(
          "__call__",
          [](nn::RNN& self, const Tensor& x, const std::optional<Tensor>& h0) { return self(x, or_undefined(h0)); },
          nb::arg("x"), nb::arg("h0") = nb::none(),
          "(output (seq_len, batch, hidden_size), h_n (num_layers, batch, hidden_size)).")
      .def_prop_ro("input_size", &nn::RNN::input_size)
      .def_prop_ro("hidden_size", &nn::RNN::hidden_size)
      .def_prop_ro("num_layers", &nn::RNN::num_layers)
      .def("cell", &nn::RNN::cell, nb::arg("layer"));

  nb::class_<nn::LSTM, Module>(m, "LSTM")
      .def(
          "__init__",
          [](nn::LSTM* self, std::int64_t input_size, std::int64_t hidden_size, std::int64_t num_layers, bool bias,
             const std::optional<Device>& device, const std::optional<DTypeLike>& dtype) {
            new (self)
                nn::LSTM(input_size, hidden_size, num_layers, bias, device_or_default(device), float_dtype(dtype));
          },
          nb::arg("input_size"), nb::arg("hidden_size"), nb::arg("num_layers") = 1, nb::arg("bias") = true,
          nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none())
      .def(
          "__call__", [](nn::LSTM& self, const Tensor& x, const OptionalState& h) { return self(x, state_pair(h)); },
          nb::arg("x"), nb::arg("h") = nb::none(), "(output, (h_n, c_n)) for x and h = (h0, c0) or None.")
      .def_prop_ro("input_size", &nn::LSTM::input_size)
      .def_prop_ro("hidden_size", &nn::LSTM::hidden_size)
      .def_prop_ro("num_layers", &nn::LSTM::num_layers)
      .def("cell", &nn::LSTM::cell, nb::arg("layer"));
}

void bind_transformer(nb::module_& m) {
  nb::class_<nn::MultiHeadAttention, Module>(m, "MultiHeadAttention")
      .def(
          "__init__",
          [](nn::MultiHeadAttention* self, std::int64_t embed_dim, std::int64_t num_heads, bool causal, double dropout,
             bool bias, const std::optional<Device>& device, const std::optional<DTypeLike>& dtype) {
            new (self) nn::MultiHeadAttention(embed_dim, num_heads, causal, dropout, bias, device_or_default(device),
                                              float_dtype(dtype));
          },
          nb::arg("embed_dim"), nb::arg("num_heads"), nb::arg("causal") = false, nb::arg("dropout") = 0.0,
          nb::arg("bias") = false, nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none())
      .def(
          "__call__",
          [](nn::MultiHeadAttention& self, const Tensor& q, const std::optional<Tensor>& k,
             const std::optional<Tensor>& v) { return self(q, k.value_or(q), v.value_or(k.value_or(q))); },
          nb::arg("q"), nb::arg("k") = nb::none(), nb::arg("v") = nb::none(),
          "Attention of q (batch, L, embed_dim) over k and v (batch, S, embed_dim); k defaults to q, v to k.")
      .def_prop_ro("embed_dim", &nn::MultiHeadAttention::embed_dim)
      .def_prop_ro("num_heads", &nn::MultiHeadAttention::num_heads)
      .def_prop_ro("causal", &nn::MultiHeadAttention::causal)
      .def_prop_ro("dropout", &nn::MultiHeadAttention::dropout)
      .def_prop_ro("q_projection", &nn::MultiHeadAttention::q_projection)
      .def_prop_ro("k_projection", &nn::MultiHeadAttention::k_projection)
      .def_prop_ro("v_projection", &nn::MultiHeadAttention::v_projection)
      .def_prop_ro("out_projection", &nn::MultiHeadAttention::out_projection);
  nb::class_<nn::TransformerLayer, Module>(m, "TransformerLayer")
      .def(
          "__init__",
          [](nn::TransformerLayer* self, std::int64_t dim, std::int64_t num_heads, std::int64_t hidden_size,
             double dropout, bool causal, const std::optional<Device>& device, const std::optional<DTypeLike>& dtype) {
            new (self) nn::TransformerLayer(dim, num_heads, hidden_size, dropout, causal, device_or_default(device),
                                            float_dtype(dtype));
          },
          nb::arg("dim"), nb::arg("num_heads"), nb::arg("hidden_size"), nb::arg("dropout") = 0.0,
          nb::arg("causal") = true, nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none())
      .def_prop_ro("attn", &nn::TransformerLayer::attn);
  nb::class_<nn::Transformer, Module>(m, "Transformer")
      .def(
          "__init__",
          [](nn::Transformer* self, std::int64_t vocab_size, std::int64_t dim, std::int64_t num_layers,
             std::int64_t num_heads, std::int64_t hidden_size, std::int64_t max_seq_len, double dropout, bool causal,
             const std::optional<Device>& device, const std::optional<DTypeLike>& dtype) {
            new (self) nn::Transformer(vocab_size, dim, num_layers, num_heads, hidden_size, max_seq_len, dropout,
                                       causal, device_or_default(device), float_dtype(dtype));
          },
          nb::arg("vocab_size"), nb::arg("dim"), nb::arg("num_layers"), nb::arg("num_heads"), nb::arg("hidden_size"),
          nb::arg("max_seq_len") = 2048, nb::arg("dropout") = 0.0, nb::arg("causal") = true,
          nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none())
      .def_prop_ro("vocab_size", &nn::Transformer::vocab_size)
      .def_prop_ro("max_seq_len", &nn::Transformer::max_seq_len)
      .def(
          "__call__",
          [](nn::Transformer& self, const Tensor& tokens, nn::KVCache* cache) {
            return cache == nullptr ? self.forward(tokens) : self.forward(tokens, *cache);
          },
          nb::arg("tokens"), nb::arg("cache") = nb::none(),
          "Logits (batch, seq, vocab_size); with a cache, of the new tokens that continue its sequences.")
      .def(
          "generate",
          [](nn::Transformer& self, const NDArray& prompt, std::int64_t max_new_tokens, double temperature,
             std::int64_t top_k, double top_p, std::uint64_t seed, bool use_cache, nn::KVCache* cache) {
            return self.generate(prompt, max_new_tokens, {temperature, top_k, top_p, seed, use_cache}, cache);
          },
          nb::arg("prompt"), nb::arg("max_new_tokens"), nb::arg("temperature") = 1.0, nb::arg("top_k") = 0,
          nb::arg("top_p") = 1.0, nb::arg("seed") = 0, nb::arg("use_cache") = true, nb::arg("cache") = nb::none(),
          "prompt ids (batch, T) followed by max_new_tokens sampled ids: (batch, T + max_new_tokens).");
  nb::class_<nn::KVCache>(m, "KVCache")
      .def(nb::init<const nn::Transformer&, std::int64_t, std::int64_t>(), nb::arg("model"), nb::arg("batch_size"),
           nb::arg("capacity") = 0)
      .def_prop_ro("batch_size", &nn::KVCache::batch)
      .def_prop_ro("capacity", &nn::KVCache::capacity)
      .def_prop_ro("length", &nn::KVCache::length)
      .def_prop_ro("num_layers", &nn::KVCache::num_layers)
      .def("keys", &nn::KVCache::keys, nb::arg("layer"), "Layer's keys (batch, num_heads, capacity, head_dim).")
      .def("values", &nn::KVCache::values, nb::arg("layer"), "Layer's values (batch, num_heads, capacity, head_dim).")
      .def("reset", &nn::KVCache::reset, "Empties the cache (length 0) and keeps its memory.");
}

void bind_quantized(nb::module_& m) {
  nb::class_<nn::QuantizedLinear, Module>(m, "QuantizedLinear")
      .def(nb::init<std::int64_t, std::int64_t, bool, Device>(), nb::arg("in_features"), nb::arg("out_features"),
           nb::arg("bias") = true, nb::arg("device") = cpu_device())
      .def_static("from_linear", &nn::QuantizedLinear::from_linear, nb::arg("linear"))
      .def_static("from_weight", &nn::QuantizedLinear::from_weight, nb::arg("weight"), nb::arg("bias"),
                  "From a float weight (out, in) (PyTorch's layout) and a bias (out,) or an empty array.")
      .def_prop_ro("in_features", &nn::QuantizedLinear::in_features)
      .def_prop_ro("out_features", &nn::QuantizedLinear::out_features)
      .def_prop_rw("input_scale", &nn::QuantizedLinear::input_scale, &nn::QuantizedLinear::set_input_scale);
  nb::class_<nn::QuantizedConv, Module>(m, "QuantizedConv")
      .def(nb::init<std::int64_t, std::int64_t, std::int64_t, std::int64_t, std::int64_t, bool, Device>(),
           nb::arg("in_channels"), nb::arg("out_channels"), nb::arg("kernel_size"), nb::arg("stride"),
           nb::arg("padding"), nb::arg("bias") = true, nb::arg("device") = cpu_device())
      .def_static("from_conv", &nn::QuantizedConv::from_conv, nb::arg("conv"), nb::arg("input_scale") = 0.0)
      .def_prop_ro("in_channels", &nn::QuantizedConv::in_channels)
      .def_prop_ro("out_channels", &nn::QuantizedConv::out_channels)
      .def_prop_ro("kernel_size", &nn::QuantizedConv::kernel_size)
      .def_prop_ro("stride", &nn::QuantizedConv::stride)
      .def_prop_ro("padding", &nn::QuantizedConv::padding)
      .def_prop_rw("input_scale", &nn::QuantizedConv::input_scale, &nn::QuantizedConv::set_input_scale);
  nb::class_<nn::QuantizedLSTM, Module>(m, "QuantizedLSTM")
      .def(nb::init<std::int64_t, std::int64_t, std::int64_t, bool, Device>(), nb::arg("input_size"),
           nb::arg("hidden_size"), nb::arg("num_layers") = 1, nb::arg("bias") = true, nb::arg("device") = cpu_device())
      .def_static("from_lstm", &nn::QuantizedLSTM::from_lstm, nb::arg("lstm"))
      .def(
          "__call__",
          [](nn::QuantizedLSTM& self, const Tensor& x, const OptionalState& h) { return self(x, state_pair(h)); },
          nb::arg("x"), nb::arg("h") = nb::none(), "(output, (h_n, c_n)) for x and h = (h0, c0) or None.")
      .def_prop_ro("input_size", &nn::QuantizedLSTM::input_size)
      .def_prop_ro("hidden_size", &nn::QuantizedLSTM::hidden_size)
      .def_prop_ro("num_layers", &nn::QuantizedLSTM::num_layers);
  m.def("quantize_dynamic", &nn::quantize_dynamic, nb::arg("module"),
        "Replaces every Linear and LSTM below module by its int8 version, in place; returns how many.");
  m.def("quantize_convolutions", &nn::quantize_convolutions, nb::arg("module"),
        "Replaces every Conv below module by a QuantizedConv (input_scale 0 until calibrated); returns how many.");
}

}  // namespace

void bind_nn(nb::module_& m) {
  bind_module(m);
  bind_basic(m);
  bind_norm(m);
  bind_conv(m);
  bind_rnn(m);
  bind_transformer(m);
  bind_quantized(m);
}

}  // namespace needle::python
