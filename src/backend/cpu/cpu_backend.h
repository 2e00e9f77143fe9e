// The `cpu` backend: Needle's default device. It is the `ref` backend with faster kernels: each kernel it
// overrides takes fast paths for the common layouts (contiguous operands, scalar broadcasts, trailing-axis
// reductions, row-major matmul) and falls back on the `ref` kernel for everything else, so both always
// compute the same per-element arithmetic; a kernel it does not override (where, arg_reduce, gather,
// scatter_add, random) is ref's, visibly so by inheritance.
#pragma once

#include "backend/cpu/block_cache.h"
#include "backend/ref/ref_backend.h"
#include "needle/backend/backend.h"

namespace needle {

class CpuBackend final : public RefBackend {
 public:
  [[nodiscard]] std::string_view name() const override { return "cpu"; }

  // Host memory like ref's, but freed large blocks are kept for reuse.
  void* allocate(std::size_t nbytes) override { return blocks_.allocate(nbytes); }
  void deallocate(void* data, std::size_t nbytes) override { blocks_.deallocate(data, nbytes); }
  [[nodiscard]] std::size_t cached_bytes() const override { return blocks_.cached_bytes(); }
  std::size_t release_cache() override { return blocks_.release(); }

  // elementwise.cpp
  void fill(const StridedView& out, const Scalar& value) override;
  void copy(const StridedView& out, const StridedView& in) override;
  void unary(UnaryOp op, const StridedView& out, const StridedView& in) override;
  void binary(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) override;

  // reduce.cpp
  void reduce(ReduceOp op, const StridedView& out, const StridedView& in) override;

  // matmul.cpp
  void matmul(const StridedView& out, const StridedView& a, const StridedView& b) override;

  // nn.cpp: fused softmax and layer norm (contiguous rows; see kernels.def).
  void softmax(const StridedView& out, const StridedView& in, bool log) override;
  void softmax_backward(const StridedView& dx, const StridedView& g, const StridedView& y, bool log) override;
  void logsumexp(const StridedView& out, const StridedView& in) override;
  void layer_norm(const StridedView& out, const StridedView& x, double eps) override;
  void layer_norm_backward(const StridedView& dx, const StridedView& g, const StridedView& x, double eps) override;

  // batch_norm.cpp: fused batch norm over N and S of contiguous (N, C, S) data (see kernels.def).
  void batch_norm(const StridedView& y, const StridedView& mean, const StridedView& var, const StridedView& x,
                  const StridedView& weight, const StridedView& bias, double eps) override;
  void batch_norm_backward(const StridedView& dx, const StridedView& dweight, const StridedView& dbias,
                           const StridedView& g, const StridedView& x, const StridedView& mean, const StridedView& var,
                           const StridedView& weight, double eps) override;

  // attention.cpp: fused scaled dot-product attention, tiled (see kernels.def).
  void attention(const StridedView& out, const StridedView& logsumexp, const StridedView& q, const StridedView& k,
                 const StridedView& v, double scale, bool causal) override;
  void attention_backward(const StridedView& dq, const StridedView& dk, const StridedView& dv, const StridedView& g,
                          const StridedView& q, const StridedView& k, const StridedView& v, const StridedView& out,
                          const StridedView& logsumexp, double scale, bool causal) override;

  // lstm.cpp: the fused LSTM cell (see kernels.def).
  void lstm_cell(const StridedView& h, const StridedView& c, const StridedView& gates, const StridedView& gates2,
                 const StridedView& c_prev) override;
  void lstm_cell_backward(const StridedView& dgates, const StridedView& dc_prev, const StridedView& dh,
                          const StridedView& dc, const StridedView& gates, const StridedView& gates2,
                          const StridedView& c_prev) override;

  // conv.cpp: the convolution's data movements, one pass over the columns (see kernels.def).
  void im2col(const StridedView& cols, const StridedView& image, std::int64_t stride, std::int64_t padding) override;
  void col2im(const StridedView& image, const StridedView& cols, std::int64_t stride, std::int64_t padding) override;

  // optim.cpp: the fused optimizer updates (in place; see kernels.def).
  void adam_update(const StridedView& param, const StridedView& grad, const StridedView& exp_avg,
                   const StridedView& exp_avg_sq, const AdamStep& step) override;
  void sgd_update(const StridedView& param, const StridedView& grad, const StridedView& momentum_buffer,
                  const SgdStep& step) override;

  // Every optional kernel of kernels.def (nn.cpp: rms_norm).
  [[nodiscard]] bool implements(OptionalKernel /*kernel*/) const override { return true; }
#define NEEDLE_OPTIONAL(name, params, args, outputs, trace_name, flops) void name params override;
#include "needle/backend/kernels.def"
#undef NEEDLE_OPTIONAL

 private:
  // binary() for layouts whose last axis is contiguous or broadcast in every operand (elementwise.cpp).
  void binary_rows(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b);
  // reduce() over a block of axes followed by kept axes, e.g. a sum over the batch axis (reduce.cpp).
  void reduce_middle(ReduceOp op, const StridedView& out, const StridedView& in, std::int64_t outer,
                     std::int64_t reduced, std::int64_t inner);

  BlockCache blocks_;
};

namespace cpu {

// Makes the fused kernels of nn.cpp use their baseline build even where the CPU has AVX2 + FMA (for tests
// of both builds); false restores the run-time choice.
void set_fused_nn_portable(bool portable);
// Makes the batch-norm kernels use their baseline build even on a CPU with AVX2 + FMA (for tests).
void set_batch_norm_portable(bool portable);

}  // namespace cpu

}  // namespace needle
