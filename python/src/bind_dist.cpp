// needle.distributed's C++ side: the process group and its collectives, the gradient reducer behind
// DistributedDataParallel, DistributedSampler and SyncBatchNorm (include/needle/dist).
#include <nanobind/stl/map.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/tuple.h>

#include <chrono>
#include <map>
#include <memory>
#include <tuple>

#include "needle/dist/ddp.h"
#include "needle/dist/process_group.h"
#include "needle/dist/sampler.h"
#include "needle/dist/sync_batch_norm.h"
#include "tensor_bindings.h"

namespace needle::python {

namespace {

using dist::ProcessGroup;
using dist::ReduceOp;
using dist::Work;

std::chrono::milliseconds to_timeout(const std::optional<double>& seconds) {
  if (!seconds.has_value()) return dist::default_timeout();
  NEEDLE_CHECK(*seconds > 0, ValueError, "wait: timeout must be positive, got ", *seconds);
  return std::chrono::milliseconds(static_cast<std::int64_t>(*seconds * 1000));
}

// Waits with the GIL released (other Python threads run meanwhile), or hands the Work back.
nb::object finish(const std::shared_ptr<Work>& work, bool async_op) {
  if (async_op) return nb::cast(work);
  {
    const nb::gil_scoped_release release;
    work->wait();
  }
  return nb::none();
}

void bind_process_group(nb::module_& m) {
  nb::class_<Work>(m, "Work", "A collective in flight (async_op=True).")
      .def_prop_ro("completed", &Work::completed)
      .def(
          "wait",
          [](Work& work, const std::optional<double>& timeout) {
            const nb::gil_scoped_release release;
            work.wait(to_timeout(timeout));
          },
          nb::arg("timeout") = nb::none(),
          "Blocks until the collective completed; RuntimeError after `timeout` seconds (default: "
          "NEEDLE_DIST_TIMEOUT or 300) or when it failed.");

  nb::class_<ProcessGroup>(m, "ProcessGroup", "The ranks of this job and the collectives between them.")
      .def_prop_ro("rank", &ProcessGroup::rank)
      .def_prop_ro("size", &ProcessGroup::size)
      .def_prop_ro("local_rank", &ProcessGroup::local_rank)
      .def_prop_ro("backend", &ProcessGroup::backend)
      .def(
          "all_reduce",
          [](ProcessGroup& g, const NDArray& array, const std::string& op, bool async_op) {
            return finish(g.all_reduce_async(array, dist::reduce_op_from_name(op)), async_op);
          },
          nb::arg("array"), nb::arg("op") = "sum", nb::arg("async_op") = false,
          "Reduces `array` over the ranks in place ('sum', 'average' or 'max').")
      .def(
          "broadcast",
          [](ProcessGroup& g, const NDArray& array, int root, bool async_op) {
            return finish(g.broadcast_async(array, root), async_op);
          },
          nb::arg("array"), nb::arg("root") = 0, nb::arg("async_op") = false,
          "Copies rank `root`'s `array` into every rank's.")
      .def(
          "all_gather_into",
          [](ProcessGroup& g, const NDArray& output, const NDArray& input, bool async_op) {
            return finish(g.all_gather_async(output, input), async_op);
          },
          nb::arg("output"), nb::arg("input"), nb::arg("async_op") = false,
          "Every rank's `input` into `output` of shape (size, *input.shape).")
      .def(
          "reduce_scatter_into",
          [](ProcessGroup& g, const NDArray& output, const NDArray& input, const std::string& op, bool async_op) {
            return finish(g.reduce_scatter_async(output, input, dist::reduce_op_from_name(op)), async_op);
          },
          nb::arg("output"), nb::arg("input"), nb::arg("op") = "sum", nb::arg("async_op") = false,
          "`input` (size * n, ...) reduced over the ranks; this rank's block of n rows into `output`.")
      .def(
          "barrier", [](ProcessGroup& g, bool async_op) { return finish(g.barrier_async(), async_op); },
          nb::arg("async_op") = false, "Returns once every rank has called barrier().");

  m.def("dist_init", &dist::init, nb::rv_policy::reference,
        "The process group of this job, set up from the launcher's environment on the first call.");
  m.def("dist_is_initialized", &dist::is_initialized);
  m.def("dist_shutdown", &dist::shutdown, "Runs the queued collectives, stops the group and finalizes MPI.");
  m.def(
      "dist_abort",
      [](const std::string& message, int exit_code) {
        std::fflush(nullptr);
        dist::abort_job(message, exit_code);
      },
      nb::arg("message"), nb::arg("exit_code") = 1, "Ends every rank of the job (MPI_Abort) after printing `message`.");
  m.def("dist_mpi_available", &dist::mpi_available);
  m.def("dist_nccl_available", &dist::nccl_available);
  m.def(
      "dist_broadcast_from_rank0",
      [](const std::vector<std::pair<std::string, Tensor>>& named, const std::string& what) {
        dist::broadcast_from_rank0(dist::world(), named, what);
      },
      nb::arg("named_tensors"), nb::arg("what"),
      "Checks every rank has the same (name, dtype, shape) list, then copies rank 0's values into every rank's.");
}

void bind_reducer(nb::module_& m) {
  nb::class_<dist::GradientReducer>(m, "GradientReducer",
                                    "Averages gradients over the ranks in buckets started during backward.")
      .def(
          "__init__",
          [](dist::GradientReducer* self, std::vector<std::pair<std::string, Tensor>> named, double bucket_cap_mb,
             bool find_unused_parameters) {
            new (self) dist::GradientReducer(dist::world(), std::move(named),
                                             dist::ReducerOptions{bucket_cap_mb, find_unused_parameters});
          },
          nb::arg("named_parameters"), nb::arg("bucket_cap_mb") = 25.0, nb::arg("find_unused_parameters") = false)
      .def_prop_rw("sync", &dist::GradientReducer::sync, &dist::GradientReducer::set_sync,
                   "False inside no_sync(): backward only accumulates local gradients.")
      .def("bucket_names", &dist::GradientReducer::bucket_names, "The parameter names of each bucket, in launch order.")
      .def(
          "stats",
          [](const dist::GradientReducer& r) {
            const dist::CommStats s = r.stats();
            return std::map<std::string, double>{
                {"steps", static_cast<double>(s.steps)},      {"buckets", static_cast<double>(s.buckets)},
                {"bytes", static_cast<double>(s.bytes)},      {"last_comm_seconds", s.last_comm_seconds},
                {"last_wait_seconds", s.last_wait_seconds},   {"total_comm_seconds", s.total_comm_seconds},
                {"total_wait_seconds", s.total_wait_seconds}, {"hidden_fraction", s.hidden_fraction()}};
          },
          "Communication statistics: per-step bytes and buckets, all-reduce and waiting seconds, hidden fraction.")
      .def(
          "last_timeline",
          [](const dist::GradientReducer& r) {
            std::vector<std::tuple<double, double, double>> buckets;
            for (const dist::WorkTiming& t : r.last_timeline().buckets) {
              buckets.emplace_back(t.queued_at, t.started_at, t.finished_at);
            }
            return std::make_pair(buckets, r.last_timeline().backward_end);
          },
          "([(queued, started, finished) per bucket], backward_end) of the last step, steady-clock seconds.");
}

void bind_sampler_and_layers(nb::module_& m) {
  nb::class_<dist::DistributedSampler>(m, "DistributedSampler")
      .def(nb::init<std::int64_t, int, int, bool, std::uint64_t, bool>(), nb::arg("dataset_size"),
           nb::arg("num_replicas") = -1, nb::arg("rank") = -1, nb::arg("shuffle") = true, nb::arg("seed") = 0,
           nb::arg("drop_last") = false)
      .def("set_epoch", &dist::DistributedSampler::set_epoch, nb::arg("epoch"))
      .def_prop_ro("epoch", &dist::DistributedSampler::epoch)
      .def("indices", &dist::DistributedSampler::indices, "This rank's indices for the current epoch.")
      .def("__len__", &dist::DistributedSampler::size)
      .def_prop_ro("num_replicas", &dist::DistributedSampler::num_replicas)
      .def_prop_ro("rank", &dist::DistributedSampler::rank);
  nb::class_<dist::SyncBatchNorm, nn::Module>(m, "SyncBatchNorm")
      .def(
          "__init__",
          [](dist::SyncBatchNorm* self, std::int64_t dim, double eps, double momentum,
             const std::optional<Device>& device, const std::optional<DTypeLike>& dtype) {
            new (self) dist::SyncBatchNorm(dim, eps, momentum, device_or_default(device),
                                           to_dtype(dtype).value_or(kDefaultFloat));
          },
          nb::arg("dim"), nb::arg("eps") = 1e-5, nb::arg("momentum") = 0.1, nb::arg("device") = nb::none(),
          nb::arg("dtype") = nb::none())
      .def_prop_ro("num_features", &dist::SyncBatchNorm::num_features)
      .def_prop_ro("eps", &dist::SyncBatchNorm::eps)
      .def_prop_ro("momentum", &dist::SyncBatchNorm::momentum)
      .def_prop_ro("weight", [](const dist::SyncBatchNorm& b) { return b.parameter("weight"); })
      .def_prop_ro("bias", [](const dist::SyncBatchNorm& b) { return b.parameter("bias"); })
      .def_prop_ro("running_mean", [](const dist::SyncBatchNorm& b) { return b.buffer("running_mean"); })
      .def_prop_ro("running_var", [](const dist::SyncBatchNorm& b) { return b.buffer("running_var"); });
}

}  // namespace

void bind_dist(nb::module_& m) {
  bind_process_group(m);
  bind_reducer(m);
  bind_sampler_and_layers(m);
}

}  // namespace needle::python
