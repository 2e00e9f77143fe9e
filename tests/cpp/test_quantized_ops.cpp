// int8 quantization: quantize_rows, int8_matmul and quantized_matmul. The ref kernels against hand-computed
// results; the cpu kernels (every build: AVX-512 VNNI, AVX2, portable; 1 and 2 threads) against ref bit for
// bit on random shapes, extreme values and non-contiguous inputs; the composed defaults against ref; and
// the array functions' checks.
#include <gtest/gtest.h>
#include <needle/needle.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/int8_gemm.h"
#include "fused_test_util.h"
#include "needle/backend/backend.h"
#include "needle/core/fused_ops.h"
#include "needle/core/threads.h"

namespace needle {
namespace {

using cpu::Int8Kernel;
using testing::cpu_backend;

constexpr Int8Kernel kBuilds[] = {Int8Kernel::Auto, Int8Kernel::Vnni, Int8Kernel::Avx2, Int8Kernel::Portable};

std::string build_name(Int8Kernel kernel) {
  switch (kernel) {
    case Int8Kernel::Auto:
      return "auto";
    case Int8Kernel::Vnni:
      return "vnni";
    case Int8Kernel::Avx2:
      return "avx2";
    case Int8Kernel::Portable:
      return "portable";
  }
  return "?";
}

// Runs fn() under every int8 build this machine has and 1 and 2 threads, restoring the defaults after.
template <typename Fn>
void for_each_build(Fn&& fn) {
  const int saved_threads = get_num_threads();
  for (const Int8Kernel kernel : kBuilds) {
    if (!cpu::int8_kernel_supported(kernel)) continue;
    cpu::set_int8_kernel(kernel);
    for (const int threads : {1, 2}) {
      set_num_threads(threads);
      SCOPED_TRACE(str(build_name(kernel), ", ", threads, " threads"));
      fn();
    }
  }
  cpu::set_int8_kernel(Int8Kernel::Auto);
  set_num_threads(saved_threads);
}

NDArray int8_array(const std::vector<std::int8_t>& values, const Shape& shape, Device device = cpu_device()) {
  return NDArray::from_vector(values, shape, device);
}

NDArray random_int8(const Shape& shape, std::mt19937& rng, int low = -128, int high = 127) {
  std::uniform_int_distribution<int> value(low, high);
  std::vector<std::int8_t> values(static_cast<std::size_t>(numel(shape)));
  for (auto& v : values) v = static_cast<std::int8_t>(value(rng));
  return int8_array(values, shape);
}

NDArray random_floats(const Shape& shape, std::mt19937& rng, float scale = 1.0F) {
  std::normal_distribution<float> value(0.0F, scale);
  std::vector<float> values(static_cast<std::size_t>(numel(shape)));
  for (auto& v : values) v = value(rng);
  return NDArray::from_vector(values, shape, cpu_device());
}

// The bytes of a host array, for comparisons that must be exact to the bit (NaN and -0 included).
std::vector<unsigned char> bytes(const NDArray& a) {
  const NDArray host = a.to(cpu_device()).compact();
  std::vector<unsigned char> out(static_cast<std::size_t>(host.size()) * itemsize(host.dtype()));
  if (!out.empty()) std::memcpy(out.data(), host.view().data, out.size());
  return out;
}

// ---- quantize_rows ---------------------------------------------------------------------------------------

TEST(QuantizeRows, RefMatchesHandComputedValuesWithTiesToEven) {
  // amax = 127 makes 127 / amax = 1, so the values are x rounded half to even.
  const NDArray x = NDArray::from_vector<float>({127.0F, 0.5F,  1.5F, 2.5F, -0.5F, -1.5F, -2.5F, 126.5F,  // row 0
                                                 0.0F,   -0.0F, 0.0F, 0.0F, 0.0F,  0.0F,  0.0F,  0.0F,    // zeros
                                                 -2.0F,  1.0F,  0.5F, 0.0F, 0.0F,  0.0F,  0.0F,  0.0F},
                                                {3, 8}, ref_device());
  const QuantizedRows q = quantize_rows(x);
  EXPECT_EQ(q.values.dtype(), DType::Int8);
  EXPECT_EQ(q.scale.shape(), Shape({3}));
  EXPECT_EQ(q.values.to_vector<std::int8_t>(), std::vector<std::int8_t>({127, 0, 2, 2, 0,    -2, -2, 126, 0, 0, 0, 0,
                                                                         0,   0, 0, 0, -127, 64, 32, 0,   0, 0, 0, 0}));
  // Row 2: amax = 2, scale = 2 / 127 and 1.0 * (127 / 2) = 63.5 rounds to 64, 0.5 * 63.5 = 31.75 to 32.
  EXPECT_EQ(q.scale.to_vector<float>(), std::vector<float>({1.0F, 1.0F, 2.0F / 127.0F}));
}

TEST(QuantizeRows, EmptyRowsZeroDimensionsAndFloat64) {
  for (const Device device : {ref_device(), cpu_device()}) {
    const QuantizedRows no_columns = quantize_rows(NDArray::zeros({3, 0}, DType::Float32, device));
    EXPECT_EQ(no_columns.values.shape(), Shape({3, 0}));
    EXPECT_EQ(no_columns.scale.to_vector<float>(), std::vector<float>({1.0F, 1.0F, 1.0F}));
    const QuantizedRows no_rows = quantize_rows(NDArray::zeros({0, 4}, DType::Float32, device));
    EXPECT_EQ(no_rows.values.shape(), Shape({0, 4}));
    EXPECT_EQ(no_rows.scale.shape(), Shape({0}));
    // A 1-d x is one row: its scale is 0-d.
    const QuantizedRows vector = quantize_rows(NDArray::from_vector<double>({-4.0, 2.0}, {2}, device));
    EXPECT_EQ(vector.scale.shape(), Shape({}));
    EXPECT_EQ(vector.values.to_vector<std::int8_t>(), std::vector<std::int8_t>({-127, 64}));
    EXPECT_EQ(vector.scale.to_vector<float>(), std::vector<float>({4.0F / 127.0F}));
  }
}

TEST(QuantizeRows, NanAndInfinityRaiseValueErrorNamingTheFunction) {
  for (const Device device : {ref_device(), cpu_device()}) {
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()}) {
      for (const std::int64_t cols : {3, 40}) {
        std::vector<float> values(static_cast<std::size_t>(2 * cols), 1.0F);
        values[static_cast<std::size_t>(cols + 1)] = bad;
        try {
          (void)quantize_rows(NDArray::from_vector(values, {2, cols}, device));
          ADD_FAILURE() << "expected ValueError for " << bad;
        } catch (const ValueError& e) {
          EXPECT_NE(std::string(e.what()).find("quantize_rows: row 1"), std::string::npos) << e.what();
        }
      }
    }
    // float64 beyond float32's range becomes infinite.
    EXPECT_THROW((void)quantize_rows(NDArray::from_vector<double>({1e300, 1.0}, {2}, device)), ValueError);
  }
  EXPECT_THROW((void)quantize_rows(NDArray::zeros({2, 2}, DType::Int32, cpu_device())), TypeError);
  EXPECT_THROW((void)quantize_rows(NDArray::zeros({}, DType::Float32, cpu_device())), ValueError);
}

TEST(QuantizeRows, CpuMatchesRefBitForBitOnEveryBuild) {
  std::mt19937 rng(7);
  std::vector<NDArray> inputs;
  for (const std::int64_t cols : {1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000}) {
    inputs.push_back(random_floats({5, cols}, rng, 3.0F));
  }
  inputs.push_back(random_floats({300, 257}, rng));  // enough values for two threads
  // Ties: amax 127 in column 0, halves elsewhere; a zero row; a row of subnormals (127 / amax overflows).
  std::vector<float> ties(2 * 33, 0.0F);
  for (std::size_t j = 0; j < 33; ++j) ties[j] = static_cast<float>(j) - 16.5F;
  ties[0] = -127.0F;
  inputs.push_back(NDArray::from_vector(ties, {2, 33}, cpu_device()));
  const float tiny = std::numeric_limits<float>::denorm_min();
  inputs.push_back(NDArray::from_vector<float>({tiny, 0.0F, -tiny, 2 * tiny, 0.0F, 0.0F, 0.0F, 0.0F, 0.0F, tiny},
                                               {1, 10}, cpu_device()));
  // A non-contiguous view: the array function compacts it.
  inputs.push_back(random_floats({17, 9}, rng).permute({1, 0}));
  for (const NDArray& x : inputs) {
    SCOPED_TRACE(shape_str(x.shape()));
    const QuantizedRows want = quantize_rows(x.to(ref_device()));
    for_each_build([&] {
      const QuantizedRows got = quantize_rows(x);
      EXPECT_EQ(bytes(got.values), bytes(want.values));
      EXPECT_EQ(bytes(got.scale), bytes(want.scale));
    });
    // The composed default gives the same bits.
    const NDArray in = x.compact();
    QuantizedRows composed{NDArray::empty(in.shape(), DType::Int8, cpu_device()),
                           NDArray::empty(want.scale.shape(), DType::Float32, cpu_device())};
    cpu_backend().composed_quantize_rows(composed.values.view(), composed.scale.view(), in.view());
    EXPECT_EQ(bytes(composed.values), bytes(want.values));
    EXPECT_EQ(bytes(composed.scale), bytes(want.scale));
  }
}

// ---- int8_matmul and quantized_matmul ----------------------------------------------------------------------

TEST(Int8Matmul, RefMatchesHandComputedProducts) {
  const NDArray a = int8_array({1, 2, 3, -128, 127, 0}, {2, 3}, ref_device());
  const NDArray w = int8_array({1, 0, -1, 2, 2, 2}, {2, 3}, ref_device());
  // acc = [[1 - 3, 2 + 4 + 6], [-128, -256 + 254]]
  EXPECT_EQ(int8_matmul(a, w).to_vector<std::int32_t>(), std::vector<std::int32_t>({-2, 12, -128, -2}));
  const NDArray a_scale = NDArray::from_vector<float>({0.5F, 0.25F}, {2}, ref_device());
  const NDArray w_scale = NDArray::from_vector<float>({2.0F, 0.1F}, {2}, ref_device());
  const NDArray bias = NDArray::from_vector<float>({1.0F, -1.0F}, {2}, ref_device());
  const auto expected = [&](bool with_bias) {
    const float b0 = with_bias ? 1.0F : 0.0F;
    const float b1 = with_bias ? -1.0F : 0.0F;
    return std::vector<float>({std::fma(-2.0F, 0.5F * 2.0F, b0), std::fma(12.0F, 0.5F * 0.1F, b1),
                               std::fma(-128.0F, 0.25F * 2.0F, b0), std::fma(-2.0F, 0.25F * 0.1F, b1)});
  };
  EXPECT_EQ(quantized_matmul(a, a_scale, w, w_scale).to_vector<float>(), expected(false));
  EXPECT_EQ(quantized_matmul(a, a_scale, w, w_scale, &bias).to_vector<float>(), expected(true));
  // K = 0: zeros (plus the bias).
  const NDArray empty_a = NDArray::zeros({2, 0}, DType::Int8, ref_device());
  const NDArray empty_w = NDArray::zeros({2, 0}, DType::Int8, ref_device());
  EXPECT_EQ(int8_matmul(empty_a, empty_w).to_vector<std::int32_t>(), std::vector<std::int32_t>(4, 0));
  EXPECT_EQ(quantized_matmul(empty_a, a_scale, empty_w, w_scale, &bias).to_vector<float>(),
            std::vector<float>({1.0F, -1.0F, 1.0F, -1.0F}));
}

struct ProductCase {
  std::int64_t m, n, k;
};

// Edge sizes and a random selection of the products of {0, 1, 3, 15, 16, 17, 63, 64, 65, 255, 257, 1000}.
std::vector<ProductCase> product_cases() {
  const std::vector<std::int64_t> sizes = {0, 1, 3, 15, 16, 17, 63, 64, 65, 255, 257, 1000};
  std::vector<ProductCase> cases = {{1, 1, 1},      {0, 5, 7},      {5, 0, 7},      {4, 4, 0}, {1, 1000, 1100},
                                    {257, 65, 255}, {3, 1000, 129}, {65, 17, 1000}, {1, 3, 5}, {7, 5, 3}};
  // The packed path's edges (AVX-512 VNNI, kInt8PackedMinRows or more rows; fewer take the dot-product
  // tiles): every remainder of rows by the 6-row tile, columns around 16-column panels and 64-column
  // strips, depths not a multiple of 4, shorter than one group or 0, and a product split over threads by
  // rows (few columns, many rows).
  const std::int64_t packed = cpu::kInt8PackedMinRows;
  const std::vector<ProductCase> packed_edges = {
      {packed - 1, 70, 9}, {packed, 17, 3},       {packed + 1, 16, 4},  {packed + 2, 64, 1},    {packed + 3, 65, 5},
      {packed + 4, 33, 2}, {packed + 5, 48, 130}, {packed + 6, 129, 6}, {packed + 7, 200, 257}, {packed + 9, 1, 1027},
      {packed + 8, 70, 0}, {300, 20, 259},        {40, 127, 4099}};
  cases.insert(cases.end(), packed_edges.begin(), packed_edges.end());
  std::mt19937 rng(11);
  std::uniform_int_distribution<std::size_t> pick(0, sizes.size() - 1);
  while (cases.size() < 53) {
    const ProductCase c{sizes[pick(rng)], sizes[pick(rng)], sizes[pick(rng)]};
    if (c.m * c.n * c.k <= 20'000'000) cases.push_back(c);
  }
  return cases;
}

TEST(Int8Matmul, CpuMatchesRefBitForBitOnEveryBuildShapeAndLayout) {
  std::mt19937 rng(3);
  for (const ProductCase& c : product_cases()) {
    for (const bool transposed : {false, true}) {
      SCOPED_TRACE(str("M ", c.m, " N ", c.n, " K ", c.k, transposed ? " (a transposed view)" : ""));
      // A non-contiguous a: the transpose of a (K, M) array. The array functions compact it.
      const NDArray a = transposed ? random_int8({c.k, c.m}, rng).permute({1, 0}) : random_int8({c.m, c.k}, rng);
      const NDArray w = random_int8({c.n, c.k}, rng);
      const NDArray a_scale = random_floats({c.m}, rng, 0.01F);
      const NDArray w_scale = random_floats({c.n}, rng, 0.01F);
      const NDArray bias = random_floats({c.n}, rng);
      const NDArray want_acc = int8_matmul(a.to(ref_device()), w.to(ref_device()));
      const NDArray want =
          quantized_matmul(a.to(ref_device()), a_scale.to(ref_device()), w.to(ref_device()), w_scale.to(ref_device()));
      const NDArray ref_bias = bias.to(ref_device());
      const NDArray want_biased = quantized_matmul(a.to(ref_device()), a_scale.to(ref_device()), w.to(ref_device()),
                                                   w_scale.to(ref_device()), &ref_bias);
      for_each_build([&] {
        EXPECT_EQ(bytes(int8_matmul(a, w)), bytes(want_acc));
        EXPECT_EQ(bytes(quantized_matmul(a, a_scale, w, w_scale)), bytes(want));
        EXPECT_EQ(bytes(quantized_matmul(a, a_scale, w, w_scale, &bias)), bytes(want_biased));
      });
    }
  }
}

TEST(Int8Matmul, ExtremeValuesAndTheDeepestProductAreExact) {
  const std::int64_t k = kernels::kMaxInt8Depth;
  const NDArray lowest = NDArray::full({2, k}, Scalar(-128), DType::Int8, cpu_device());
  const NDArray highest = NDArray::full({2, k}, Scalar(127), DType::Int8, cpu_device());
  std::vector<std::int8_t> rows(static_cast<std::size_t>(2 * k), std::int8_t{-128});
  std::fill(rows.begin() + k, rows.end(), std::int8_t{127});
  const NDArray mixed = int8_array(rows, {2, k});  // a row of -128 and a row of 127
  // kInt8PackedMinRows rows of a take the packed path where there is one (two take the dot-product tiles).
  const std::int64_t packed_rows = cpu::kInt8PackedMinRows;
  const NDArray lowest_rows = NDArray::full({packed_rows, k}, Scalar(-128), DType::Int8, cpu_device());
  const NDArray highest_rows = NDArray::full({packed_rows, k}, Scalar(127), DType::Int8, cpu_device());
  std::vector<std::int32_t> highest_by_mixed;
  for (std::int64_t i = 0; i < packed_rows; ++i)
    highest_by_mixed.insert(highest_by_mixed.end(), {-127 * 128 * k, 127 * 127 * k});
  for_each_build([&] {
    EXPECT_EQ(int8_matmul(lowest, lowest).to_vector<std::int32_t>(), std::vector<std::int32_t>(4, 128 * 128 * k));
    EXPECT_EQ(int8_matmul(lowest, highest).to_vector<std::int32_t>(), std::vector<std::int32_t>(4, -128 * 127 * k));
    EXPECT_EQ(int8_matmul(mixed, lowest).to_vector<std::int32_t>(),
              std::vector<std::int32_t>({128 * 128 * k, 128 * 128 * k, -127 * 128 * k, -127 * 128 * k}));
    EXPECT_EQ(int8_matmul(lowest_rows, lowest).to_vector<std::int32_t>(),
              std::vector<std::int32_t>(2 * packed_rows, 128 * 128 * k));
    EXPECT_EQ(int8_matmul(lowest_rows, highest).to_vector<std::int32_t>(),
              std::vector<std::int32_t>(2 * packed_rows, -128 * 127 * k));
    EXPECT_EQ(int8_matmul(highest_rows, mixed).to_vector<std::int32_t>(), highest_by_mixed);
  });
}

TEST(Int8Matmul, ComposedDefaultsMatchRef) {
  std::mt19937 rng(5);
  const NDArray a = random_int8({19, 70}, rng);
  const NDArray w = random_int8({33, 70}, rng);
  const NDArray a_scale = random_floats({19}, rng, 0.01F);
  const NDArray w_scale = random_floats({33}, rng, 0.01F);
  const NDArray bias = random_floats({33}, rng);
  NDArray acc = NDArray::empty({19, 33}, DType::Int32, cpu_device());
  cpu_backend().composed_int8_matmul(acc.view(), a.view(), w.view());
  EXPECT_EQ(bytes(acc), bytes(int8_matmul(a.to(ref_device()), w.to(ref_device()))));
  // The composed quantized_matmul rounds the scaling and the bias separately: equal up to float32 rounding.
  NDArray out = NDArray::empty({19, 33}, DType::Float32, cpu_device());
  cpu_backend().composed_quantized_matmul(out.view(), a.view(), a_scale.view(), w.view(), w_scale.view(), bias.view());
  const NDArray ref_bias = bias.to(ref_device());
  testing::expect_close(testing::host(out),
                        testing::host(quantized_matmul(a.to(ref_device()), a_scale.to(ref_device()), w.to(ref_device()),
                                                       w_scale.to(ref_device()), &ref_bias)),
                        1e-6, "composed quantized_matmul");
}

// The message of the exception fn() throws, which must be of type E.
template <typename E, typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

TEST(Int8Matmul, ChecksNameTheFunctionShapesAndDtypes) {
  const NDArray a = NDArray::zeros({2, 3}, DType::Int8, cpu_device());
  const NDArray w = NDArray::zeros({4, 3}, DType::Int8, cpu_device());
  const NDArray a_scale = NDArray::ones({2}, DType::Float32, cpu_device());
  const NDArray w_scale = NDArray::ones({4}, DType::Float32, cpu_device());
  const auto has = [](const std::string& message, const std::string& part) {
    EXPECT_NE(message.find(part), std::string::npos) << message;
  };
  has(error_of<TypeError>([&] { (void)int8_matmul(a.astype(DType::Float32), w); }),
      "int8_matmul: a must be int8, got float32");
  has(error_of<ValueError>([&] {
        (void)int8_matmul(a, NDArray::zeros({4, 5}, DType::Int8, cpu_device()));
      }),
      "int8_matmul: expected a (M, K) and w (N, K), got shapes (2, 3) and (4, 5)");
  has(error_of<ValueError>([&] { (void)int8_matmul(a.reshape({6}), w); }), "int8_matmul: expected a (M, K)");
  has(error_of<ValueError>(
          [&] { (void)quantized_matmul(a, NDArray::ones({3}, DType::Float32, cpu_device()), w, w_scale); }),
      "quantized_matmul: a_scale must have shape (2,), got (3,)");
  has(error_of<TypeError>([&] { (void)quantized_matmul(a, a_scale, w, w_scale.astype(DType::Float64)); }),
      "quantized_matmul: w_scale must be float32, got float64");
  const NDArray short_bias = NDArray::ones({3}, DType::Float32, cpu_device());
  has(error_of<ValueError>([&] { (void)quantized_matmul(a, a_scale, w, w_scale, &short_bias); }),
      "quantized_matmul: bias must have shape (4,), got (3,)");
  has(error_of<RuntimeError>([&] { (void)int8_matmul(a, w.to(ref_device())); }),
      "int8_matmul: expected all arrays on the same device");
  has(error_of<RuntimeError>([&] { (void)quantized_matmul(a, a_scale.to(ref_device()), w, w_scale); }),
      "quantized_matmul: expected all arrays on the same device");
  const std::int64_t too_deep = kernels::kMaxInt8Depth + 1;
  has(error_of<ValueError>([&] {
        (void)int8_matmul(NDArray::zeros({1, too_deep}, DType::Int8, cpu_device()),
                          NDArray::zeros({1, too_deep}, DType::Int8, cpu_device()));
      }),
      "int8_matmul: depth K = 131072 exceeds 131071");
}

}  // namespace
}  // namespace needle
