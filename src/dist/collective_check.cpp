#include "dist/collective_check.h"

#include <functional>
#include <sstream>

#include "needle/core/error.h"

namespace needle::dist::detail {

namespace {

// Positions in CallRecord::words.
enum Word : std::size_t { kKind, kSequence, kDType, kOpOrRoot, kNdim, kNumel, kExtraHash, kFirstDim };
static_assert(kFirstDim + CallRecord::kDims == 15, "the record has room for 8 dimensions");

}  // namespace

std::string_view collective_name(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::AllReduce:
      return "all_reduce";
    case CollectiveKind::Broadcast:
      return "broadcast";
    case CollectiveKind::AllGather:
      return "all_gather";
    case CollectiveKind::ReduceScatter:
      return "reduce_scatter";
    case CollectiveKind::Barrier:
      return "barrier";
  }
  return "unknown collective";
}

CallRecord CallRecord::describe(CollectiveKind kind, std::uint64_t sequence, DType dtype, const Shape& shape,
                                std::int64_t op_or_root) {
  CallRecord record;
  auto& w = record.words;
  w[kKind] = static_cast<std::int64_t>(kind);
  w[kSequence] = static_cast<std::int64_t>(sequence);
  w[kDType] = static_cast<std::int64_t>(dtype);
  w[kOpOrRoot] = op_or_root;
  w[kNdim] = static_cast<std::int64_t>(shape.size());
  w[kNumel] = 1;
  std::size_t extra_hash = 0;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    w[kNumel] *= shape[i];
    if (i < kDims) {
      w[kFirstDim + i] = shape[i];
    } else {
      extra_hash = extra_hash * 1000003U ^ std::hash<std::int64_t>{}(shape[i]);
    }
  }
  w[kExtraHash] = static_cast<std::int64_t>(extra_hash);
  return record;
}

std::string CallRecord::str() const {
  std::ostringstream out;
  out << collective_name(kind()) << " #" << words[kSequence];
  if (kind() == CollectiveKind::Barrier) return out.str();
  out << " (" << dtype_name(static_cast<DType>(words[kDType])) << ", shape (";
  const auto ndim = static_cast<std::size_t>(words[kNdim]);
  for (std::size_t i = 0; i < ndim && i < kDims; ++i) out << (i > 0 ? ", " : "") << words[kFirstDim + i];
  if (ndim > kDims) out << ", ...";
  out << (ndim == 1 ? ",)" : ")");
  if (kind() == CollectiveKind::Broadcast) {
    out << ", root " << words[kOpOrRoot];
  } else if (kind() == CollectiveKind::AllReduce || kind() == CollectiveKind::ReduceScatter) {
    out << ", op " << reduce_op_name(static_cast<ReduceOp>(words[kOpOrRoot]));
  }
  out << ")";
  return out.str();
}

void check_agreement(const std::vector<CallRecord>& records) {
  bool agree = true;
  for (const CallRecord& record : records) agree = agree && record.words == records.front().words;
  if (agree) return;
  std::ostringstream out;
  out << "needle.distributed: the ranks called different collectives (each rank must make the same calls in "
         "the same order, with the same dtype, shape and options): ";
  for (std::size_t r = 0; r < records.size(); ++r) {
    out << (r > 0 ? "; " : "") << "rank " << r << " called " << records[r].str();
  }
  throw RuntimeError(out.str());
}

}  // namespace needle::dist::detail
