// The `cpu` backend: Needle's default device. It is the `ref` backend with faster kernels: each kernel it
// overrides takes fast paths for the common layouts (contiguous operands, scalar broadcasts, trailing-axis
// reductions, row-major matmul) and falls back on the `ref` kernel for everything else, so both always
// compute the same per-element arithmetic; a kernel it does not override (arg_reduce, gather,
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

  // Every optional kernel of kernels.def has a cpu kernel.
  [[nodiscard]] bool implements(OptionalKernel /*kernel*/) const override { return true; }

 protected:
  // The primitives with a faster path than ref's loops (the others run RefBackend's).
  void fill_kernel(const StridedView& out, const Scalar& value) override;
  void copy_kernel(const StridedView& out, const StridedView& in) override;
  void unary_kernel(UnaryOp op, const StridedView& out, const StridedView& in) override;
  void binary_kernel(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) override;
  void where_kernel(const StridedView& out, const StridedView& cond, const StridedView& a,
                    const StridedView& b) override;
  void reduce_kernel(ReduceOp op, const StridedView& out, const StridedView& in) override;
  void matmul_kernel(const StridedView& out, const StridedView& a, const StridedView& b) override;

  // Every fused and optional kernel (src/backend/cpu/*.cpp).
#define NEEDLE_FUSED(name, params, args, Layout, check, outputs, trace_name, flops) \
  void name##_kernel(const kernels::Layout& layout, NEEDLE_KERNEL_ARGS params) override;
#define NEEDLE_OPTIONAL NEEDLE_FUSED
#include "needle/backend/kernels.def"
#undef NEEDLE_FUSED
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
// Makes max_pool2d's 2 x 2 path use its SSE2 build (16-byte vectors) even on a CPU with AVX2 (for tests).
void set_max_pool_portable(bool portable);
// Makes the fused attention's tile loops use their baseline build even on a CPU with AVX2 (for tests).
void set_attention_portable(bool portable);
// Makes adam_update use its baseline build even on a CPU with AVX2 (for tests).
void set_optimizer_portable(bool portable);

}  // namespace cpu

}  // namespace needle
