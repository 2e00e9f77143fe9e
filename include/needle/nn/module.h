// Module: a container of parameters, buffers and child modules with a forward computation. Layers
// (nn/layers.h) are Modules whose forward calls the op library, so the math of every layer lives once,
// in C++, for C++ and Python users alike.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "needle/autograd/tensor.h"

namespace needle::nn {

// A trainable tensor. Parameters are ordinary Tensors that require a gradient; the name says intent.
inline Tensor Parameter(const NDArray& value) { return Tensor(value, true); }

using StateDict = std::map<std::string, NDArray>;

// The checks of load_state_dict, shared by every kind of module (Python's included): `expected` are the
// module's (dotted name, tensor) entries, `state` the values to load. With `strict`, a missing or an
// unexpected key is an error; every key present must have its tensor's shape and dtype. Errors are
// ValueErrors "<owner>.load_state_dict: ..." naming the key. Returns the indices into `expected` of the
// entries that `state` holds, in order: the ones to load once this returns.
std::vector<std::size_t> check_state_dict(const std::string& owner,
                                          const std::vector<std::pair<std::string, Tensor>>& expected,
                                          const StateDict& state, bool strict);

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = delete;
  Module& operator=(Module&&) = delete;

  // The computation of a module with one input. Modules with several inputs or outputs (RNNs,
  // attention, losses) offer their own call signature and leave this one refusing.
  virtual Tensor forward(const Tensor& input);
  Tensor operator()(const Tensor& input) { return forward(input); }

  // "Linear" etc.: used in errors and printing.
  [[nodiscard]] virtual std::string name() const = 0;

  // Parameters of this module and all its descendants with dotted names ("layers.0.weight"), in
  // registration order (a module's own parameters and its children interleaved as they were registered,
  // like the attribute order Needle's Module.parameters() walks). A tensor reachable under several names
  // (shared layers) is listed once, under its first name, so an optimizer never updates it twice.
  [[nodiscard]] std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  [[nodiscard]] std::vector<Tensor> parameters() const;
  // Non-trainable state saved with the parameters (BatchNorm's running statistics).
  [[nodiscard]] std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  [[nodiscard]] const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const {
    return children_;
  }
  [[nodiscard]] std::vector<std::shared_ptr<Module>> children() const;
  // This module's own parameter/buffer/child called `name` (no dots); throws ValueError when absent.
  [[nodiscard]] Tensor parameter(const std::string& name) const;
  // The parameter `name`, or an undefined Tensor when the module has none by that name (a layer built
  // without bias).
  [[nodiscard]] Tensor optional_parameter(const std::string& name) const;
  [[nodiscard]] Tensor buffer(const std::string& name) const;
  [[nodiscard]] std::shared_ptr<Module> child(const std::string& name) const;

  // Training mode (Dropout drops, BatchNorm uses batch statistics) applies to every descendant.
  void train(bool training = true);
  void eval() { train(false); }
  [[nodiscard]] bool training() const { return training_; }

  // Parameters and buffers by dotted name, as arrays (copies are not made: the arrays are the values).
  [[nodiscard]] StateDict state_dict() const;
  // Replaces values by name (copied, and moved to each tensor's device). With `strict`, missing or
  // unexpected names are an error. Shapes and dtypes must match. Nothing is modified unless every entry
  // is valid (no partly loaded model); errors are ValueErrors naming the key (check_state_dict).
  void load_state_dict(const StateDict& state, bool strict = true);

  // Moves every parameter, buffer and gradient to `device`, keeping the Tensors themselves (optimizers
  // holding them stay valid).
  void to(Device device);

  // Replaces this module's own parameter (or buffer) `name` by `value` itself, not a copy: the next forward
  // computes with `value` and backward gives `value` its gradient (`cell.W_ih = Tensor(...)` in Python).
  // Layers read their parameters from here at each forward, so nothing else holds the old tensor. `value`
  // must have the old one's shape, dtype and device (ValueError naming the module otherwise): a layer's
  // sizes are fixed at construction. Optimizers built earlier keep the old tensor, as in PyTorch.
  void set_parameter(const std::string& name, const Tensor& value);
  void set_buffer(const std::string& name, const Tensor& value);
  // Replaces this module's own child `name` by `module` (ValueError when there is no such child or module
  // is null). Layers call their children by name at each forward, so the replacement computes from then
  // on: how quantize_dynamic swaps a Linear for a QuantizedLinear inside a built model.
  void set_child(const std::string& name, std::shared_ptr<Module> module);

  // Sets every parameter's gradient to undefined.
  void zero_grad();

  // Registration. Public so containers and language bindings can build modules from outside; the returned
  // handle is the registered tensor (or module) itself. Names must be non-empty, free of dots and unique
  // within this module (ValueError otherwise).
  Tensor register_parameter(const std::string& name, const NDArray& value);
  Tensor register_buffer(const std::string& name, const NDArray& value);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

 protected:
  // Throws RuntimeError naming this module and both devices unless `input` is on `device` (the device of
  // the module's parameters), so a batch on the wrong device is reported by the layer, not by an op.
  void check_device(const Tensor& input, Device device) const;

 private:
  enum class Kind : std::uint8_t { Parameter, Buffer, Child };
  struct Slot {
    Kind kind;
    std::size_t index;  // into parameters_, buffers_ or children_
  };
  void add_child(const std::string& name, std::shared_ptr<Module> module);
  void check_new_name(const std::string& name) const;
  // Calls fn(dotted name, tensor) for every parameter (or buffer) of the tree, duplicates included.
  template <typename Fn>
  void visit(Kind kind, const std::string& prefix, Fn&& fn) const;
  // Every parameter and buffer with its dotted name, duplicates included (the keys of state_dict()).
  [[nodiscard]] std::vector<std::pair<std::string, Tensor>> named_state() const;

  std::vector<std::pair<std::string, Tensor>> parameters_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::vector<Slot> order_;  // registration order across the three kinds
  bool training_ = true;
};

}  // namespace needle::nn
