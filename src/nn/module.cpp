// Module: registration, recursive traversal (parameters, buffers, modes), state dicts and device moves.
#include "needle/nn/module.h"

#include <unordered_set>
#include <utility>

#include "needle/core/error.h"

namespace needle::nn {

Tensor Module::forward(const Tensor& /*input*/) {
  throw RuntimeError(str(name(), ": this module takes a different call signature"));
}

void Module::check_new_name(const std::string& name) const {
  NEEDLE_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError, this->name(),
               ": a registered name must be non-empty and contain no '.', got '", name, "'");
  const auto taken = [&](const auto& entries) {
    for (const auto& entry : entries) {
      if (entry.first == name) return true;
    }
    return false;
  };
  NEEDLE_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), ValueError, this->name(), ": name '", name,
               "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, const NDArray& value) {
  check_new_name(name);
  NEEDLE_CHECK(is_floating(value.dtype()), TypeError, this->name(), ": parameter '", name,
               "' must be floating point to be trained, got dtype ", dtype_name(value.dtype()));
  order_.push_back({Kind::Parameter, parameters_.size()});
  parameters_.emplace_back(name, Parameter(value));
  return parameters_.back().second;
}

Tensor Module::register_buffer(const std::string& name, const NDArray& value) {
  check_new_name(name);
  order_.push_back({Kind::Buffer, buffers_.size()});
  buffers_.emplace_back(name, Tensor(value, false));
  return buffers_.back().second;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_new_name(name);
  NEEDLE_CHECK(module != nullptr, ValueError, this->name(), ": cannot register a null module as '", name, "'");
  order_.push_back({Kind::Child, children_.size()});
  children_.emplace_back(name, std::move(module));
}

template <typename Fn>
void Module::visit(Kind kind, const std::string& prefix, Fn&& fn) const {
  for (const Slot& slot : order_) {
    if (slot.kind == Kind::Child) {
      const auto& [child_name, child] = children_[slot.index];
      child->visit(kind, prefix + child_name + ".", fn);
    } else if (slot.kind == kind) {
      const auto& [own_name, tensor] = (kind == Kind::Parameter ? parameters_ : buffers_)[slot.index];
      fn(prefix + own_name, tensor);
    }
  }
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> result;
  std::unordered_set<const TensorImpl*> seen;
  visit(Kind::Parameter, "", [&](const std::string& name, const Tensor& t) {
    if (seen.insert(t.impl().get()).second) result.emplace_back(name, t);
  });
  return result;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> result;
  for (auto& entry : named_parameters()) result.push_back(std::move(entry.second));
  return result;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> result;
  std::unordered_set<const TensorImpl*> seen;
  visit(Kind::Buffer, "", [&](const std::string& name, const Tensor& t) {
    if (seen.insert(t.impl().get()).second) result.emplace_back(name, t);
  });
  return result;
}

std::vector<std::pair<std::string, Tensor>> Module::named_state() const {
  std::vector<std::pair<std::string, Tensor>> result;
  const auto add = [&](const std::string& name, const Tensor& t) { result.emplace_back(name, t); };
  visit(Kind::Parameter, "", add);
  visit(Kind::Buffer, "", add);
  return result;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> result;
  result.reserve(children_.size());
  for (const auto& entry : children_) result.push_back(entry.second);
  return result;
}

namespace {

template <typename Entries>
auto find_entry(const Entries& entries, const std::string& name) -> decltype(&entries.front().second) {
  for (const auto& entry : entries) {
    if (entry.first == name) return &entry.second;
  }
  return nullptr;
}

}  // namespace

Tensor Module::parameter(const std::string& name) const {
  const Tensor* found = find_entry(parameters_, name);
  NEEDLE_CHECK(found != nullptr, ValueError, this->name(), ": no parameter named '", name, "'");
  return *found;
}

Tensor Module::optional_parameter(const std::string& name) const {
  const Tensor* found = find_entry(parameters_, name);
  return found != nullptr ? *found : Tensor();
}

Tensor Module::buffer(const std::string& name) const {
  const Tensor* found = find_entry(buffers_, name);
  NEEDLE_CHECK(found != nullptr, ValueError, this->name(), ": no buffer named '", name, "'");
  return *found;
}

std::shared_ptr<Module> Module::child(const std::string& name) const {
  const std::shared_ptr<Module>* found = find_entry(children_, name);
  NEEDLE_CHECK(found != nullptr, ValueError, this->name(), ": no submodule named '", name, "'");
  return *found;
}

void Module::train(bool training) {
  training_ = training;
  for (const auto& entry : children_) entry.second->train(training);
}

StateDict Module::state_dict() const {
  StateDict state;
  for (const auto& [name, tensor] : named_state()) state.emplace(name, tensor.value());
  return state;
}

std::vector<std::size_t> check_state_dict(const std::string& owner,
                                          const std::vector<std::pair<std::string, Tensor>>& expected,
                                          const StateDict& state, bool strict) {
  std::vector<std::size_t> present;
  std::unordered_set<std::string> known;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& [key, tensor] = expected[i];
    known.insert(key);
    const auto it = state.find(key);
    if (it == state.end()) {
      NEEDLE_CHECK(!strict, ValueError, owner, ".load_state_dict: missing key '", key, "'");
      continue;
    }
    const NDArray& value = it->second;
    NEEDLE_CHECK(value.shape() == tensor.shape(), ValueError, owner, ".load_state_dict: key '", key, "' has shape ",
                 shape_str(value.shape()), ", expected ", shape_str(tensor.shape()));
    NEEDLE_CHECK(value.dtype() == tensor.dtype(), ValueError, owner, ".load_state_dict: key '", key, "' has dtype ",
                 dtype_name(value.dtype()), ", expected ", dtype_name(tensor.dtype()));
    present.push_back(i);
  }
  if (strict) {
    for (const auto& entry : state) {
      NEEDLE_CHECK(known.count(entry.first) != 0, ValueError, owner, ".load_state_dict: unexpected key '", entry.first,
                   "'");
    }
  }
  return present;
}

void Module::load_state_dict(const StateDict& state, bool strict) {
  const std::vector<std::pair<std::string, Tensor>> entries = named_state();
  // Validate everything first: an error must leave the module exactly as it was.
  const std::vector<std::size_t> present = check_state_dict(name(), entries, state, strict);
  // Copies, so later in-place writes to the module never reach the caller's arrays (and vice versa).
  for (const std::size_t i : present) {
    Tensor tensor = entries[i].second;  // a handle to the module's tensor
    tensor.set_value(state.at(entries[i].first).to(tensor.device()).copy());
  }
}

void Module::to(Device device) {
  std::unordered_set<const TensorImpl*> seen;
  const auto move = [&](const std::string& /*name*/, const Tensor& t) {
    TensorImpl* impl = t.impl().get();
    if (!seen.insert(impl).second) return;
    // Assigning the value inside the existing TensorImpl keeps every handle to the tensor valid.
    impl->value = impl->value.to(device);
    if (impl->grad != nullptr) impl->grad->value = impl->grad->value.to(device);
  };
  visit(Kind::Parameter, "", move);
  visit(Kind::Buffer, "", move);
}

namespace {

// The checks of set_parameter/set_buffer: `value` may take the place of `current`.
void check_replacement(const std::string& owner, const char* what, const std::string& name, const Tensor& current,
                       const Tensor& value) {
  NEEDLE_CHECK(value.defined(), ValueError, owner, ": cannot set ", what, " '", name, "' to an undefined tensor");
  NEEDLE_CHECK(
      value.shape() == current.shape() && value.dtype() == current.dtype() && value.device() == current.device(),
      ValueError, owner, ": ", what, " '", name, "' is ", shape_str(current.shape()), " ", dtype_name(current.dtype()),
      " on ", current.device(), ", so it cannot be set to ", shape_str(value.shape()), " ", dtype_name(value.dtype()),
      " on ", value.device());
}

void replace_entry(std::vector<std::pair<std::string, Tensor>>& entries, const std::string& owner, const char* what,
                   const std::string& name, const Tensor& value) {
  for (auto& [own_name, tensor] : entries) {
    if (own_name != name) continue;
    check_replacement(owner, what, name, tensor, value);
    tensor = value;
    return;
  }
  throw ValueError(str(owner, ": no ", what, " named '", name, "'"));
}

}  // namespace

void Module::set_parameter(const std::string& name, const Tensor& value) {
  replace_entry(parameters_, this->name(), "parameter", name, value);
}

void Module::set_buffer(const std::string& name, const Tensor& value) {
  replace_entry(buffers_, this->name(), "buffer", name, value);
}

void Module::set_child(const std::string& name, std::shared_ptr<Module> module) {
  NEEDLE_CHECK(module != nullptr, ValueError, this->name(), ": cannot set child '", name, "' to no module");
  for (auto& entry : children_) {
    if (entry.first == name) {
      entry.second = std::move(module);
      return;
    }
  }
  throw ValueError(str(this->name(), ": no submodule named '", name, "'"));
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.reset_grad();
}

void Module::check_device(const Tensor& input, Device device) const {
  NEEDLE_CHECK(input.device() == device, RuntimeError, name(), ": input is on device ", input.device(),
               " but the module's parameters are on device ", device);
}

}  // namespace needle::nn
