// Each kernel's entry point (src/backend/kernel_contracts.cpp): operands that break the kernel's contract
// are refused with RuntimeError before any backend's kernel runs, and a fused kernel is handed the layout
// the check measured.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <cstdint>
#include <string>

#include "forwarding_backend.h"
#include "needle/backend/backend.h"

namespace needle {
namespace {

// Forwards everything to the cpu backend and records what reached three of its kernels.
class SpyBackend final : public testing::ForwardingBackend {
 public:
  SpyBackend() : ForwardingBackend(builtin_backend_for(cpu_device())) {}
  [[nodiscard]] std::string_view name() const override { return "cpu-spy"; }

  int binary_calls = 0;
  int softmax_calls = 0;
  int attention_calls = 0;
  kernels::RowLayout softmax_layout;
  kernels::AttentionLayout attention_layout;

 protected:
  void binary_kernel(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) override {
    ++binary_calls;
    real().binary(op, out, a, b);
  }
  void softmax_kernel(const kernels::RowLayout& layout, const StridedView& out, const StridedView& in,
                      bool log) override {
    ++softmax_calls;
    softmax_layout = layout;
    real().softmax(out, in, log);
  }
  void attention_kernel(const kernels::AttentionLayout& layout, const StridedView& out, const StridedView& logsumexp,
                        const StridedView& q, const StridedView& k, const StridedView& v, double scale,
                        bool causal) override {
    ++attention_calls;
    attention_layout = layout;
    real().attention(out, logsumexp, q, k, v, scale, causal);
  }
};

NDArray zeros(const Shape& shape, DType dtype = DType::Float32) { return NDArray::zeros(shape, dtype, cpu_device()); }

std::string message_of(const auto& call) {
  try {
    call();
  } catch (const RuntimeError& e) {
    return e.what();
  }
  return "(no RuntimeError)";
}

TEST(KernelContracts, BrokenPrimitiveContractsAreRefusedBeforeTheKernel) {
  SpyBackend spy;
  const NDArray a = zeros({2, 3});
  const NDArray b = zeros({3, 2});
  const NDArray out = zeros({2, 3});
  EXPECT_NE(message_of([&] { spy.binary(BinaryOp::Add, out.view(), a.view(), b.view()); }).find("add: second operand"),
            std::string::npos);
  // A comparison writes bool: a float32 output breaks the contract.
  EXPECT_NE(message_of([&] { spy.binary(BinaryOp::Lt, out.view(), a.view(), a.view()); }).find("expected bool"),
            std::string::npos);
  EXPECT_EQ(spy.binary_calls, 0);
  spy.binary(BinaryOp::Add, out.view(), a.view(), a.view());
  EXPECT_EQ(spy.binary_calls, 1);

  EXPECT_THROW(spy.matmul(zeros({2, 2}).view(), a.view(), a.view()), RuntimeError);
  EXPECT_THROW(spy.matmul(zeros({4, 2, 2}).view(), zeros({3, 2, 3}).view(), zeros({3, 3, 2}).view()), RuntimeError);
  EXPECT_THROW(spy.reduce(ReduceOp::Sum, zeros({2, 2}).view(), a.view()), RuntimeError);
  EXPECT_THROW(spy.reduce(ReduceOp::Max, zeros({2, 1}).view(), zeros({2, 0}).view()), ValueError);
  EXPECT_THROW(spy.arg_reduce(ArgReduceOp::Argmax, zeros({2, 1}, DType::Int64).view(), a.view(), 2), RuntimeError);
  EXPECT_THROW(spy.gather(zeros({2, 3}).view(), zeros({1, 3}).view(), zeros({2, 3}, DType::Int64).view(), 1),
               RuntimeError);
}

TEST(KernelContracts, FusedKernelsAreHandedTheLayoutTheCheckMeasured) {
  SpyBackend spy;
  const NDArray x = zeros({2, 3, 5});
  NDArray y = zeros({2, 3, 5});
  spy.softmax(y.view(), x.view(), false);
  ASSERT_EQ(spy.softmax_calls, 1);
  EXPECT_EQ(spy.softmax_layout.rows, 6);
  EXPECT_EQ(spy.softmax_layout.cols, 5);
  EXPECT_EQ(spy.softmax_layout.dtype, DType::Float32);
  EXPECT_NEAR(y.astype(DType::Float64).to_vector<double>()[0], 0.2, 1e-6);

  // A non-contiguous input and a mismatched output never reach the kernel.
  const NDArray transposed = zeros({5, 6}).permute({1, 0});
  EXPECT_NE(message_of([&] {
              spy.softmax(zeros({6, 5}).view(), transposed.view(), false);
            }).find("contiguous"),
            std::string::npos);
  EXPECT_NE(message_of([&] {
              spy.softmax(y.view(), zeros({2, 3, 4}).view(), true);
            }).find("logsoftmax"),
            std::string::npos);
  EXPECT_EQ(spy.softmax_calls, 1);

  const NDArray q = zeros({4, 3, 8});
  const NDArray k = zeros({4, 7, 8});
  const NDArray v = zeros({4, 7, 2});
  NDArray out = zeros({4, 3, 2});
  NDArray lse = zeros({4, 3});
  spy.attention(out.view(), lse.view(), q.view(), k.view(), v.view(), 0.5, true);
  ASSERT_EQ(spy.attention_calls, 1);
  EXPECT_EQ(spy.attention_layout.batch, 4);
  EXPECT_EQ(spy.attention_layout.queries, 3);
  EXPECT_EQ(spy.attention_layout.keys, 7);
  EXPECT_EQ(spy.attention_layout.dim, 8);
  EXPECT_EQ(spy.attention_layout.value_dim, 2);
  EXPECT_THROW(spy.attention(out.view(), lse.view(), q.view(), zeros({4, 7, 6}).view(), v.view(), 0.5, true),
               RuntimeError);
  EXPECT_THROW(spy.attention(zeros({4, 3, 3}).view(), lse.view(), q.view(), k.view(), v.view(), 0.5, true),
               RuntimeError);
  EXPECT_EQ(spy.attention_calls, 1);
}

TEST(KernelContracts, TheComposedDefaultIsCheckedToo) {
  Backend& cpu = builtin_backend_for(cpu_device());
  EXPECT_THROW(cpu.composed_softmax(zeros({2, 3}).view(), zeros({3, 2}).view(), false), RuntimeError);
  EXPECT_THROW(cpu.composed_layer_norm(zeros({2, 3}, DType::Int32).view(), zeros({2, 3}, DType::Int32).view(), 1e-5),
               RuntimeError);
}

TEST(KernelContracts, SizeOneDimensionsMayHaveAnyStride) {
  float data[6] = {};
  // A (1, 6) row seen as (6, 1) by a transpose is still the elements data[0..6) in order.
  EXPECT_TRUE((StridedView{data, DType::Float32, {6, 1}, {1, 6}}.is_contiguous()));
  EXPECT_TRUE((StridedView{data, DType::Float32, {1, 6}, {99, 1}}.is_contiguous()));
  EXPECT_FALSE((StridedView{data, DType::Float32, {3, 2}, {1, 3}}.is_contiguous()));
  EXPECT_FALSE((StridedView{data, DType::Float32, {3, 2}, {2}}.is_contiguous()));
  EXPECT_TRUE((StridedView{data, DType::Float32, {0, 5}, {7, 7}}.is_contiguous()));
}

}  // namespace
}  // namespace needle
