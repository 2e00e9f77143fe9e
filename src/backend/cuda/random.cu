// Random fills with the counter-based generator of core/random.h: element i (row-major) takes sample
// number offset + i, so the numbers equal ref's. The arithmetic after the integer mixing is spelled
// with explicitly rounded operations (__dmul_rn, __dadd_rn) because nvcc would otherwise fuse a
// multiply and an add into one FMA and round differently from the host.
#include "backend/cuda/cuda_common.cuh"

namespace needle::cuda {

namespace {

__device__ __forceinline__ std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30U)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27U)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31U);
}

__device__ __forceinline__ double uniform01(std::uint64_t seed, std::uint64_t counter) {
  return static_cast<double>(mix64(mix64(seed) ^ counter) >> 11U) * 0x1.0p-53;
}

// Box-Muller as in random_bits::standard_normal. log1p and cos come from CUDA's math library, whose
// results can differ from the host's in the last bit: normal samples agree to rounding, not bit for bit.
__device__ __forceinline__ double standard_normal(std::uint64_t seed, std::uint64_t counter) {
  constexpr std::uint64_t kSecondStream = 1ULL << 63U;
  const double u1 = uniform01(seed, counter);
  const double u2 = uniform01(seed, counter | kSecondStream);
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  return sqrt(__dmul_rn(-2.0, log1p(-u1))) * cos(__dmul_rn(kTwoPi, u2));
}

template <typename T>
struct RandomFn {
  T* out;
  RandomDistribution dist;
  double p0;
  double p1;
  std::uint64_t seed;
  std::uint64_t offset;

  __device__ T sample(std::uint64_t counter) const {
    switch (dist) {
      case RandomDistribution::Uniform: {
        const T value = static_cast<T>(__dadd_rn(p0, __dmul_rn(p1 - p0, uniform01(seed, counter))));
        if constexpr (std::is_floating_point_v<T>) {
          // Rounding a double just below p1 to float32 can land on p1 itself: keep [p0, p1) half-open.
          const T high = static_cast<T>(p1);
          if (p1 > p0 && value >= high) {
            if constexpr (std::is_same_v<T, float>) {
              return nextafterf(high, static_cast<float>(p0));
            } else {
              return nextafter(high, p0);
            }
          }
        }
        return value;
      }
      case RandomDistribution::Normal:
        return static_cast<T>(__dadd_rn(p0, __dmul_rn(p1, standard_normal(seed, counter))));
      case RandomDistribution::Bernoulli:
        return static_cast<T>(uniform01(seed, counter) < p0 ? 1 : 0);
    }
    return T(0);
  }
};

template <typename T>
__global__ void random_kernel(std::int64_t n, OffsetCalc<1> calc, RandomFn<T> fn) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    std::int64_t at[1];
    calc.offsets(i, at);
    fn.out[at[0]] = fn.sample(fn.offset + static_cast<std::uint64_t>(i));
  }
}

}  // namespace

void random(Context& ctx, RandomDistribution dist, const StridedView& out, double p0, double p1, std::uint64_t seed,
            std::uint64_t offset) {
  const std::int64_t n = out.size();
  if (n == 0) return;
  const OffsetCalc<1> calc = make_offset_calc<1>("random", out.shape, {&out.strides});
  dispatch(out.dtype, [&]<typename T>() {
    random_kernel<T>
        <<<blocks_for(n), kThreads, 0, ctx.stream>>>(n, calc, RandomFn<T>{out.ptr<T>(), dist, p0, p1, seed, offset});
    check_launch("random");
  });
}

}  // namespace needle::cuda
