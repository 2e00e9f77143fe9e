// What the tests of the fused kernels share: the two host backends, a host copy of an array, an exact
// comparison and an element-wise closeness check that reports the first few failing elements.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "needle/backend/backend.h"
#include "needle/core/device.h"
#include "needle/core/ndarray.h"

namespace needle::testing {

inline Backend& ref_backend() { return builtin_backend_for(ref_device()); }
inline Backend& cpu_backend() { return builtin_backend_for(cpu_device()); }

// The array's values as doubles, in row-major order.
inline std::vector<double> host(const NDArray& a) { return a.astype(DType::Float64).to_vector<double>(); }

// Passes when each element of `got` equals its expected value exactly, with the same sign (0 and -0 differ),
// or is NaN where the expected value is.
inline void expect_same_values(const NDArray& got, const std::vector<double>& want) {
  const std::vector<double> values = host(got);
  ASSERT_EQ(values.size(), want.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(values[i])) << "element " << i;
    } else {
      EXPECT_EQ(values[i], want[i]) << "element " << i;
      EXPECT_EQ(std::signbit(values[i]), std::signbit(want[i])) << "element " << i;
    }
  }
}

// Passes when each element equals its expected value (infinities included) or lies within
// tolerance * (1 + |expected|) of it; a NaN never passes.
inline void expect_close(const std::vector<double>& actual, const std::vector<double>& expected, double tolerance,
                         const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  std::size_t failures = 0;
  for (std::size_t i = 0; i < actual.size() && failures < 5; ++i) {
    if (actual[i] == expected[i]) continue;
    if (std::abs(actual[i] - expected[i]) <= tolerance * (1.0 + std::abs(expected[i]))) continue;
    ++failures;
    ADD_FAILURE() << what << ": element " << i << " is " << actual[i] << ", expected " << expected[i];
  }
}

}  // namespace needle::testing
