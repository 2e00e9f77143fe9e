// The process group of a job started by an MPI launcher: CPU arrays through MPI collectives, CUDA arrays
// through NCCL (detail::DeviceCollectives), both from the group's communication thread.
#include <mpi.h>

#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "dist/collective_check.h"
#include "dist/comm_thread.h"
#include "dist/groups.h"
#include "needle/core/error.h"

namespace needle::dist::detail {

namespace {

void check_mpi(int code, std::string_view what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw RuntimeError(str("needle.distributed: ", what, " failed: ", std::string_view(text, length)));
}

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::Bool:
      return MPI_C_BOOL;
    case DType::UInt8:
      return MPI_UINT8_T;
    case DType::Int8:
      return MPI_INT8_T;
    case DType::Int32:
      return MPI_INT32_T;
    case DType::Int64:
      return MPI_INT64_T;
    case DType::Float32:
      return MPI_FLOAT;
    case DType::Float64:
      return MPI_DOUBLE;
  }
  throw TypeError(str("needle.distributed: no MPI type for ", dtype_name(dtype)));
}

MPI_Op mpi_op(ReduceOp op, DType dtype) {
  if (dtype == DType::Bool) return MPI_LOR;  // sum and max of truth values: any rank's true
  return op == ReduceOp::Max ? MPI_MAX : MPI_SUM;
}

// MPI counts are ints: longer arrays go in pieces of at most this many elements.
constexpr std::int64_t kMaxCount = std::int64_t{1} << 30;

// Divides a summed float buffer by the number of ranks (ReduceOp::Average).
void divide(void* data, std::int64_t count, DType dtype, int size) {
  if (dtype == DType::Float32) {
    auto* values = static_cast<float*>(data);
    const float scale = 1.0F / static_cast<float>(size);
    for (std::int64_t i = 0; i < count; ++i) values[i] *= scale;
  } else {
    auto* values = static_cast<double*>(data);
    const double divisor = size;
    for (std::int64_t i = 0; i < count; ++i) values[i] /= divisor;
  }
}

// The contiguous host buffer a collective reads and writes for `array`: the array's own memory when it is
// compact, else a compact copy that is written back into the view when the Work is waited for.
struct Staged {
  NDArray buffer;
  std::function<void()> write_back;
};

Staged stage(const NDArray& array, bool written) {
  if (array.is_compact()) return {array, {}};
  Staged staged{array.compact(), {}};
  if (written) {
    staged.write_back = [target = array, buffer = staged.buffer]() mutable { target.assign(buffer); };
  }
  return staged;
}

class MpiGroup final : public ProcessGroup {
 public:
  MpiGroup() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized == 0) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
      NEEDLE_CHECK(provided >= MPI_THREAD_SERIALIZED, RuntimeError,
                   "needle.distributed: this MPI library does not allow calls from a communication thread "
                   "(MPI_THREAD_SERIALIZED)");
    }
    check_mpi(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;
    check_mpi(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_free(&local);
    thread_.emplace(rank_);
  }

  ~MpiGroup() override {
    thread_.reset();  // runs what is queued, then stops
    MPI_Comm_free(&comm_);
  }

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  [[nodiscard]] int local_rank() const override { return local_rank_; }
  [[nodiscard]] std::string backend() const override { return "mpi"; }

  std::shared_ptr<Work> all_reduce_async(const NDArray& array, ReduceOp op) override {
    check_reduce_op("all_reduce", array, op);
    const CallRecord record = next_record(CollectiveKind::AllReduce, array, static_cast<std::int64_t>(op));
    Staged staged = stage(array, true);
    return submit(record, std::move(staged.write_back), [this, record, buffer = staged.buffer, op] {
      agree(record);
      const std::int64_t count = buffer.size();
      if (buffer.device().type == DeviceType::Cuda) {
        device(buffer).all_reduce(buffer.data(), static_cast<std::size_t>(count), buffer.dtype(), op);
      } else {
        in_pieces(buffer, [&](char* data, int n) {
          check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, n, mpi_type(buffer.dtype()), mpi_op(op, buffer.dtype()), comm_),
                    "MPI_Allreduce");
        });
        if (op == ReduceOp::Average) divide(buffer.data(), count, buffer.dtype(), size_);
      }
      buffer.storage()->increment_version();
    });
  }

  std::shared_ptr<Work> broadcast_async(const NDArray& array, int root) override {
    check_root(root, size_);
    const CallRecord record = next_record(CollectiveKind::Broadcast, array, root);
    Staged staged = stage(array, rank_ != root);
    return submit(record, std::move(staged.write_back), [this, record, buffer = staged.buffer, root] {
      agree(record);
      if (buffer.device().type == DeviceType::Cuda) {
        device(buffer).broadcast(buffer.data(), static_cast<std::size_t>(buffer.size()), buffer.dtype(), root);
      } else {
        in_pieces(buffer, [&](char* data, int n) {
          check_mpi(MPI_Bcast(data, n, mpi_type(buffer.dtype()), root, comm_), "MPI_Bcast");
        });
      }
      if (rank_ != root) buffer.storage()->increment_version();
    });
  }

  std::shared_ptr<Work> all_gather_async(const NDArray& output, const NDArray& input) override {
    check_all_gather(output, input, size_);
    const CallRecord record = next_record(CollectiveKind::AllGather, input, 0);
    const NDArray source = input.compact();
    Staged staged = stage(output, true);
    return submit(record, std::move(staged.write_back), [this, record, source, buffer = staged.buffer] {
      agree(record);
      const std::int64_t count = source.size();
      if (source.device().type == DeviceType::Cuda) {
        device(source).all_gather(buffer.data(), source.data(), static_cast<std::size_t>(count), source.dtype());
      } else {
        NEEDLE_CHECK(count * size_ <= std::numeric_limits<int>::max(), ValueError, "all_gather: ", count,
                     " elements per rank is more than MPI can gather in one call");
        check_mpi(MPI_Allgather(source.data(), static_cast<int>(count), mpi_type(source.dtype()), buffer.data(),
                                static_cast<int>(count), mpi_type(source.dtype()), comm_),
                  "MPI_Allgather");
      }
      buffer.storage()->increment_version();
    });
  }

  std::shared_ptr<Work> reduce_scatter_async(const NDArray& output, const NDArray& input, ReduceOp op) override {
    check_reduce_scatter(output, input, size_);
    check_reduce_op("reduce_scatter", input, op);
    const CallRecord record = next_record(CollectiveKind::ReduceScatter, input, static_cast<std::int64_t>(op));
    const NDArray source = input.compact();
    Staged staged = stage(output, true);
    return submit(record, std::move(staged.write_back), [this, record, source, buffer = staged.buffer, op] {
      agree(record);
      const std::int64_t count = buffer.size();
      if (source.device().type == DeviceType::Cuda) {
        device(source).reduce_scatter(buffer.data(), source.data(), static_cast<std::size_t>(count), source.dtype(),
                                      op);
      } else {
        NEEDLE_CHECK(count <= std::numeric_limits<int>::max(), ValueError, "reduce_scatter: ", count,
                     " elements per rank is more than MPI can reduce in one call");
        check_mpi(MPI_Reduce_scatter_block(source.data(), buffer.data(), static_cast<int>(count),
                                           mpi_type(source.dtype()), mpi_op(op, source.dtype()), comm_),
                  "MPI_Reduce_scatter_block");
        if (op == ReduceOp::Average) divide(buffer.data(), count, buffer.dtype(), size_);
      }
      buffer.storage()->increment_version();
    });
  }

  std::shared_ptr<Work> barrier_async() override {
    const CallRecord record = next_record(CollectiveKind::Barrier, NDArray(), 0);
    return submit(record, {}, [this, record] {
      agree(record);
      check_mpi(MPI_Barrier(comm_), "MPI_Barrier");
    });
  }

 private:
  CallRecord next_record(CollectiveKind kind, const NDArray& array, std::int64_t op_or_root) {
    const std::lock_guard lock(sequence_mutex_);
    const Shape shape = kind == CollectiveKind::Barrier ? Shape{} : array.shape();
    const DType dtype = kind == CollectiveKind::Barrier ? DType::Bool : array.dtype();
    return CallRecord::describe(kind, sequence_++, dtype, shape, op_or_root);
  }

  std::shared_ptr<Work> submit(const CallRecord& record, std::function<void()> finish, std::function<void()> run) {
    return thread_->submit(record.str(), std::move(run), std::move(finish));
  }

  // On the communication thread: every rank's record, compared (check_agreement throws the same error on
  // every rank).
  void agree(const CallRecord& record) {
    std::vector<CallRecord> records(static_cast<std::size_t>(size_));
    check_mpi(MPI_Allgather(record.words.data(), static_cast<int>(record.words.size()), MPI_INT64_T, records.data(),
                            static_cast<int>(record.words.size()), MPI_INT64_T, comm_),
              "MPI_Allgather (call check)");
    check_agreement(records);
  }

  template <typename Fn>
  static void in_pieces(const NDArray& buffer, Fn&& fn) {
    const auto item = static_cast<std::int64_t>(itemsize(buffer.dtype()));
    char* data = static_cast<char*>(buffer.data());
    for (std::int64_t start = 0; start < buffer.size(); start += kMaxCount) {
      const std::int64_t n = std::min(kMaxCount, buffer.size() - start);
      fn(data + start * item, static_cast<int>(n));
    }
  }

  DeviceCollectives& device(const NDArray& array) {
    if (nccl_ == nullptr) {
      nccl_ = make_nccl_collectives(
          rank_, size_, array.device().index,
          [](void* bytes, std::size_t size, void* context) {
            check_mpi(MPI_Bcast(bytes, static_cast<int>(size), MPI_BYTE, 0, static_cast<MpiGroup*>(context)->comm_),
                      "MPI_Bcast (NCCL id)");
          },
          this);
    }
    return *nccl_;
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  std::mutex sequence_mutex_;
  std::uint64_t sequence_ = 0;
  std::unique_ptr<DeviceCollectives> nccl_;  // made on the first collective on CUDA memory
  std::optional<CommThread> thread_;         // last: stopped first
};

}  // namespace

std::unique_ptr<ProcessGroup> make_mpi_group() { return std::make_unique<MpiGroup>(); }
bool built_with_mpi() { return true; }

void mpi_abort_if_initialized(int exit_code) {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized != 0 && finalized == 0) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

void mpi_finalize_if_initialized() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized != 0 && finalized == 0) MPI_Finalize();
}

}  // namespace needle::dist::detail
