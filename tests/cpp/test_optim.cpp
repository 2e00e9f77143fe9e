// Optimizers and gradient clipping: each against updates computed by hand (three steps on a small
// tensor with fixed gradients), dtypes kept, parameters without gradients skipped, argument errors.
#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/optim/clip_grad.h>
#include <needle/optim/optimizer.h>

#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "file_test_util.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::expect_error;
using testing::TempDir;
using testing::values_of;

// The gradients fed to every optimizer, one per step (set directly, so no autograd is involved).
const std::vector<std::vector<double>> kGrads = {{0.5, -1.0}, {1.0, 2.0}, {-0.5, 0.25}};

class OptimTest : public ::testing::TestWithParam<Device> {
 protected:
  [[nodiscard]] Tensor param(const std::vector<double>& values, DType dtype = DType::Float64) const {
    return Tensor(NDArray::from_vector(values, {static_cast<std::int64_t>(values.size())}, GetParam()).astype(dtype),
                  true);
  }
  [[nodiscard]] Tensor grad(const std::vector<double>& values, DType dtype = DType::Float64) const {
    return Tensor(NDArray::from_vector(values, {static_cast<std::int64_t>(values.size())}, GetParam()).astype(dtype));
  }

  // Runs three steps of `opt` on p = [1, -2] with kGrads and compares p after each with `expected`.
  void expect_steps(optim::Optimizer& opt, Tensor p, const std::vector<std::vector<double>>& expected) const {
    for (std::size_t step = 0; step < expected.size(); ++step) {
      SCOPED_TRACE(str("step ", step + 1));
      p.set_grad(grad(kGrads[step]));
      opt.step();
      const std::vector<double> got = values_of(p);
      ASSERT_EQ(got.size(), expected[step].size());
      for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[step][i], 1e-12);
    }
  }
};

TEST_P(OptimTest, PlainSGDSubtractsLrTimesGrad) {
  const Tensor p = param({1, -2});
  optim::SGD opt({p}, 0.1);
  // p - 0.1 * g, step by step: [0.95, -1.9], [0.85, -2.1], [0.9, -2.125].
  expect_steps(opt, p, {{0.95, -1.9}, {0.85, -2.1}, {0.9, -2.125}});
}

TEST_P(OptimTest, SGDMomentumIsNeedlesMovingAverageWithWeightDecay) {
  const Tensor p = param({1, -2});
  optim::SGD opt({p}, 0.1, 0.9, 0.01);
  // Step 1: g = [0.5 + 0.01, -1 - 0.02] = [0.51, -1.02]; u = 0.1 g = [0.051, -0.102];
  //         p = [1 - 0.0051, -2 + 0.0102] = [0.9949, -1.9898].
  // Step 2: g = [1 + 0.009949, 2 - 0.019898] = [1.009949, 1.980102]; u = 0.9 u + 0.1 g
  //         = [0.1468949, 0.1062102]; p = [0.9949 - 0.01468949, -1.9898 - 0.01062102].
  // Step 3: g = [-0.5 + 0.0098021051, 0.25 - 0.0200042102]; u = 0.9 u + 0.1 g; p -= 0.1 u.
  expect_steps(opt, p, {{0.9949, -1.9898}, {0.98021051, -2.00042102}, {0.971891947949, -2.012279895898}});
}

TEST_P(OptimTest, AdamWithBiasCorrection) {
  const Tensor p = param({1, -2});
  optim::Adam opt({p}, 0.1);
  // Step 1: the corrected moments are g and g^2, so p moves by lr * g / (|g| + eps) ~ lr * sign(g).
  expect_steps(opt, p,
               {{0.900000002, -1.900000001},
                {0.8034818006385094, -1.9366103534720749},
                {0.7614728708755779, -1.9718369581894204}});
  EXPECT_EQ(opt.steps(), 3);
}

TEST_P(OptimTest, AdamWeightDecayIsAddedToTheGradient) {
  const Tensor p = param({1, -2});
  optim::Adam opt({p}, 0.1, 0.9, 0.999, 1e-8, 0.1);
  expect_steps(opt, p,
               {{0.9000000016666666, -1.9000000008333333},
                {0.8025029703202308, -1.9250178784643248},
                {0.751527658480396, -1.94604186133783}});
}

TEST_P(OptimTest, AdamWDecaysTheParameterItself) {
  const Tensor p = param({1, -2});
  optim::AdamW opt({p}, 0.1, 0.9, 0.999, 1e-8, 0.1);
  // Step 1: p * (1 - 0.01) = [0.99, -1.98], then the Adam step of ~0.1: [0.89, -1.88].
  expect_steps(opt, p,
               {{0.890000002, -1.880000001},
                {0.7845818006185094, -1.897810353462075},
                {0.7347270528493928, -1.9140588546447996}});
}

TEST_P(OptimTest, UpdatesStayInTheParameterDtypeAndSkipMissingGradients) {
  const Tensor a = param({1, 2}, DType::Float32);
  const Tensor b = param({3, 4}, DType::Float32);
  optim::Adam opt({a, b}, 0.5);
  // d/da sum(a * a) = 2a; b is not part of the loss, so it gets no gradient and is left alone.
  ops::summation(ops::multiply(a, a)).backward();
  opt.step();
  EXPECT_EQ(a.dtype(), DType::Float32);
  EXPECT_TRUE(a.is_leaf());
  EXPECT_FALSE(b.grad().defined());
  const std::vector<double> got = values_of(a);
  EXPECT_NEAR(got[0], 0.5, 1e-6);
  EXPECT_NEAR(got[1], 1.5, 1e-6);
  EXPECT_EQ(values_of(b), (std::vector<double>{3, 4}));
  opt.reset_grad();
  EXPECT_FALSE(a.grad().defined());
}

TEST_P(OptimTest, LearningRateCanBeChanged) {
  Tensor p = param({1});
  optim::SGD opt({p}, 0.1);
  opt.set_lr(0.5);
  EXPECT_EQ(opt.lr(), 0.5);
  p.set_grad(grad({2}));
  opt.step();
  EXPECT_EQ(values_of(p), (std::vector<double>{0}));
  expect_error<ValueError>([&] { opt.set_lr(-1); }, "SGD: invalid learning rate -1");
}

TEST_P(OptimTest, RejectsBadArguments) {
  Tensor p = param({1});
  expect_error<ValueError>([&] { optim::SGD({p}, -0.1); }, "SGD: invalid learning rate");
  expect_error<ValueError>([&] { optim::SGD({p}, 0.1, 1.0); }, "SGD: invalid momentum 1");
  expect_error<ValueError>([&] { optim::SGD({p}, 0.1, 0.0, -1.0); }, "SGD: invalid weight_decay");
  expect_error<ValueError>([&] { optim::Adam({p}, 0.1, 1.5); }, "Adam: invalid beta1 1.5");
  expect_error<ValueError>([&] { optim::AdamW({p}, 0.1, 0.9, -0.1); }, "AdamW: invalid beta2");
  expect_error<ValueError>([&] { optim::Adam({p}, 0.1, 0.9, 0.999, -1.0); }, "Adam: invalid eps");
  expect_error<ValueError>([&] { optim::Adam({Tensor()}); }, "Adam: parameter 0 is an undefined tensor");
  const Tensor ints(NDArray::from_vector(std::vector<std::int64_t>{1}, {1}, GetParam()));
  expect_error<TypeError>([&] { optim::SGD({p, ints}); }, "SGD: parameter 1 has dtype int64");
}

TEST_P(OptimTest, ClipGradNormScalesEveryGradientTogether) {
  Tensor a = param({3, 0});
  Tensor b = param({0, 4}, DType::Float32);
  const Tensor c = param({7});  // no gradient: ignored
  a.set_grad(grad({3, 0}));
  b.set_grad(grad({0, 4}, DType::Float32));
  // The global norm is sqrt(9 + 16) = 5; scaled by 1 / (5 + 1e-6).
  EXPECT_NEAR(optim::clip_grad_norm({a, b, c}, 1.0), 5.0, 1e-12);
  const double scale = 1.0 / (5.0 + 1e-6);
  EXPECT_NEAR(values_of(a.grad())[0], 3 * scale, 1e-12);
  EXPECT_NEAR(values_of(b.grad())[1], 4 * scale, 1e-6);
  EXPECT_EQ(b.grad().dtype(), DType::Float32);
  EXPECT_FALSE(c.grad().defined());
  // Under the limit nothing changes, but the norm is still reported.
  EXPECT_NEAR(optim::clip_grad_norm({a, b}, 10.0), 5.0 * scale, 1e-6);
  EXPECT_NEAR(values_of(a.grad())[0], 3 * scale, 1e-12);
  expect_error<ValueError>([&] { optim::clip_grad_norm({a}, -1.0); }, "clip_grad_norm: max_norm must be >= 0");
}

std::vector<double> array_values(const NDArray& a) { return a.astype(DType::Float64).to_vector<double>(); }

// Parameters of two shapes and dtypes plus one that never gets a gradient, so the state dict holds
// buffers for some parameters only.
std::vector<Tensor> resume_params(Device device) {
  std::vector<double> matrix(6);
  for (std::size_t i = 0; i < matrix.size(); ++i) matrix[i] = 0.25 * static_cast<double>(i) - 0.6;
  return {Tensor(NDArray::from_vector(matrix, {2, 3}, device).astype(DType::Float32), true),
          Tensor(NDArray::from_vector(std::vector<double>{1.5, -2.0, 0.125, 3.0}, {4}, device), true),
          Tensor(NDArray::from_vector(std::vector<double>{7.0}, {1}, device), true)};
}

// Fresh tensors holding copies of `params`' values.
std::vector<Tensor> copies_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params) out.emplace_back(p.value().copy(), true);
  return out;
}

// A gradient for step `step` that differs per step, parameter and element; none for the last parameter.
void set_step_grads(const std::vector<Tensor>& params, int step) {
  for (std::size_t j = 0; j + 1 < params.size(); ++j) {
    Tensor p = params[j];
    std::vector<double> g(static_cast<std::size_t>(p.value().size()));
    for (std::size_t i = 0; i < g.size(); ++i) g[i] = std::sin(1.7 * step + 3.1 * static_cast<double>(j) + 0.9 * i);
    p.set_grad(Tensor(NDArray::from_vector(g, p.shape(), p.device()).astype(p.dtype())));
  }
}

using OptimizerFactory = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>;

// Every optimizer with its state: SGD with momentum and weight decay, Adam with L2 decay, AdamW.
std::vector<std::pair<const char*, OptimizerFactory>> stateful_optimizers() {
  return {{"SGD", [](std::vector<Tensor> ps) { return std::make_unique<optim::SGD>(std::move(ps), 0.1, 0.9, 0.01); }},
          {"Adam",
           [](std::vector<Tensor> ps) {
             return std::make_unique<optim::Adam>(std::move(ps), 0.05, 0.9, 0.999, 1e-8, 0.01);
           }},
          {"AdamW", [](std::vector<Tensor> ps) { return std::make_unique<optim::AdamW>(std::move(ps), 0.05); }}};
}

TEST_P(OptimTest, StateDictResumesBitExactly) {
  TempDir dir;
  for (const auto& [kind, make] : stateful_optimizers()) {
    SCOPED_TRACE(kind);
    const std::vector<Tensor> params = resume_params(GetParam());
    const std::unique_ptr<optim::Optimizer> original = make(params);
    for (int step = 0; step < 3; ++step) {
      set_step_grads(params, step);
      original->step();
    }
    const optim::OptimizerState state = original->state_dict();
    EXPECT_EQ(state.count("lr"), 1U);
    EXPECT_EQ(state.count("state.2.exp_avg") + state.count("state.2.momentum_buffer"), 0U);  // never updated

    // Resumed in memory, and through a safetensors file.
    io::save_safetensors(dir.file(std::string(kind) + ".safetensors"), state);
    const std::vector<Tensor> in_memory = copies_of(params);
    const std::vector<Tensor> from_file = copies_of(params);
    const std::unique_ptr<optim::Optimizer> resumed = make(in_memory);
    const std::unique_ptr<optim::Optimizer> reloaded = make(from_file);
    resumed->set_lr(1.0);  // the state's learning rate wins
    resumed->load_state_dict(state);
    reloaded->load_state_dict(io::load_safetensors(dir.file(std::string(kind) + ".safetensors"), GetParam()));
    EXPECT_EQ(resumed->lr(), original->lr());

    for (int step = 3; step < 5; ++step) {
      for (const auto* group : {&params, &in_memory, &from_file}) set_step_grads(*group, step);
      original->step();
      resumed->step();
      reloaded->step();
    }
    for (std::size_t j = 0; j < params.size(); ++j) {
      EXPECT_EQ(values_of(in_memory[j]), values_of(params[j])) << "parameter " << j;
      EXPECT_EQ(values_of(from_file[j]), values_of(params[j])) << "parameter " << j;
      EXPECT_EQ(in_memory[j].dtype(), params[j].dtype());
    }
  }
}

TEST_P(OptimTest, FreshStateDictLoadsIntoAFreshOptimizer) {
  const std::vector<Tensor> params = resume_params(GetParam());
  optim::Adam adam(params);
  const optim::OptimizerState state = adam.state_dict();
  EXPECT_EQ(state.size(), 3U);  // lr, param_count, step
  EXPECT_EQ(state.at("step").item().to<std::int64_t>(), 0);
  adam.load_state_dict(state);
  EXPECT_EQ(adam.steps(), 0);
}

TEST_P(OptimTest, MismatchedStateDictIsRejectedAndChangesNothing) {
  const std::vector<Tensor> params = resume_params(GetParam());
  optim::Adam adam(params, 0.05);
  optim::SGD sgd(params, 0.1, 0.9);
  set_step_grads(params, 0);
  adam.step();
  sgd.step();
  const optim::OptimizerState adam_state = adam.state_dict();

  // The target: an Adam with its own state, which a failed load must leave as it is.
  const std::vector<Tensor> other = copies_of(params);
  optim::Adam target(other, 0.01);
  set_step_grads(other, 5);
  target.step();
  target.step();
  const optim::OptimizerState before = target.state_dict();

  const auto expect_rejected = [&](const optim::OptimizerState& state, const std::string& fragment) {
    expect_error<ValueError>([&] { target.load_state_dict(state); }, fragment);
    EXPECT_EQ(target.steps(), 2);
    EXPECT_EQ(target.lr(), 0.01);
    const optim::OptimizerState after = target.state_dict();
    ASSERT_EQ(after.size(), before.size());
    for (const auto& [key, value] : before) EXPECT_EQ(array_values(after.at(key)), array_values(value)) << key;
  };
  expect_rejected(sgd.state_dict(), "Adam.load_state_dict: missing key 'step'");
  optim::OptimizerState sgd_like = adam_state;
  sgd_like.emplace("state.0.momentum_buffer", adam_state.at("state.0.exp_avg"));
  expect_rejected(sgd_like, "unexpected key 'state.0.momentum_buffer'");

  optim::OptimizerState wrong_count = adam_state;
  wrong_count.insert_or_assign("param_count", optim::state_scalar(std::int64_t{2}));
  expect_rejected(wrong_count, "the state is of 2 parameters, this optimizer has 3");

  optim::OptimizerState out_of_range = adam_state;
  out_of_range.emplace("state.3.exp_avg", adam_state.at("state.1.exp_avg"));
  expect_rejected(out_of_range, "key 'state.3.exp_avg' is for parameter 3, this optimizer has 3");

  optim::OptimizerState wrong_shape = adam_state;
  wrong_shape.insert_or_assign("state.1.exp_avg_sq", adam_state.at("state.1.exp_avg_sq").reshape({2, 2}));
  expect_rejected(wrong_shape, "key 'state.1.exp_avg_sq' has shape (2, 2), parameter 1 has shape (4,)");

  optim::OptimizerState wrong_dtype = adam_state;
  wrong_dtype.insert_or_assign("state.0.exp_avg", adam_state.at("state.0.exp_avg").astype(DType::Float64));
  expect_rejected(wrong_dtype, "key 'state.0.exp_avg' has dtype float64, parameter 0 has dtype float32");

  optim::OptimizerState half_moment = adam_state;
  half_moment.erase("state.1.exp_avg_sq");
  expect_rejected(half_moment, "key 'state.1.exp_avg' without 'state.1.exp_avg_sq'");

  optim::OptimizerState float_step = adam_state;
  float_step.insert_or_assign("step", optim::state_scalar(1.0));
  expect_rejected(float_step, "key 'step' must be an integer, got dtype float64");

  optim::OptimizerState vector_lr = adam_state;
  vector_lr.insert_or_assign("lr", NDArray::zeros({2}, DType::Float64));
  expect_rejected(vector_lr, "key 'lr' must hold one number, got shape (2,)");

  optim::OptimizerState negative_lr = adam_state;
  negative_lr.insert_or_assign("lr", optim::state_scalar(-1.0));
  expect_rejected(negative_lr, "invalid learning rate -1");

  optim::OptimizerState bad_key = adam_state;
  bad_key.emplace("state.x.exp_avg", adam_state.at("state.0.exp_avg"));
  expect_rejected(bad_key, "unexpected key 'state.x.exp_avg'");

  // Loading a valid state after all those failures still works.
  target.load_state_dict(adam_state);
  EXPECT_EQ(target.steps(), 1);
  EXPECT_EQ(target.lr(), 0.05);
}

TEST_P(OptimTest, LoadedStateDoesNotAliasTheCallersArrays) {
  const std::vector<Tensor> params = resume_params(GetParam());
  optim::SGD sgd(params, 0.1, 0.5);
  set_step_grads(params, 0);
  sgd.step();
  optim::OptimizerState state = sgd.state_dict();
  const std::vector<Tensor> other = copies_of(params);
  optim::SGD resumed(other, 0.1, 0.5);
  resumed.load_state_dict(state);
  const std::vector<double> loaded = array_values(resumed.state_dict().at("state.0.momentum_buffer"));
  state.at("state.0.momentum_buffer").fill(42.0);
  EXPECT_EQ(array_values(resumed.state_dict().at("state.0.momentum_buffer")), loaded);
}

INSTANTIATE_TEST_SUITE_P(Devices, OptimTest, ::testing::Values(ref_device(), cpu_device()),
                         [](const ::testing::TestParamInfo<Device>& info) { return info.param.name(); });

}  // namespace
}  // namespace needle
