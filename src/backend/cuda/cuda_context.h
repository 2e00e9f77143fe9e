// What every CUDA kernel file shares on the host side: error checks, the per-device context (stream,
// cuBLAS handle, caching allocator, error flag) and the kernel entry points the backend forwards to.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "needle/backend/backend.h"

namespace needle::cuda {

// Throws RuntimeError "cuda: <what>: <CUDA's message>" unless `status` is cudaSuccess.
void check(cudaError_t status, std::string_view what);
void check_cublas(cublasStatus_t status, std::string_view what);
// Checks that the last kernel launch was accepted (bad configuration, no kernel image for this GPU).
void check_launch(std::string_view op);

// Device memory in blocks of rounded sizes kept for reuse: once a training loop has run one step,
// every later step finds its blocks in the cache and never calls cudaMalloc (which synchronises the
// device). Freed blocks are reused at once without waiting: every kernel runs on the device's one
// stream, so a kernel that still reads a freed block runs before any later user of it.
class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;
  ~CachingAllocator() = default;

  // At least `nbytes` (a distinct block even for 0 bytes), 256-byte aligned. On out-of-memory it frees
  // the cached blocks and retries once, then throws RuntimeError naming the requested bytes.
  void* allocate(std::size_t nbytes);
  void release(void* data) noexcept;
  // Returns every cached (unused) block to the driver.
  void empty_cache();

  [[nodiscard]] std::size_t bytes_in_use() const;
  [[nodiscard]] std::size_t bytes_cached() const;
  [[nodiscard]] std::size_t driver_allocations() const;  // cudaMalloc calls so far

  // The size a request is served with: 512-byte steps below 1 MiB, 1 MiB steps above, so that requests
  // of nearly equal sizes share blocks.
  static std::size_t rounded_size(std::size_t nbytes);

 private:
  void free_cached_locked();

  int device_;
  mutable std::mutex mutex_;
  std::unordered_map<void*, std::size_t> in_use_;  // block -> its rounded size
  std::multimap<std::size_t, void*> cached_;       // rounded size -> free block
  std::size_t bytes_in_use_ = 0;
  std::size_t bytes_cached_ = 0;
  std::size_t driver_allocations_ = 0;
};

// One per device, created on first use and never destroyed.
struct Context {
  explicit Context(int device_index);
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context() = default;

  int device;
  cudaStream_t stream = nullptr;  // every kernel and copy of this device runs here, in order
  cublasHandle_t cublas = nullptr;
  // A device int that kernels set when an element is invalid (integer division by zero): kernels cannot
  // throw, so the host reads it after such a kernel and raises the error there.
  int* error_flag = nullptr;
  CachingAllocator allocator;
};

Context& context(int device);

// Makes `device` current for the calling thread while alive (CUDA's current device is per thread).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  ~DeviceGuard();

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// A temporary device buffer from the context's allocator, released when it goes out of scope (safe
// while kernels that use it are still queued: see CachingAllocator).
class Scratch {
 public:
  Scratch(Context& ctx, std::size_t nbytes) : ctx_(ctx), data_(ctx.allocator.allocate(nbytes)) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { ctx_.allocator.release(data_); }
  [[nodiscard]] void* data() const { return data_; }

 private:
  Context& ctx_;
  void* data_;
};

// Codes kernels write to Context::error_flag.
enum ErrorCode : int { kNoError = 0, kIntegerDivisionByZero = 1, kNegativeIntegerPower = 2 };
// Reads the error flag (waiting for the stream), clears it and throws the matching ValueError.
void raise_flagged_error(Context& ctx);

// ---- kernels (each does what the Backend method of the same name documents) ------------------
void fill(Context& ctx, const StridedView& out, const Scalar& value);
void copy(Context& ctx, const StridedView& out, const StridedView& in);
void unary(Context& ctx, UnaryOp op, const StridedView& out, const StridedView& in);
void binary(Context& ctx, BinaryOp op, const StridedView& out, const StridedView& a, const StridedView& b);
void where(Context& ctx, const StridedView& out, const StridedView& cond, const StridedView& a, const StridedView& b);
void reduce(Context& ctx, ReduceOp op, const StridedView& out, const StridedView& in);
void arg_reduce(Context& ctx, ArgReduceOp op, const StridedView& out, const StridedView& in, std::int64_t axis);
void matmul(Context& ctx, const StridedView& out, const StridedView& a, const StridedView& b);
void gather(Context& ctx, const StridedView& out, const StridedView& in, const StridedView& index, std::int64_t axis);
void scatter_add(Context& ctx, const StridedView& out, const StridedView& index, const StridedView& src,
                 std::int64_t axis);
void random(Context& ctx, RandomDistribution dist, const StridedView& out, double p0, double p1, std::uint64_t seed,
            std::uint64_t offset);

}  // namespace needle::cuda
