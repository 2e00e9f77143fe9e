// The `ref` backend: plain scalar loops over strided memory, written to be obviously correct. It is
// the baseline every other backend is tested against, not the one to make fast.
#pragma once

#include "backend/ref/ref_kernels.h"
#include "needle/backend/backend.h"

namespace needle {

class RefBackend final : public Backend {
 public:
  [[nodiscard]] std::string_view name() const override { return "ref"; }

  void* allocate(std::size_t nbytes) override { return ref::allocate(nbytes); }
  void deallocate(void* data, std::size_t /*nbytes*/) override { ref::deallocate(data); }
  void copy_from_host(void* device_dst, const void* host_src, std::size_t nbytes) override {
    ref::copy_bytes(device_dst, host_src, nbytes);
  }
  void copy_to_host(void* host_dst, const void* device_src, std::size_t nbytes) override {
    ref::copy_bytes(host_dst, device_src, nbytes);
  }

  void fill(const StridedView& out, const Scalar& value) override { ref::fill(out, value); }
  void copy(const StridedView& out, const StridedView& in) override { ref::copy(out, in); }
  void unary(UnaryOp op, const StridedView& out, const StridedView& in) override { ref::unary(op, out, in); }
  void binary(BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b) override {
    ref::binary(op, out, a, b);
  }
  void where(const StridedView& out, const StridedView& cond, const StridedView& a, const StridedView& b) override {
    ref::where(out, cond, a, b);
  }

  void reduce(ReduceOp op, const StridedView& out, const StridedView& in) override { ref::reduce(op, out, in); }
  void arg_reduce(ArgReduceOp op, const StridedView& out, const StridedView& in, std::int64_t axis) override {
    ref::arg_reduce(op, out, in, axis);
  }

  void matmul(const StridedView& out, const StridedView& a, const StridedView& b) override { ref::matmul(out, a, b); }

  void gather(const StridedView& out, const StridedView& in, const StridedView& index, std::int64_t axis) override {
    ref::gather(out, in, index, axis);
  }
  void scatter_add(const StridedView& out, const StridedView& index, const StridedView& src,
                   std::int64_t axis) override {
    ref::scatter_add(out, index, src, axis);
  }

  void random(RandomDistribution dist, const StridedView& out, double p0, double p1, std::uint64_t seed,
              std::uint64_t offset) override {
    ref::random(dist, out, p0, p1, seed, offset);
  }

  void softmax(const StridedView& out, const StridedView& in, bool log) override { ref::softmax(out, in, log); }
  void logsumexp(const StridedView& out, const StridedView& in) override { ref::logsumexp(out, in); }
  void softmax_backward(const StridedView& dx, const StridedView& g, const StridedView& y, bool log) override {
    ref::softmax_backward(dx, g, y, log);
  }
  void layer_norm(const StridedView& out, const StridedView& x, double eps) override { ref::layer_norm(out, x, eps); }
  void layer_norm_backward(const StridedView& dx, const StridedView& g, const StridedView& x, double eps) override {
    ref::layer_norm_backward(dx, g, x, eps);
  }
  void batch_norm(const StridedView& y, const StridedView& mean, const StridedView& var, const StridedView& x,
                  const StridedView& weight, const StridedView& bias, double eps) override {
    ref::batch_norm(y, mean, var, x, weight, bias, eps);
  }
  void batch_norm_backward(const StridedView& dx, const StridedView& dweight, const StridedView& dbias,
                           const StridedView& g, const StridedView& x, const StridedView& mean, const StridedView& var,
                           const StridedView& weight, double eps) override {
    ref::batch_norm_backward(dx, dweight, dbias, g, x, mean, var, weight, eps);
  }
  void attention(const StridedView& out, const StridedView& logsumexp, const StridedView& q, const StridedView& k,
                 const StridedView& v, double scale, bool causal) override {
    ref::attention(out, logsumexp, q, k, v, scale, causal);
  }
  void attention_backward(const StridedView& dq, const StridedView& dk, const StridedView& dv, const StridedView& g,
                          const StridedView& q, const StridedView& k, const StridedView& v, const StridedView& out,
                          const StridedView& logsumexp, double scale, bool causal) override {
    ref::attention_backward(dq, dk, dv, g, q, k, v, out, logsumexp, scale, causal);
  }
  void lstm_cell(const StridedView& h, const StridedView& c, const StridedView& gates, const StridedView& gates2,
                 const StridedView& c_prev) override {
    ref::lstm_cell(h, c, gates, gates2, c_prev);
  }
  void lstm_cell_backward(const StridedView& dgates, const StridedView& dc_prev, const StridedView& dh,
                          const StridedView& dc, const StridedView& gates, const StridedView& gates2,
                          const StridedView& c_prev) override {
    ref::lstm_cell_backward(dgates, dc_prev, dh, dc, gates, gates2, c_prev);
  }

  void im2col(const StridedView& cols, const StridedView& image, std::int64_t stride, std::int64_t padding) override {
    ref::im2col(cols, image, stride, padding);
  }
  void col2im(const StridedView& image, const StridedView& cols, std::int64_t stride, std::int64_t padding) override {
    ref::col2im(image, cols, stride, padding);
  }

  void adam_update(const StridedView& param, const StridedView& grad, const StridedView& exp_avg,
                   const StridedView& exp_avg_sq, const AdamStep& step) override {
    ref::adam_update(param, grad, exp_avg, exp_avg_sq, step);
  }
  void sgd_update(const StridedView& param, const StridedView& grad, const StridedView& momentum_buffer,
                  const SgdStep& step) override {
    ref::sgd_update(param, grad, momentum_buffer, step);
  }
};

}  // namespace needle
