// The `ref` kernels as free functions, so that other host backends can fall back on them for the cases
// they have no faster path for. Each does exactly what the Backend method of the same name documents.
#pragma once

#include <cstddef>
#include <cstdint>

#include "needle/backend/backend.h"

namespace needle::ref {

// Host memory: 64-byte aligned blocks from the C heap.
void* allocate(std::size_t nbytes);
void deallocate(void* data) noexcept;
void copy_bytes(void* dst, const void* src, std::size_t nbytes);

void fill(const StridedView& out, const Scalar& value);
void copy(const StridedView& out, const StridedView& in);
void unary(UnaryOp op, const StridedView& out, const StridedView& in);
void binary(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b);
void where(const StridedView& out, const StridedView& cond, const StridedView& a, const StridedView& b);

void reduce(ReduceOp op, const StridedView& out, const StridedView& in);
void arg_reduce(ArgReduceOp op, const StridedView& out, const StridedView& in, std::int64_t axis);

void matmul(const StridedView& out, const StridedView& a, const StridedView& b);

void gather(const StridedView& out, const StridedView& in, const StridedView& index, std::int64_t axis);
void scatter_add(const StridedView& out, const StridedView& index, const StridedView& src, std::int64_t axis);

// nn.cpp: the fused neural-network kernels (contiguous rows; see backend.h).
void softmax(const StridedView& out, const StridedView& in, bool log);
void softmax_backward(const StridedView& dx, const StridedView& g, const StridedView& y, bool log);
void logsumexp(const StridedView& out, const StridedView& in);
void layer_norm(const StridedView& out, const StridedView& x, double eps);
void layer_norm_backward(const StridedView& dx, const StridedView& g, const StridedView& x, double eps);

// batch_norm.cpp: batch normalization over N and S of contiguous (N, C, S) data (see backend.h).
void batch_norm(const StridedView& y, const StridedView& mean, const StridedView& var, const StridedView& x,
                const StridedView& weight, const StridedView& bias, double eps);
void batch_norm_backward(const StridedView& dx, const StridedView& dweight, const StridedView& dbias,
                         const StridedView& g, const StridedView& x, const StridedView& mean, const StridedView& var,
                         const StridedView& weight, double eps);
// attention.cpp: scaled dot-product attention and its backward pass (see backend.h).
void attention(const StridedView& out, const StridedView& logsumexp, const StridedView& q, const StridedView& k,
               const StridedView& v, double scale, bool causal);
void attention_backward(const StridedView& dq, const StridedView& dk, const StridedView& dv, const StridedView& g,
                        const StridedView& q, const StridedView& k, const StridedView& v, const StridedView& out,
                        const StridedView& logsumexp, double scale, bool causal);

// lstm.cpp: the fused LSTM cell and its backward pass (see backend.h).
void lstm_cell(const StridedView& h, const StridedView& c, const StridedView& gates, const StridedView& gates2,
               const StridedView& c_prev);
void lstm_cell_backward(const StridedView& dgates, const StridedView& dc_prev, const StridedView& dh,
                        const StridedView& dc, const StridedView& gates, const StridedView& gates2,
                        const StridedView& c_prev);

// conv.cpp: the convolution's data movements (see backend.h).
void im2col(const StridedView& cols, const StridedView& image, std::int64_t stride, std::int64_t padding);
void col2im(const StridedView& image, const StridedView& cols, std::int64_t stride, std::int64_t padding);

// optim.cpp: the fused optimizer updates (in place, contiguous; see backend.h).
void adam_update(const StridedView& param, const StridedView& grad, const StridedView& exp_avg,
                 const StridedView& exp_avg_sq, const AdamStep& step);
void sgd_update(const StridedView& param, const StridedView& grad, const StridedView& momentum_buffer,
                const SgdStep& step);

void random(RandomDistribution dist, const StridedView& out, double p0, double p1, std::uint64_t seed,
            std::uint64_t offset);

}  // namespace needle::ref
