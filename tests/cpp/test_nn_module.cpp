// Module: parameter discovery (names, registration order, shared tensors), modes, state dicts (round trip,
// validation before any change), device moves that keep handles, zero_grad, the default forward, the
// initializers' formulas, and a small MLP whose loss falls under plain SGD.
#include <gtest/gtest.h>
#include <needle/needle.h>
#include <needle/nn/init.h>
#include <needle/nn/layers.h>

#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "nn_test_util.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using nn::Module;
using testing::expect_error;
using testing::host;

// A module registering parameters, a buffer and a child interleaved, to pin down the traversal order.
class Mixed final : public Module {
 public:
  Mixed() {
    register_parameter("a", NDArray::ones({2}));
    register_module("sub", std::make_shared<nn::Linear>(2, 3));
    register_buffer("count", NDArray::zeros({1}));
    register_parameter("z", NDArray::zeros({3}));
  }
  [[nodiscard]] std::string name() const override { return "Mixed"; }
};

std::vector<std::string> names_of(const std::vector<std::pair<std::string, Tensor>>& named) {
  std::vector<std::string> names;
  names.reserve(named.size());
  for (const auto& entry : named) names.push_back(entry.first);
  return names;
}

std::shared_ptr<nn::Sequential> mlp(DType dtype = DType::Float64, Device device = cpu_device()) {
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<Module>>{
      std::make_shared<nn::Linear>(3, 4, true, device, dtype), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(4, 2, true, device, dtype)});
}

TEST(NnModule, NamedParametersFollowRegistrationOrderWithDottedNames) {
  const auto model = mlp();
  EXPECT_EQ(names_of(model->named_parameters()),
            (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  const std::vector<Tensor> params = model->parameters();
  ASSERT_EQ(params.size(), 4U);
  EXPECT_TRUE(params[0].same(std::dynamic_pointer_cast<nn::Linear>(model->at(0))->weight()));
  EXPECT_TRUE(params[3].same(std::dynamic_pointer_cast<nn::Linear>(model->at(-1))->bias()));
  for (const Tensor& p : params) EXPECT_TRUE(p.requires_grad());

  Mixed mixed;
  EXPECT_EQ(names_of(mixed.named_parameters()), (std::vector<std::string>{"a", "sub.weight", "sub.bias", "z"}));
  EXPECT_EQ(names_of(mixed.named_buffers()), (std::vector<std::string>{"count"}));
  EXPECT_FALSE(mixed.buffer("count").requires_grad());
  EXPECT_EQ(mixed.child("sub")->name(), "Linear");
  EXPECT_EQ(mixed.children().size(), 1U);

  nn::BatchNorm1d bn(3);
  EXPECT_EQ(names_of(bn.named_parameters()), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(names_of(bn.named_buffers()), (std::vector<std::string>{"running_mean", "running_var"}));
}

TEST(NnModule, NestedNamesOfRecurrentAndTransformerModels) {
  nn::LSTM lstm(2, 3, 2);
  EXPECT_EQ(names_of(lstm.named_parameters()),
            (std::vector<std::string>{"lstm_cells.0.W_ih", "lstm_cells.0.W_hh", "lstm_cells.0.bias_ih",
                                      "lstm_cells.0.bias_hh", "lstm_cells.1.W_ih", "lstm_cells.1.W_hh",
                                      "lstm_cells.1.bias_ih", "lstm_cells.1.bias_hh"}));
  nn::Transformer model(11, 8, 1, 2, 16, 5);
  const std::vector<std::string> names = names_of(model.named_parameters());
  EXPECT_EQ(names.front(), "token_embedding.weight");
  EXPECT_EQ(names[1], "positional_embedding.weight");
  EXPECT_EQ(names[2], "layers.0.ln1.weight");
  EXPECT_EQ(names[4], "layers.0.attn.q_projection.weight");
  EXPECT_EQ(names.back(), "head.bias");
}

TEST(NnModule, SharedModulesAreListedOnceAsParametersButKeptInTheStateDict) {
  const auto shared = std::make_shared<nn::Linear>(2, 2);
  nn::Sequential twice({shared, shared});
  EXPECT_EQ(names_of(twice.named_parameters()), (std::vector<std::string>{"0.weight", "0.bias"}));
  EXPECT_EQ(twice.state_dict().size(), 4U);
}

TEST(NnModule, RegistrationRejectsRepeatedAndDottedNames) {
  Mixed mixed;
  expect_error<ValueError>([&] { mixed.register_parameter("a", NDArray::ones({1})); }, "'a' is already registered");
  expect_error<ValueError>([&] { mixed.register_buffer("sub", NDArray::ones({1})); }, "'sub' is already registered");
  expect_error<ValueError>([&] { mixed.register_parameter("x.y", NDArray::ones({1})); }, "contain no '.'");
  expect_error<TypeError>([&] { mixed.register_parameter("i", NDArray::zeros({1}, DType::Int64)); },
                          "must be floating point");
  expect_error<ValueError>([&] { (void)mixed.parameter("missing"); }, "Mixed: no parameter named 'missing'");
}

TEST(NnModule, TrainAndEvalReachEveryDescendant) {
  nn::Sequential model(
      {std::make_shared<nn::Dropout>(0.5),
       std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<Module>>{std::make_shared<nn::Dropout>(0.5)})});
  const auto inner = std::dynamic_pointer_cast<nn::Sequential>(model.at(1));
  EXPECT_TRUE(inner->at(0)->training());
  model.eval();
  EXPECT_FALSE(model.training());
  EXPECT_FALSE(model.at(0)->training());
  EXPECT_FALSE(inner->at(0)->training());
  model.train();
  EXPECT_TRUE(inner->at(0)->training());
}

TEST(NnModule, DefaultForwardRefusesModulesWithOtherSignatures) {
  nn::LSTM lstm(2, 3);
  Module& as_module = lstm;
  const Tensor x(NDArray::zeros({1, 1, 2}));
  expect_error<RuntimeError>([&] { (void)as_module.forward(x); }, "LSTM: this module takes a different call signature");
  nn::SoftmaxLoss loss;
  expect_error<RuntimeError>([&] { (void)loss.forward(x); }, "SoftmaxLoss: this module takes a different call");
}

TEST(NnModule, StateDictRoundTripCopiesValues) {
  const auto source = mlp();
  const auto target = mlp();
  const Tensor x(testing::random_array({5, 3}, cpu_device(), 7));
  EXPECT_NE(host((*source)(x)), host((*target)(x)));

  const nn::StateDict state = source->state_dict();
  EXPECT_EQ(state.size(), 4U);
  EXPECT_TRUE(state.at("0.weight").shares_storage_with(source->parameters()[0].value()));  // no copy on save
  const Tensor handle = target->parameters()[0];
  target->load_state_dict(state);
  EXPECT_TRUE(handle.same(target->parameters()[0]));
  EXPECT_EQ(host((*source)(x)), host((*target)(x)));
  // Loading copied: writing into the source afterwards leaves the target alone.
  NDArray source_weight = source->parameters()[0].value();
  source_weight.fill(Scalar(0.0));
  EXPECT_NE(host(source->parameters()[0]), host(handle));

  nn::BatchNorm1d bn(2);
  nn::BatchNorm1d bn_copy(2);
  bn(Tensor(testing::random_array({4, 2}, cpu_device(), 8, 0.0, 1.0).astype(DType::Float32)));
  bn_copy.load_state_dict(bn.state_dict());
  EXPECT_EQ(host(bn_copy.running_mean()), host(bn.running_mean()));
  EXPECT_EQ(host(bn_copy.running_var()), host(bn.running_var()));
}

TEST(NnModule, LoadStateDictValidatesEverythingBeforeChangingAnything) {
  const auto model = mlp();
  const auto other = mlp();
  std::vector<std::vector<double>> before;
  for (const Tensor& p : model->parameters()) before.push_back(host(p));
  const auto unchanged = [&] {
    const std::vector<Tensor> params = model->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) EXPECT_EQ(host(params[i]), before[i]) << "parameter " << i;
  };

  // "0.*" sort before the bad "2.weight" and are valid: they must not be loaded either.
  nn::StateDict wrong_shape = other->state_dict();
  wrong_shape["2.weight"] = NDArray::zeros({2, 4}, DType::Float64);
  expect_error<ValueError>([&] { model->load_state_dict(wrong_shape); },
                           "key '2.weight' has shape (2, 4), expected (4, 2)");
  unchanged();

  nn::StateDict wrong_dtype = other->state_dict();
  wrong_dtype["2.bias"] = NDArray::zeros({1, 2}, DType::Float32);
  expect_error<ValueError>([&] { model->load_state_dict(wrong_dtype); }, "key '2.bias' has dtype float32");
  unchanged();

  nn::StateDict missing = other->state_dict();
  missing.erase("2.bias");
  expect_error<ValueError>([&] { model->load_state_dict(missing); }, "missing key '2.bias'");
  unchanged();

  nn::StateDict unexpected = other->state_dict();
  unexpected["3.weight"] = NDArray::zeros({1}, DType::Float64);
  expect_error<ValueError>([&] { model->load_state_dict(unexpected); }, "unexpected key '3.weight'");
  unchanged();

  // Not strict: the known keys load, the rest is ignored.
  model->load_state_dict(missing, /*strict=*/false);
  EXPECT_EQ(host(model->parameters()[0]), host(other->parameters()[0]));
  EXPECT_EQ(host(model->parameters()[3]), before[3]);
  model->load_state_dict(unexpected, /*strict=*/false);
  EXPECT_EQ(host(model->parameters()[3]), host(other->parameters()[3]));
}

TEST(NnModule, ToDeviceMovesValuesAndGradientsKeepingHandles) {
  const auto model = mlp(DType::Float64, cpu_device());
  nn::BatchNorm1d bn(2, 1e-5, 0.1, cpu_device(), DType::Float64);
  const Tensor x(testing::random_array({4, 3}, cpu_device(), 9));
  ops::summation((*model)(x)).backward();
  const std::vector<Tensor> handles = model->parameters();
  const std::vector<double> values = host(handles[0]);
  const std::vector<double> grad = host(handles[0].grad());
  const std::vector<double> expected = host((*model)(x));

  model->to(ref_device());
  bn.to(ref_device());
  const std::vector<Tensor> moved = model->parameters();
  for (std::size_t i = 0; i < handles.size(); ++i) {
    EXPECT_TRUE(handles[i].same(moved[i]));
    EXPECT_EQ(handles[i].device(), ref_device());
    EXPECT_EQ(handles[i].grad().device(), ref_device());
  }
  EXPECT_EQ(bn.running_mean().device(), ref_device());
  EXPECT_EQ(host(handles[0]), values);
  EXPECT_EQ(host(handles[0].grad()), grad);
  testing::expect_all_near(host((*model)(Tensor(x.value().to(ref_device())))), expected, 1e-12);

  // A batch left on the old device is reported by the first layer, naming both devices.
  expect_error<RuntimeError>([&] { (void)(*model)(x); },
                             "Linear: input is on device cpu but the module's parameters are on device ref");
}

TEST(NnModule, ZeroGradClearsEveryParameterGradient) {
  const auto model = mlp();
  ops::summation((*model)(Tensor(testing::random_array({2, 3}, cpu_device(), 10)))).backward();
  for (const Tensor& p : model->parameters()) EXPECT_TRUE(p.grad().defined());
  model->zero_grad();
  for (const Tensor& p : model->parameters()) EXPECT_FALSE(p.grad().defined());
}

// ---- initializers ----------------------------------------------------------------------------------

double max_abs(const std::vector<double>& v) {
  double m = 0.0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

double stddev(const std::vector<double>& v) {
  double mean = 0.0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  double var = 0.0;
  for (double x : v) var += (x - mean) * (x - mean);
  return std::sqrt(var / static_cast<double>(v.size()));
}

TEST(NnInit, KaimingAndXavierUseNeedlesFormulas) {
  Generator generator(3);
  nn::init::GeneratorSource g(&generator);
  const NDArray ku = nn::init::kaiming_uniform(50, 400, std::nullopt, "relu", DType::Float64, cpu_device(), &g);
  EXPECT_EQ(ku.shape(), (Shape{50, 400}));
  const double k_bound = std::sqrt(2.0) * std::sqrt(3.0 / 50.0);
  EXPECT_LE(max_abs(host(ku)), k_bound);
  EXPECT_GT(max_abs(host(ku)), 0.99 * k_bound);

  const NDArray kn = nn::init::kaiming_normal(50, 400, Shape{20000}, "relu", DType::Float64, cpu_device(), &g);
  EXPECT_EQ(kn.shape(), (Shape{20000}));
  EXPECT_NEAR(stddev(host(kn)), std::sqrt(2.0) / std::sqrt(50.0), 0.01);

  const NDArray xu = nn::init::xavier_uniform(30, 70, 2.0, std::nullopt, DType::Float64, cpu_device(), &g);
  const double x_bound = 2.0 * std::sqrt(6.0 / 100.0);
  EXPECT_LE(max_abs(host(xu)), x_bound);
  EXPECT_GT(max_abs(host(xu)), 0.99 * x_bound);
  const NDArray xn = nn::init::xavier_normal(30, 70, 1.0, Shape{20000}, DType::Float64, cpu_device(), &g);
  EXPECT_NEAR(stddev(host(xn)), std::sqrt(2.0 / 100.0), 0.005);

  // The same generator state gives the same numbers.
  Generator generator1(11);
  Generator generator2(11);
  nn::init::GeneratorSource g1(&generator1);
  nn::init::GeneratorSource g2(&generator2);
  EXPECT_EQ(host(nn::init::kaiming_uniform(4, 5, std::nullopt, "relu", DType::Float32, cpu_device(), &g1)),
            host(nn::init::kaiming_uniform(4, 5, std::nullopt, "relu", DType::Float32, ref_device(), &g2)));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("tanh"), 5.0 / 3.0);
  expect_error<ValueError>([] { (void)nn::init::calculate_gain("softplus"); }, "unsupported nonlinearity 'softplus'");
  expect_error<ValueError>([] { (void)nn::init::kaiming_uniform(0, 3); }, "fan_in and fan_out must be positive");
}

TEST(NnInit, LayersDrawTheirParametersFromNeedlesDistributions) {
  manual_seed(5);
  nn::Linear linear(30, 200);
  EXPECT_EQ(linear.weight().shape(), (Shape{30, 200}));
  EXPECT_EQ(linear.bias().shape(), (Shape{1, 200}));
  const double w_bound = std::sqrt(6.0 / 30.0);
  EXPECT_LE(max_abs(host(linear.weight())), w_bound);
  EXPECT_GT(max_abs(host(linear.weight())), 0.95 * w_bound);
  const double b_bound = std::sqrt(6.0 / 200.0);  // kaiming_uniform(out, 1): fan_in = out
  EXPECT_LE(max_abs(host(linear.bias())), b_bound);
  EXPECT_GT(max_abs(host(linear.bias())), 0.9 * b_bound);

  nn::Conv conv(4, 6, 3);
  EXPECT_EQ(conv.weight().shape(), (Shape{3, 3, 4, 6}));
  EXPECT_LE(max_abs(host(conv.weight())), std::sqrt(2.0) * std::sqrt(3.0 / 36.0));
  EXPECT_EQ(conv.bias().shape(), (Shape{6}));
  EXPECT_LE(max_abs(host(conv.bias())), 1.0 / 6.0);

  nn::RNNCell cell(3, 25);
  EXPECT_EQ(cell.W_ih().shape(), (Shape{3, 25}));
  EXPECT_EQ(cell.bias_hh().shape(), (Shape{25}));
  EXPECT_LE(max_abs(host(cell.W_hh())), 0.2);
  EXPECT_GT(max_abs(host(cell.W_hh())), 0.19);

  nn::Embedding embedding(100, 100);
  EXPECT_NEAR(stddev(host(embedding.weight())), 1.0, 0.03);
}

// A source that records every request and answers request k with the constant (k + 1) / 16.
class RecordingSource final : public nn::init::SampleSource {
 public:
  struct Request {
    std::string kind;
    Shape shape;
    DType dtype;
  };
  NDArray uniform(const Shape& shape, DType dtype, Device device) override {
    return answer("uniform", shape, dtype, device);
  }
  NDArray normal(const Shape& shape, DType dtype, Device device) override {
    return answer("normal", shape, dtype, device);
  }
  std::vector<Request> requests;

 private:
  NDArray answer(const std::string& kind, const Shape& shape, DType dtype, Device device) {
    requests.push_back({kind, shape, dtype});
    return NDArray::full(shape, Scalar(static_cast<double>(requests.size()) / 16.0), dtype, device);
  }
};

std::vector<Shape> shapes_of(const std::vector<RecordingSource::Request>& requests, const std::string& kind) {
  std::vector<Shape> shapes;
  for (const auto& request : requests) {
    EXPECT_EQ(request.kind, kind);
    shapes.push_back(request.shape);
  }
  return shapes;
}

TEST(NnInit, LayersDrawThroughTheInitializerSourceInTheDocumentedOrder) {
  const auto source = std::make_shared<RecordingSource>();
  const nn::init::ScopedInitializerSource scope(source);
  EXPECT_EQ(nn::init::initializer_source(), source);

  // Linear: weight = kaiming_uniform(in, out), then bias = kaiming_uniform(out, 1) reshaped (1, out).
  const nn::Linear linear(3, 4);
  EXPECT_EQ(shapes_of(source->requests, "uniform"), (std::vector<Shape>{{3, 4}, {4, 1}}));
  EXPECT_EQ(source->requests[0].dtype, DType::Float32);
  const double w_bound = std::sqrt(2.0) * std::sqrt(3.0 / 3.0);
  const float w = static_cast<float>(1.0 / 16.0) * static_cast<float>(2 * w_bound) + static_cast<float>(-w_bound);
  EXPECT_EQ(host(linear.weight()), std::vector<double>(12, w));
  const double b_bound = std::sqrt(2.0) * std::sqrt(3.0 / 4.0);
  const float b = static_cast<float>(2.0 / 16.0) * static_cast<float>(2 * b_bound) + static_cast<float>(-b_bound);
  EXPECT_EQ(host(linear.bias()), std::vector<double>(4, b));

  // Conv: weight kaiming_uniform(cin*k*k, cout*k*k) of shape (k, k, cin, cout), bias uniform +-1/sqrt(cin*k*k).
  source->requests.clear();
  const nn::Conv conv(2, 3, 3);
  EXPECT_EQ(shapes_of(source->requests, "uniform"), (std::vector<Shape>{{3, 3, 2, 3}, {3}}));
  const double c_bound = 1.0 / std::sqrt(18.0);
  const float c = static_cast<float>(2.0 / 16.0) * static_cast<float>(2 * c_bound) + static_cast<float>(-c_bound);
  EXPECT_EQ(host(conv.bias()), std::vector<double>(3, c));

  // Cells: W_ih, W_hh, bias_ih, bias_hh, uniform in +-sqrt(1 / hidden); float64 layers draw float64.
  source->requests.clear();
  const nn::LSTMCell cell(3, 2, true, cpu_device(), DType::Float64);
  EXPECT_EQ(shapes_of(source->requests, "uniform"), (std::vector<Shape>{{3, 8}, {2, 8}, {8}, {8}}));
  EXPECT_EQ(source->requests[3].dtype, DType::Float64);
  const double k = std::sqrt(0.5);
  EXPECT_EQ(host(cell.bias_hh()), std::vector<double>(8, 4.0 / 16.0 * (2 * k) - k));

  // Embedding: standard normal samples as they are.
  source->requests.clear();
  const nn::Embedding embedding(6, 3);
  EXPECT_EQ(shapes_of(source->requests, "normal"), (std::vector<Shape>{{6, 3}}));
  EXPECT_EQ(host(embedding.weight()), std::vector<double>(18, 1.0 / 16.0));

  // Composite layers: their parts in registration order.
  source->requests.clear();
  const nn::RNN rnn(3, 2, 2);
  EXPECT_EQ(shapes_of(source->requests, "uniform"),
            (std::vector<Shape>{{3, 2}, {2, 2}, {2}, {2}, {2, 2}, {2, 2}, {2}, {2}}));
  source->requests.clear();
  const nn::Transformer transformer(5, 4, 1, 2, 6, 7);
  std::vector<std::string> kinds;
  std::vector<Shape> shapes;
  for (const auto& request : source->requests) {
    kinds.push_back(request.kind);
    shapes.push_back(request.shape);
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"normal", "normal", "uniform", "uniform", "uniform", "uniform", "uniform",
                                             "uniform", "uniform", "uniform", "uniform", "uniform"}));
  EXPECT_EQ(shapes,
            (std::vector<Shape>{
                {5, 4}, {7, 4}, {4, 4}, {4, 4}, {4, 4}, {4, 4}, {4, 6}, {6, 1}, {6, 4}, {4, 1}, {4, 5}, {5, 1}}));
}

class FailingSource final : public nn::init::SampleSource {
 public:
  NDArray uniform(const Shape& /*shape*/, DType /*dtype*/, Device /*device*/) override {
    throw std::runtime_error("no samples today");
  }
  NDArray normal(const Shape& shape, DType dtype, Device device) override {
    return NDArray::zeros({shape.empty() ? 1 : shape[0] + 1}, dtype, device);  // the wrong shape
  }
};

TEST(NnInit, SourceErrorsReachTheCallerAndScopesRestoreTheSourceBefore) {
  const std::shared_ptr<nn::init::SampleSource> before = nn::init::initializer_source();
  {
    const nn::init::ScopedInitializerSource scope(std::make_shared<FailingSource>());
    expect_error<std::runtime_error>([] { (void)nn::Linear(2, 3); }, "no samples today");
    expect_error<ValueError>([] { (void)nn::Embedding(2, 3); }, "normal samples of shape (2, 3)");
  }
  EXPECT_EQ(nn::init::initializer_source(), before);

  // The process-wide source serves threads without a scope; null restores the default.
  const auto recording = std::make_shared<RecordingSource>();
  nn::init::set_initializer_source(recording);
  (void)nn::init::kaiming_uniform(2, 3);
  EXPECT_EQ(recording->requests.size(), 1U);
  nn::init::set_initializer_source(nullptr);
  EXPECT_NE(nn::init::initializer_source(), recording);

  // A source given per call wins over the thread's.
  RecordingSource explicit_source;
  (void)nn::init::normal({2}, 0.0, 1.0, DType::Float32, cpu_device(), &explicit_source);
  EXPECT_EQ(explicit_source.requests.size(), 1U);
}

// ---- training --------------------------------------------------------------------------------------

TEST(NnModule, SgdOnATinyMlpLowersTheLoss) {
  manual_seed(1);
  // Two classes separated by the sign of x0 * x1 (not linearly separable: the hidden layer must learn).
  const std::int64_t n = 64;
  const NDArray x = testing::random_array({n, 2}, cpu_device(), 12).astype(DType::Float32);
  const std::vector<float> xs = x.to_vector<float>();
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = xs[2 * i] * xs[2 * i + 1] > 0 ? 1 : 0;
  const Tensor inputs(x);
  const Tensor targets(NDArray::from_vector(labels, {n}));

  nn::Sequential model(
      {std::make_shared<nn::Linear>(2, 32), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(32, 2)});
  nn::SoftmaxLoss loss_fn;
  const auto loss_value = [&] {
    NoGradGuard no_grad;
    return loss_fn(model(inputs), targets).value().item().to<double>();
  };
  const double initial = loss_value();
  for (int step = 0; step < 200; ++step) {
    model.zero_grad();
    loss_fn(model(inputs), targets).backward();
    for (Tensor& p : model.parameters()) p.set_value(p.value() - p.grad().value() * Scalar(0.2));
  }
  const double final_loss = loss_value();
  EXPECT_LT(final_loss, 0.5 * initial) << "initial " << initial << ", final " << final_loss;
}

}  // namespace
}  // namespace needle
