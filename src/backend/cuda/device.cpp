// Device discovery, the per-device context (stream, cuBLAS handle, allocator) and the Backend that
// forwards each kernel to the CUDA implementation in this folder.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_context.h"
#include "needle/backend/cuda.h"
#include "needle/core/error.h"

namespace needle {

namespace {

struct Discovery {
  int count = 0;
  std::string reason;  // why count is 0
};

// Asked once: cudaGetDeviceCount fails cleanly (no exception, no abort) without a driver or a GPU.
const Discovery& discovery() {
  static const Discovery result = [] {
    Discovery d;
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      (void)cudaGetLastError();
      d.reason = str("cudaGetDeviceCount: ", cudaGetErrorString(status));
    } else if (count == 0) {
      d.reason = "cudaGetDeviceCount found no device";
    } else {
      d.count = count;
    }
    return d;
  }();
  return result;
}

// Enough for any machine this runs on; device indices beyond it are reported as missing.
constexpr int kMaxDevices = 64;

}  // namespace

int cuda_device_count() noexcept {
  try {
    return std::min(discovery().count, kMaxDevices);
  } catch (...) {  // a failed allocation of the reason string: report no device rather than fail
    return 0;
  }
}

std::string cuda_unavailable_reason() { return discovery().count > 0 ? std::string() : discovery().reason; }

namespace cuda {

void check(cudaError_t status, std::string_view what) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so that later calls do not report it again
  throw RuntimeError(str("cuda: ", what, ": ", cudaGetErrorString(status)));
}

void check_cublas(cublasStatus_t status, std::string_view what) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw RuntimeError(str("cuda: ", what, ": ", cublasGetStatusString(status)));
}

void check_launch(std::string_view op) { check(cudaGetLastError(), str(op, " kernel launch")); }

DeviceGuard::DeviceGuard(int device) {
  check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (previous_ != device) {
    check(cudaSetDevice(device), "cudaSetDevice");
    changed_ = true;
  }
}

DeviceGuard::~DeviceGuard() {
  if (changed_) (void)cudaSetDevice(previous_);
}

Context::Context(int device_index) : device(device_index), allocator(device_index) {
  const DeviceGuard guard(device);
  // A non-blocking stream does not wait for the legacy default stream, which Needle never uses.
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  check_cublas(cublasCreate(&cublas), "cublasCreate");
  check_cublas(cublasSetStream(cublas, stream), "cublasSetStream");
  check(cudaMalloc(reinterpret_cast<void**>(&error_flag), sizeof(int)), "cudaMalloc (error flag)");
  check(cudaMemsetAsync(error_flag, 0, sizeof(int), stream), "cudaMemset (error flag)");
}

namespace {

std::array<std::atomic<Context*>, kMaxDevices> contexts{};
std::mutex contexts_mutex;

}  // namespace

Context& context(int device) {
  if (device < 0 || device >= cuda_device_count()) {
    if (cuda_device_count() == 0) {
      throw RuntimeError(str("cuda: no CUDA device visible for cuda:", device, " (", cuda_unavailable_reason(), ")"));
    }
    throw RuntimeError(
        str("cuda: device cuda:", device, " does not exist (", cuda_device_count(), " CUDA device(s) visible)"));
  }
  auto& slot = contexts.at(static_cast<std::size_t>(device));
  if (Context* ctx = slot.load(std::memory_order_acquire)) return *ctx;
  const std::lock_guard<std::mutex> lock(contexts_mutex);
  if (Context* ctx = slot.load(std::memory_order_acquire)) return *ctx;
  // Never destroyed: storage released during static destruction still needs its allocator.
  auto* ctx = new Context(device);
  slot.store(ctx, std::memory_order_release);
  return *ctx;
}

void raise_flagged_error(Context& ctx) {
  int code = kNoError;
  check(cudaMemcpyAsync(&code, ctx.error_flag, sizeof(int), cudaMemcpyDeviceToHost, ctx.stream), "read error flag");
  check(cudaStreamSynchronize(ctx.stream), "cudaStreamSynchronize");
  if (code == kNoError) return;
  check(cudaMemsetAsync(ctx.error_flag, 0, sizeof(int), ctx.stream), "clear error flag");
  if (code == kIntegerDivisionByZero) throw ValueError("div: integer division by zero");
  if (code == kNegativeIntegerPower) throw ValueError("pow: integers to negative integer powers are not allowed");
  throw RuntimeError(str("cuda: a kernel reported error code ", code));
}

namespace {

// Every method makes the backend's device current first: CUDA's current device is per thread, and
// Needle's callers (DataLoader workers, Python threads) never set it.
class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device), ctx_(context(device)) {}

  [[nodiscard]] std::string_view name() const override { return "cuda"; }

  void* allocate(std::size_t nbytes) override {
    const DeviceGuard guard(device_);
    return ctx_.allocator.allocate(nbytes);
  }
  void deallocate(void* data, std::size_t /*nbytes*/) override { ctx_.allocator.release(data); }
  void copy_from_host(void* device_dst, const void* host_src, std::size_t nbytes) override {
    if (nbytes == 0) return;
    const DeviceGuard guard(device_);
    // From pageable memory the call returns once the source has been staged, so the caller may free it.
    check(cudaMemcpyAsync(device_dst, host_src, nbytes, cudaMemcpyHostToDevice, ctx_.stream), "copy to device");
  }
  void copy_to_host(void* host_dst, const void* device_src, std::size_t nbytes) override {
    if (nbytes == 0) return;
    const DeviceGuard guard(device_);
    // The host reads the bytes as soon as this returns: wait for the copy and everything before it.
    check(cudaMemcpyAsync(host_dst, device_src, nbytes, cudaMemcpyDeviceToHost, ctx_.stream), "copy to host");
    check(cudaStreamSynchronize(ctx_.stream), "cudaStreamSynchronize");
  }
  void synchronize() override {
    const DeviceGuard guard(device_);
    check(cudaStreamSynchronize(ctx_.stream), "cudaStreamSynchronize");
  }

  // Every primitive of kernels.def runs the cuda:: function of the same name on this device's context; the
  // fused kernels are the Backend defaults, composed from these.
 protected:
#define NEEDLE_PRIMITIVE(name, params, args, outputs, trace_name, flops) \
  void name##_kernel params override {                                   \
    const DeviceGuard guard(device_);                                    \
    cuda::name(ctx_, NEEDLE_KERNEL_ARGS args);                           \
  }
#include "needle/backend/kernels.def"
#undef NEEDLE_PRIMITIVE

 private:
  int device_;
  Context& ctx_;
};

std::array<std::atomic<Backend*>, kMaxDevices> backends{};
std::mutex backends_mutex;

}  // namespace

}  // namespace cuda

Backend& cuda_backend(int index) {
  cuda::context(index);  // throws the "not available" error for a missing device
  auto& slot = cuda::backends.at(static_cast<std::size_t>(index));
  if (Backend* backend = slot.load(std::memory_order_acquire)) return *backend;
  const std::lock_guard<std::mutex> lock(cuda::backends_mutex);
  if (Backend* backend = slot.load(std::memory_order_acquire)) return *backend;
  auto* backend = new cuda::CudaBackend(index);
  slot.store(backend, std::memory_order_release);
  return *backend;
}

CudaMemoryStats cuda_memory_stats(int index) {
  if (index < 0 || index >= cuda_device_count()) return {};
  const cuda::CachingAllocator& allocator = cuda::context(index).allocator;
  return {allocator.bytes_in_use(), allocator.bytes_cached(), allocator.driver_allocations()};
}

void cuda_empty_cache(int index) {
  if (index < 0 || index >= cuda_device_count()) return;
  cuda::Context& ctx = cuda::context(index);
  const cuda::DeviceGuard guard(index);
  ctx.allocator.empty_cache();
}

}  // namespace needle
