// The optimizer base: parameter checks, gradient reset, the learning rate, and the validation shared by
// every optimizer's load_state_dict.
#include "needle/optim/optimizer.h"

#include <algorithm>
#include <charconv>
#include <string_view>
#include <utility>

namespace needle::optim {

namespace {

constexpr std::string_view kBufferPrefix = "state.";

// Splits "state.<index>.<field>"; false for any other key (or an index that is not a plain number).
bool parse_buffer_key(const std::string& key, std::size_t& index, std::string& field) {
  const std::string_view view(key);
  if (view.substr(0, kBufferPrefix.size()) != kBufferPrefix) return false;
  const std::string_view rest = view.substr(kBufferPrefix.size());
  const std::size_t dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  const char* first = rest.data();
  const char* last = rest.data() + dot;
  const auto [end, error] = std::from_chars(first, last, index);
  if (error != std::errc() || end != last) return false;
  field = std::string(rest.substr(dot + 1));
  return !field.empty();
}

}  // namespace

NDArray state_scalar(double value) { return NDArray::full({}, value, DType::Float64); }

NDArray state_scalar(std::int64_t value) { return NDArray::full({}, value, DType::Int64); }

Scalar read_state_scalar(const OptimizerState& state, const std::string& key, bool integral, const std::string& owner) {
  const auto found = state.find(key);
  NEEDLE_CHECK(found != state.end(), ValueError, owner, ": missing key '", key, "'");
  const NDArray& value = found->second;
  NEEDLE_CHECK(value.size() == 1, ValueError, owner, ": key '", key, "' must hold one number, got shape ",
               shape_str(value.shape()));
  const bool dtype_fits = integral ? is_integral(value.dtype()) : is_floating(value.dtype());
  NEEDLE_CHECK(dtype_fits, ValueError, owner, ": key '", key, "' must be ", integral ? "an integer" : "floating point",
               ", got dtype ", dtype_name(value.dtype()));
  return value.item();
}

Optimizer::Optimizer(std::vector<Tensor> params, double lr, const char* name)
    : params_(std::move(params)), lr_(lr), name_(name) {
  NEEDLE_CHECK(lr >= 0.0, ValueError, name_, ": invalid learning rate ", lr, " (must be >= 0)");
  for (std::size_t i = 0; i < params_.size(); ++i) {
    NEEDLE_CHECK(params_[i].defined(), ValueError, name_, ": parameter ", i, " is an undefined tensor");
    NEEDLE_CHECK(is_floating(params_[i].dtype()), TypeError, name_, ": parameter ", i, " has dtype ",
                 dtype_name(params_[i].dtype()), "; only floating-point tensors can be optimized");
  }
}

void Optimizer::reset_grad() {
  for (Tensor& p : params_) p.reset_grad();
}

void Optimizer::set_lr(double lr) {
  NEEDLE_CHECK(lr >= 0.0, ValueError, name_, ": invalid learning rate ", lr, " (must be >= 0)");
  lr_ = lr;
}

OptimizerState Optimizer::base_state() const {
  return {{"lr", state_scalar(lr_)}, {"param_count", state_scalar(static_cast<std::int64_t>(params_.size()))}};
}

OptimizerState Optimizer::state_dict() const { return base_state(); }

void Optimizer::load_state_dict(const OptimizerState& state) { lr_ = check_state(state, {}, {}).lr; }

Optimizer::CheckedState Optimizer::check_state(const OptimizerState& state,
                                               const std::vector<std::string>& buffer_fields,
                                               const std::vector<std::string>& scalar_keys) const {
  const std::string owner = std::string(name_) + ".load_state_dict";
  CheckedState checked;
  checked.lr = read_state_scalar(state, "lr", /*integral=*/false, owner).to<double>();
  NEEDLE_CHECK(checked.lr >= 0.0, ValueError, owner, ": invalid learning rate ", checked.lr, " (must be >= 0)");
  const auto count = read_state_scalar(state, "param_count", /*integral=*/true, owner).to<std::int64_t>();
  NEEDLE_CHECK(count == static_cast<std::int64_t>(params_.size()), ValueError, owner, ": the state is of ", count,
               " parameters, this optimizer has ", params_.size());
  for (const std::string& key : scalar_keys) {
    const auto found = state.find(key);
    NEEDLE_CHECK(found != state.end(), ValueError, owner, ": missing key '", key, "'");
    checked.scalars.emplace(key, found->second);
  }
  for (const auto& [key, value] : state) {
    if (key == "lr" || key == "param_count" || checked.scalars.count(key) != 0) continue;
    std::size_t index = 0;
    std::string field;
    const bool known = parse_buffer_key(key, index, field) &&
                       std::find(buffer_fields.begin(), buffer_fields.end(), field) != buffer_fields.end();
    NEEDLE_CHECK(known, ValueError, owner, ": unexpected key '", key, "' (a state dict of another optimizer?)");
    NEEDLE_CHECK(index < params_.size(), ValueError, owner, ": key '", key, "' is for parameter ", index,
                 ", this optimizer has ", params_.size());
    const Tensor& param = params_[index];
    NEEDLE_CHECK(value.shape() == param.shape(), ValueError, owner, ": key '", key, "' has shape ",
                 shape_str(value.shape()), ", parameter ", index, " has shape ", shape_str(param.shape()));
    NEEDLE_CHECK(value.dtype() == param.dtype(), ValueError, owner, ": key '", key, "' has dtype ",
                 dtype_name(value.dtype()), ", parameter ", index, " has dtype ", dtype_name(param.dtype()));
    // A copy, so that writing into the caller's arrays later never changes this optimizer.
    checked.buffers[field].emplace(index, value.to(param.device()).copy());
  }
  return checked;
}

}  // namespace needle::optim
