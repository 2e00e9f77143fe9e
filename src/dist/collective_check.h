// The agreement check every collective starts with: each rank describes its call in a fixed-size record
// (which collective, how many it has called so far, dtype, shape, reduce op, root), the records are
// all-gathered, and every rank compares them. They are identical on every rank afterwards, so every rank
// reaches the same verdict and raises the same error: no rank goes on into a collective that the others
// will not match (MPI and NCCL would hang, or read and write past a buffer).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "needle/core/ndarray.h"
#include "needle/dist/process_group.h"

namespace needle::dist::detail {

enum class CollectiveKind : std::int64_t { AllReduce = 1, Broadcast, AllGather, ReduceScatter, Barrier };
std::string_view collective_name(CollectiveKind kind);

// One rank's call, as 16 int64s (the all-gathered record).
struct CallRecord {
  static constexpr std::size_t kDims = 8;  // dimensions stored exactly; more are folded into a hash
  std::array<std::int64_t, 16> words{};

  static CallRecord describe(CollectiveKind kind, std::uint64_t sequence, DType dtype, const Shape& shape,
                             std::int64_t op_or_root);
  [[nodiscard]] CollectiveKind kind() const { return static_cast<CollectiveKind>(words[0]); }
  // "all_reduce #3 (float32, shape (2, 3), op sum)"
  [[nodiscard]] std::string str() const;
};

// Throws RuntimeError (the same on every rank) unless all records equal rank 0's; the message lists what
// each disagreeing rank called.
void check_agreement(const std::vector<CallRecord>& records);

}  // namespace needle::dist::detail
