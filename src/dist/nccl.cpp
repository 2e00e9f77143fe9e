// Collectives on CUDA memory through NCCL: one communicator for the job and a stream of its own, used only
// from the process group's communication thread.
#include <cuda_runtime.h>
#include <nccl.h>

#include <memory>
#include <string_view>

#include "dist/groups.h"
#include "needle/core/error.h"

namespace needle::dist::detail {

namespace {

void check_cuda(cudaError_t code, std::string_view what) {
  if (code == cudaSuccess) return;
  throw RuntimeError(str("needle.distributed: ", what, " failed: ", cudaGetErrorString(code)));
}

void check_nccl(ncclResult_t code, std::string_view what) {
  if (code == ncclSuccess) return;
  throw RuntimeError(str("needle.distributed: ", what, " failed: ", ncclGetErrorString(code)));
}

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::Bool:  // one byte each, 0 or 1
    case DType::UInt8:
      return ncclUint8;
    case DType::Int8:
      return ncclInt8;
    case DType::Int32:
      return ncclInt32;
    case DType::Int64:
      return ncclInt64;
    case DType::Float32:
      return ncclFloat32;
    case DType::Float64:
      return ncclFloat64;
  }
  throw TypeError(str("needle.distributed: no NCCL type for ", dtype_name(dtype)));
}

ncclRedOp_t nccl_op(ReduceOp op, DType dtype) {
  // A sum of 0/1 bytes could exceed 1 (or wrap); the maximum is the logical or, as the MPI path does.
  if (dtype == DType::Bool) return ncclMax;
  switch (op) {
    case ReduceOp::Sum:
      return ncclSum;
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Average:
      return ncclAvg;
  }
  throw ValueError(str("needle.distributed: no NCCL reduction for ", reduce_op_name(op)));
}

class NcclCollectives final : public DeviceCollectives {
 public:
  explicit NcclCollectives(int device_index) : device_index_(device_index) {}
  NcclCollectives(const NcclCollectives&) = delete;
  NcclCollectives& operator=(const NcclCollectives&) = delete;
  NcclCollectives(NcclCollectives&&) = delete;
  NcclCollectives& operator=(NcclCollectives&&) = delete;

  // Cleans up whatever init() made, also after it threw half-way. Errors are ignored: this may run while
  // another error unwinds, or after the CUDA driver has shut down at exit.
  ~NcclCollectives() override {
    if (comm_ == nullptr && stream_ == nullptr) return;
    (void)cudaSetDevice(device_index_);
    if (comm_ != nullptr) (void)ncclCommDestroy(comm_);
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }

  // Collective over the job's ranks: every rank must call it (ncclCommInitRank waits for all of them).
  void init(int rank, int size, BytesBroadcast broadcast_from_root, void* context) {
    ncclUniqueId id{};
    if (rank == 0) check_nccl(ncclGetUniqueId(&id), "ncclGetUniqueId");
    broadcast_from_root(&id, sizeof id, context);
    check_cuda(cudaSetDevice(device_index_), "cudaSetDevice");
    // Non-blocking: the legacy default stream would serialize with every other stream on the device.
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    check_nccl(ncclCommInitRank(&comm_, size, id, rank), "ncclCommInitRank");
  }

  void all_reduce(void* data, std::size_t count, DType dtype, ReduceOp op) override {
    before();
    check_nccl(ncclAllReduce(data, data, count, nccl_type(dtype), nccl_op(op, dtype), comm_, stream_), "ncclAllReduce");
    after();
  }

  void broadcast(void* data, std::size_t count, DType dtype, int root) override {
    before();
    check_nccl(ncclBroadcast(data, data, count, nccl_type(dtype), root, comm_, stream_), "ncclBroadcast");
    after();
  }

  void all_gather(void* output, const void* input, std::size_t count, DType dtype) override {
    before();
    check_nccl(ncclAllGather(input, output, count, nccl_type(dtype), comm_, stream_), "ncclAllGather");
    after();
  }

  void reduce_scatter(void* output, const void* input, std::size_t count, DType dtype, ReduceOp op) override {
    before();
    check_nccl(ncclReduceScatter(input, output, count, nccl_type(dtype), nccl_op(op, dtype), comm_, stream_),
               "ncclReduceScatter");
    after();
  }

 private:
  // The backend's kernels that produced the buffers run on its own stream, which this layer cannot see:
  // waiting for the whole device is the ordering available without it. The communication thread may not
  // have the device current, hence the cudaSetDevice.
  void before() const {
    check_cuda(cudaSetDevice(device_index_), "cudaSetDevice");
    check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }

  // The caller reads (or frees) the buffers as soon as the collective returns.
  void after() const { check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

  int device_index_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceCollectives> make_nccl_collectives(int rank, int size, int device_index,
                                                         BytesBroadcast broadcast_from_root, void* context) {
  auto collectives = std::make_unique<NcclCollectives>(device_index);
  collectives->init(rank, size, broadcast_from_root, context);
  return collectives;
}

bool built_with_nccl() { return true; }

}  // namespace needle::dist::detail
