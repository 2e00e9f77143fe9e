// Process groups: the ranks of a data-parallel job and the collectives between them.
//
// Needle does not move bytes between processes itself: CPU arrays go through MPI (OpenMPI under
// `mpirun`), CUDA arrays through NCCL (its communicator set up over MPI). A job is started by a launcher;
// init() reads the launcher's environment. Without one, init() gives a group of one process, so that a
// program written for several ranks runs unchanged on one.
//
// Every collective first checks that all ranks called the same collective with the same dtype, shape
// and options (one small MPI_Allgather of a fixed descriptor), and fails on every rank with an error
// naming what each rank passed otherwise: MPI and NCCL would read past a buffer or hang instead.
//
// Collectives run on one communication thread per group, in the order they were called, so that the
// caller can go on computing while they run (DistributedDataParallel starts all-reduces during
// backward). The *_async versions return a Work handle; the plain versions wait for it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "needle/core/ndarray.h"

namespace needle::dist {

enum class ReduceOp : std::uint8_t { Sum, Average, Max };
std::string_view reduce_op_name(ReduceOp op);         // "sum", "average", "max"
ReduceOp reduce_op_from_name(std::string_view name);  // ValueError for an unknown name

// How long a collective may take before the waiting rank gives up with an error (another rank crashed,
// hangs, or runs different code). NEEDLE_DIST_TIMEOUT (seconds) sets the default; 300 s without it.
std::chrono::milliseconds default_timeout();

// Timing of one collective, for the communication statistics of DistributedDataParallel.
struct WorkTiming {
  double queued_at = 0;    // seconds on a steady clock
  double started_at = 0;   // when the communication thread began it
  double finished_at = 0;  // when it completed
};

// A collective in flight. wait() returns once it completed, or throws the error it failed with (on
// every rank alike for a mismatched call), or RuntimeError after `timeout`.
class Work {
 public:
  virtual ~Work() = default;
  [[nodiscard]] virtual bool completed() const = 0;
  virtual void wait(std::chrono::milliseconds timeout) = 0;
  void wait() { wait(default_timeout()); }
  [[nodiscard]] virtual WorkTiming timing() const = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  ProcessGroup() = default;
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;
  // This process's index among the ranks on its machine (which GPU it should use).
  [[nodiscard]] virtual int local_rank() const = 0;
  // "mpi", "local" (one process); CUDA arrays use "nccl" inside the "mpi" group.
  [[nodiscard]] virtual std::string backend() const = 0;

  // The collectives. `array` is reduced or overwritten in place (a non-contiguous view included: it is
  // gathered into a contiguous buffer and written back when the Work is waited for). Average needs a
  // floating dtype; on bool arrays Sum and Max are a logical or. Arrays of one call must not overlap.
  virtual std::shared_ptr<Work> all_reduce_async(const NDArray& array, ReduceOp op) = 0;
  virtual std::shared_ptr<Work> broadcast_async(const NDArray& array, int root) = 0;
  // Every rank's `input` stacked along a new first axis into `output` of shape (size, *input.shape).
  virtual std::shared_ptr<Work> all_gather_async(const NDArray& output, const NDArray& input) = 0;
  // `input` of shape (size * n, ...) reduced over ranks; rank r receives rows [r * n, (r + 1) * n) in
  // `output` of shape (n, ...).
  virtual std::shared_ptr<Work> reduce_scatter_async(const NDArray& output, const NDArray& input, ReduceOp op) = 0;
  virtual std::shared_ptr<Work> barrier_async() = 0;

  void all_reduce(const NDArray& array, ReduceOp op = ReduceOp::Sum) { all_reduce_async(array, op)->wait(); }
  void broadcast(const NDArray& array, int root = 0) { broadcast_async(array, root)->wait(); }
  [[nodiscard]] NDArray all_gather(const NDArray& input);
  [[nodiscard]] NDArray reduce_scatter(const NDArray& input, ReduceOp op = ReduceOp::Sum);
  void barrier() { barrier_async()->wait(); }
};

// The group of this process, set up from the launcher's environment on the first call (OpenMPI's
// OMPI_COMM_WORLD_*, PMI's PMI_RANK/PMI_SIZE, or RANK/WORLD_SIZE; a group of one without any). A job of
// several ranks needs MPI: RuntimeError when Needle was built without it or was not started by mpirun.
ProcessGroup& init();
[[nodiscard]] bool is_initialized();
// The group set up by init() (init() is called if it was not).
ProcessGroup& world();
// Waits for the collectives still queued, stops the communication thread and finalizes MPI. Called at
// exit by init()'s atexit handler; calling it earlier is allowed, and init() afterwards is an error.
void shutdown();
// Ends every rank of the job at once (MPI_Abort) after printing `message` with this rank's number: what
// an uncaught error on one rank must do, since the others would otherwise wait for it in a collective.
[[noreturn]] void abort_job(const std::string& message, int exit_code = 1);

// Whether this build can run multi-process jobs (MPI found at build time) and CUDA collectives (NCCL).
[[nodiscard]] bool mpi_available();
[[nodiscard]] bool nccl_available();

}  // namespace needle::dist
