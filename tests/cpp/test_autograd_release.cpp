// Letting go of deep graphs: dropping the last handle to the end of a long chain of ops (never
// differentiated, or differentiated with retain_graph) frees every node without nesting a destructor per
// node, so no depth overflows the stack; backward and the graph walks are iterative too.
#include <gtest/gtest.h>
#include <needle/debug/graph_viz.h>
#include <needle/debug/memory.h>
#include <needle/needle.h>

#include <cmath>
#include <cstddef>
#include <string>
#include <thread>
#include <vector>

namespace needle {
namespace {

// Far deeper than any stack holds nested destructors (a few tens of thousands overflowed 8 MiB).
constexpr int kDeep = 200000;

Tensor scalar_leaf(double value) {
  return Tensor(NDArray::from_vector(std::vector<double>{value}, {1}, cpu_device()), true);
}

// y = x * 1 * 1 * ... (n times): a chain of n multiply nodes behind the returned tensor.
Tensor chain(const Tensor& x, int n) {
  Tensor y = x;
  for (int i = 0; i < n; ++i) y = y * Scalar(1.0);
  return y;
}

double value_of(const Tensor& t) { return t.value().item().to<double>(); }

TEST(GraphRelease, DroppingALongChainNeverDifferentiated) {
  const std::size_t before = TensorImpl::live_count();
  {
    const Tensor x = scalar_leaf(2.0);
    Tensor y = chain(x, kDeep);
    EXPECT_GE(TensorImpl::live_count(), before + kDeep);
    y = Tensor();                                     // the last handle to the chain's end: every node goes
    EXPECT_EQ(TensorImpl::live_count(), before + 1);  // x alone
  }
  EXPECT_EQ(TensorImpl::live_count(), before);
}

TEST(GraphRelease, DroppingALongChainAfterBackwardWithRetainGraph) {
  const std::size_t before = TensorImpl::live_count();
  {
    const Tensor x = scalar_leaf(2.0);
    Tensor y = chain(x, kDeep);
    y.backward(Tensor(), /*retain_graph=*/true);
    EXPECT_DOUBLE_EQ(value_of(x.grad()), 1.0);
    y.backward(Tensor(), /*retain_graph=*/true);  // the graph is still whole
    EXPECT_DOUBLE_EQ(value_of(x.grad()), 2.0);
    y = Tensor();
  }
  EXPECT_EQ(TensorImpl::live_count(), before);
}

TEST(GraphRelease, BackwardThroughAHundredThousandOps) {
  const std::size_t before = TensorImpl::live_count();
  {
    const Tensor x = scalar_leaf(0.5);
    Tensor y = x;
    for (int i = 0; i < 50000; ++i) y = (y + Scalar(1.0)) * Scalar(1.0);  // two nodes per step
    EXPECT_DOUBLE_EQ(value_of(y), 50000.5);
    y.backward();
    EXPECT_DOUBLE_EQ(value_of(x.grad()), 1.0);
    EXPECT_EQ(autograd::topological_order({x}).size(), 1U);
  }
  EXPECT_EQ(TensorImpl::live_count(), before);
}

TEST(GraphRelease, TopologicalOrderAndGraphDotOfADeepChain) {
  const Tensor x = scalar_leaf(1.0);
  const Tensor y = chain(x, kDeep);
  const std::vector<Tensor> order = autograd::topological_order({y});
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kDeep) + 1);
  EXPECT_TRUE(order.front().same(x));
  EXPECT_TRUE(order.back().same(y));
  const std::string dot = debug::graph_dot(y);
  EXPECT_NE(dot.find("t200000"), std::string::npos);
}

// An RNN cell applied step after step without detaching the hidden state: the graph grows by a handful
// of nodes per step, through the parameters' uses too.
Tensor unrolled_rnn(nn::RNNCell& cell, int steps) {
  const Tensor x(NDArray::full({1, 2}, Scalar(0.1), DType::Float32, cpu_device()));
  Tensor h(NDArray::zeros({1, 3}, DType::Float32, cpu_device()));
  for (int t = 0; t < steps; ++t) h = cell(x, h);
  return ops::summation(h);
}

TEST(GraphRelease, UnrolledRnnCellDroppedWithoutBackward) {
  nn::RNNCell cell(2, 3, true, "tanh", cpu_device(), DType::Float32);
  const std::size_t before = TensorImpl::live_count();
  Tensor loss = unrolled_rnn(cell, 40000);
  EXPECT_GT(TensorImpl::live_count(), before + 40000);
  loss = Tensor();
  EXPECT_EQ(TensorImpl::live_count(), before);
}

TEST(GraphRelease, UnrolledRnnCellDroppedAfterBackward) {
  nn::RNNCell cell(2, 3, true, "tanh", cpu_device(), DType::Float32);
  const std::size_t before = TensorImpl::live_count();
  for (const bool retain : {true, false}) {
    Tensor loss = unrolled_rnn(cell, 40000);
    loss.backward(Tensor(), retain);
    const std::vector<float> grad = cell.W_hh().grad().value().to_vector<float>();
    for (const float g : grad) EXPECT_TRUE(std::isfinite(g));
    loss = Tensor();
    for (const Tensor& p : cell.parameters()) Tensor(p).reset_grad();
    EXPECT_EQ(TensorImpl::live_count(), before) << "retain_graph=" << retain;
  }
}

// A gradient that carries a graph of its own (what create_graph leaves in a leaf's grad) is let go of
// the same way.
TEST(GraphRelease, ALeafWhoseGradientHoldsADeepGraph) {
  const std::size_t before = TensorImpl::live_count();
  {
    Tensor leaf = scalar_leaf(1.0);
    Tensor other = scalar_leaf(3.0);
    leaf.set_grad(chain(other, kDeep));
    other = Tensor();  // still alive through leaf's gradient's graph
    EXPECT_DOUBLE_EQ(value_of(leaf.grad()), 3.0);
  }
  EXPECT_EQ(TensorImpl::live_count(), before);
}

// Threads dropping graphs that share nodes: each drop gives up references only, so whichever thread lets
// go last frees the shared part, and each thread releases through its own worklist.
TEST(GraphRelease, ThreadsDroppingGraphsThatShareADeepBase) {
  const std::size_t before = TensorImpl::live_count();
  {
    const Tensor x = scalar_leaf(1.0);
    Tensor base = chain(x, 50000);
    std::vector<Tensor> ends;
    for (int i = 0; i < 2; ++i) ends.push_back(chain(base, 50000));
    base = Tensor();
    std::vector<std::thread> threads;
    for (Tensor& end : ends) {
      threads.emplace_back([mine = std::move(end)]() mutable { mine = Tensor(); });
    }
    for (std::thread& t : threads) t.join();
  }
  EXPECT_EQ(TensorImpl::live_count(), before);
}

// Memory tracking hears of every node's destruction, however the graph is let go of.
TEST(GraphRelease, MemoryTrackingSeesEveryNodeOfADroppedChainGo) {
  const auto tracked = [] {
    std::size_t n = 0;
    for (const debug::SiteMemory& site : debug::memory_by_call_site()) n += site.tensors;
    return n;
  };
  const debug::MemoryTrackingGuard tracking;
  const std::size_t before = tracked();
  Tensor y = chain(scalar_leaf(1.0), kDeep);
  EXPECT_GE(tracked(), before + kDeep);
  y = Tensor();
  EXPECT_EQ(tracked(), before);
}

}  // namespace
}  // namespace needle
