// What every process group shares: names, timeouts, argument checks, the one-process group, and init()
// choosing the group from the launcher's environment.
#include "needle/dist/process_group.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>

#include "dist/groups.h"
#include "needle/core/error.h"

namespace needle::dist {

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return "sum";
    case ReduceOp::Average:
      return "average";
    case ReduceOp::Max:
      return "max";
  }
  return "unknown";
}

ReduceOp reduce_op_from_name(std::string_view name) {
  if (name == "sum") return ReduceOp::Sum;
  if (name == "average" || name == "avg" || name == "mean") return ReduceOp::Average;
  if (name == "max") return ReduceOp::Max;
  throw ValueError(str("needle.distributed: unknown reduce op '", name, "' (expected 'sum', 'average' or 'max')"));
}

std::chrono::milliseconds default_timeout() {
  static const std::chrono::milliseconds timeout = [] {
    const char* text = std::getenv("NEEDLE_DIST_TIMEOUT");
    double seconds = 300;
    if (text != nullptr && *text != '\0') {
      char* end = nullptr;
      seconds = std::strtod(text, &end);
      NEEDLE_CHECK(end != text && *end == '\0' && seconds > 0, ValueError,
                   "needle.distributed: NEEDLE_DIST_TIMEOUT must be a positive number of seconds, got '", text, "'");
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
  }();
  return timeout;
}

NDArray ProcessGroup::all_gather(const NDArray& input) {
  Shape shape{size()};
  shape.insert(shape.end(), input.shape().begin(), input.shape().end());
  NDArray output = NDArray::empty(shape, input.dtype(), input.device());
  all_gather_async(output, input)->wait();
  return output;
}

NDArray ProcessGroup::reduce_scatter(const NDArray& input, ReduceOp op) {
  NEEDLE_CHECK(input.ndim() >= 1 && input.shape()[0] % size() == 0, ValueError,
               "reduce_scatter: the input's first dimension must be a multiple of the number of ranks (", size(),
               "), got shape ", shape_str(input.shape()));
  Shape shape = input.shape();
  shape[0] /= size();
  NDArray output = NDArray::empty(shape, input.dtype(), input.device());
  reduce_scatter_async(output, input, op)->wait();
  return output;
}

namespace detail {

void check_reduce_op(std::string_view collective, const NDArray& array, ReduceOp op) {
  NEEDLE_CHECK(op != ReduceOp::Average || is_floating(array.dtype()), TypeError, collective,
               ": op 'average' needs a floating dtype, got ", dtype_name(array.dtype()), " (use 'sum')");
}

void check_root(int root, int size) {
  NEEDLE_CHECK(root >= 0 && root < size, IndexError, "broadcast: root ", root, " is not a rank of this group of ", size,
               " ranks");
}

void check_all_gather(const NDArray& output, const NDArray& input, int size) {
  Shape expected{size};
  expected.insert(expected.end(), input.shape().begin(), input.shape().end());
  NEEDLE_CHECK(output.shape() == expected, ValueError, "all_gather: output of shape ", shape_str(output.shape()),
               " cannot hold ", size, " inputs of shape ", shape_str(input.shape()), " (expected ", shape_str(expected),
               ")");
  NEEDLE_CHECK(output.dtype() == input.dtype(), TypeError, "all_gather: output is ", dtype_name(output.dtype()),
               " but the input is ", dtype_name(input.dtype()));
  NEEDLE_CHECK(output.device() == input.device(), RuntimeError, "all_gather: output is on ", output.device(),
               " but the input is on ", input.device());
}

void check_reduce_scatter(const NDArray& output, const NDArray& input, int size) {
  Shape expected = input.shape();
  NEEDLE_CHECK(!expected.empty() && expected[0] % size == 0, ValueError,
               "reduce_scatter: the input's first dimension must be a multiple of the number of ranks (", size,
               "), got shape ", shape_str(input.shape()));
  expected[0] /= size;
  NEEDLE_CHECK(output.shape() == expected, ValueError, "reduce_scatter: output has shape ", shape_str(output.shape()),
               ", expected ", shape_str(expected), " for an input of shape ", shape_str(input.shape()), " over ", size,
               " ranks");
  NEEDLE_CHECK(output.dtype() == input.dtype(), TypeError, "reduce_scatter: output is ", dtype_name(output.dtype()),
               " but the input is ", dtype_name(input.dtype()));
  NEEDLE_CHECK(output.device() == input.device(), RuntimeError, "reduce_scatter: output is on ", output.device(),
               " but the input is on ", input.device());
}

namespace {

// A Work that completed when it was made.
class DoneWork final : public Work {
 public:
  [[nodiscard]] bool completed() const override { return true; }
  void wait(std::chrono::milliseconds /*timeout*/) override {}
  [[nodiscard]] WorkTiming timing() const override { return {}; }
};

// The group of a process started without a launcher: every collective is the identity.
class LocalGroup final : public ProcessGroup {
 public:
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 1; }
  [[nodiscard]] int local_rank() const override { return 0; }
  [[nodiscard]] std::string backend() const override { return "local"; }

  std::shared_ptr<Work> all_reduce_async(const NDArray& array, ReduceOp op) override {
    check_reduce_op("all_reduce", array, op);
    return done();
  }
  std::shared_ptr<Work> broadcast_async(const NDArray& /*array*/, int root) override {
    check_root(root, 1);
    return done();
  }
  std::shared_ptr<Work> all_gather_async(const NDArray& output, const NDArray& input) override {
    check_all_gather(output, input, 1);
    NDArray target = output;  // a handle: writes the caller's array
    target.assign(input.reshape(output.shape()));
    return done();
  }
  std::shared_ptr<Work> reduce_scatter_async(const NDArray& output, const NDArray& input, ReduceOp op) override {
    check_reduce_scatter(output, input, 1);
    check_reduce_op("reduce_scatter", input, op);
    NDArray target = output;
    target.assign(input);
    return done();
  }
  std::shared_ptr<Work> barrier_async() override { return done(); }

 private:
  static std::shared_ptr<Work> done() { return std::make_shared<DoneWork>(); }
};

}  // namespace

std::unique_ptr<ProcessGroup> make_local_group() { return std::make_unique<LocalGroup>(); }

}  // namespace detail

namespace {

std::mutex g_mutex;
std::unique_ptr<ProcessGroup> g_world;
bool g_shut_down = false;

// The launcher's idea of this job's size: OpenMPI's, PMI's (MPICH, Slurm), or torchrun-style RANK /
// WORLD_SIZE. 1 when started without one.
int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "WORLD_SIZE"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return std::atoi(value);
  }
  return 1;
}

bool started_by_mpi_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK", "PMIX_RANK"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

// An uncaught C++ exception on one rank ends the whole job with the error and the rank, instead of
// leaving the other ranks waiting in a collective.
void terminate_job() {
  std::string message = "terminated";
  if (const std::exception_ptr error = std::current_exception()) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      message = str("uncaught exception: ", e.what());
    } catch (...) {
      message = "uncaught exception of unknown type";
    }
  }
  abort_job(message, 134);
}

}  // namespace

ProcessGroup& init() {
  const std::lock_guard lock(g_mutex);
  if (g_world != nullptr) return *g_world;
  NEEDLE_CHECK(!g_shut_down, RuntimeError, "needle.distributed: init() after shutdown(): a process initializes once");
  const int size = launcher_world_size();
  if (started_by_mpi_launcher()) {
    g_world = detail::make_mpi_group();
  } else {
    NEEDLE_CHECK(size <= 1, RuntimeError, "needle.distributed: WORLD_SIZE is ", size,
                 " but this process was not started by an MPI launcher; start every rank with "
                 "`mpirun -np N ...` (Needle's collectives on CPU run over MPI)");
    g_world = detail::make_local_group();
  }
  std::atexit([] { shutdown(); });
  if (g_world->size() > 1) std::set_terminate(terminate_job);
  return *g_world;
}

bool is_initialized() {
  const std::lock_guard lock(g_mutex);
  return g_world != nullptr;
}

ProcessGroup& world() {
  {
    const std::lock_guard lock(g_mutex);
    if (g_world != nullptr) return *g_world;
  }
  return init();
}

void shutdown() {
  std::unique_ptr<ProcessGroup> group;
  {
    const std::lock_guard lock(g_mutex);
    group = std::move(g_world);
    g_shut_down = true;
  }
  group.reset();  // its destructor runs what is queued and stops the communication thread
  detail::mpi_finalize_if_initialized();
}

void abort_job(const std::string& message, int exit_code) {
  int rank = 0;
  {
    // No lock: this may run while another thread holds it (a terminate handler).
    if (g_world != nullptr) rank = g_world->rank();
  }
  std::fprintf(stderr, "needle.distributed: rank %d failed: %s\n", rank, message.c_str());
  std::fflush(stderr);
  detail::mpi_abort_if_initialized(exit_code);
  std::_Exit(exit_code);
}

bool mpi_available() { return detail::built_with_mpi(); }
bool nccl_available() { return detail::built_with_nccl(); }

}  // namespace needle::dist
