// The process-group implementations behind init(): one process ("local"), MPI ranks ("mpi", with NCCL
// for CUDA arrays). Internal to the dist layer.
#pragma once

#include <cstddef>
#include <memory>

#include "needle/dist/process_group.h"

namespace needle::dist::detail {

std::unique_ptr<ProcessGroup> make_local_group();

// MPI_Init_thread and MPI_COMM_WORLD's group; RuntimeError when Needle was built without MPI.
std::unique_ptr<ProcessGroup> make_mpi_group();
bool built_with_mpi();
// MPI_Abort on MPI_COMM_WORLD when MPI is initialized; returns otherwise.
void mpi_abort_if_initialized(int exit_code);
// MPI_Finalize when this process initialized MPI (after the group's thread stopped).
void mpi_finalize_if_initialized();

// Collectives on CUDA memory (NCCL), one communicator for the job made on first use; the MPI group
// passes it a way to broadcast the NCCL id from rank 0.
class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  virtual void all_reduce(void* data, std::size_t count, DType dtype, ReduceOp op) = 0;
  virtual void broadcast(void* data, std::size_t count, DType dtype, int root) = 0;
  virtual void all_gather(void* output, const void* input, std::size_t count, DType dtype) = 0;
  virtual void reduce_scatter(void* output, const void* input, std::size_t count, DType dtype, ReduceOp op) = 0;
};
using BytesBroadcast = void (*)(void* bytes, std::size_t size, void* context);
// RuntimeError when Needle was built without NCCL.
std::unique_ptr<DeviceCollectives> make_nccl_collectives(int rank, int size, int device_index,
                                                         BytesBroadcast broadcast_from_root, void* context);
bool built_with_nccl();

}  // namespace needle::dist::detail

namespace needle::dist::detail {

// Argument checks every group makes on the calling thread before queuing a collective (errors name the
// collective as the user called it).
void check_reduce_op(std::string_view collective, const NDArray& array, ReduceOp op);
void check_root(int root, int size);
void check_all_gather(const NDArray& output, const NDArray& input, int size);
void check_reduce_scatter(const NDArray& output, const NDArray& input, int size);

}  // namespace needle::dist::detail
