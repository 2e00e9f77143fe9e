// Seedable random numbers that are the same on every device.
//
// Needle uses a counter-based generator: the value drawn for element i of a request is a pure function
// of (seed, offset + i). A Generator only keeps (seed, offset) and advances the offset by the number of
// elements each request draws, so kernels on any device can fill arrays in parallel and still produce
// exactly the numbers the `ref` backend produces.
#pragma once

#include <cmath>
#include <cstdint>
#include <mutex>

namespace needle {

namespace random_bits {

// SplitMix64 finalizer: a fast bijective mix of 64 bits.
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30U)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27U)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31U);
}

// 64 random bits for stream `seed` at position `counter`.
inline std::uint64_t bits(std::uint64_t seed, std::uint64_t counter) { return mix64(mix64(seed) ^ counter); }

// Uniform double in [0, 1) with 53 random bits.
inline double uniform01(std::uint64_t seed, std::uint64_t counter) {
  return static_cast<double>(bits(seed, counter) >> 11U) * 0x1.0p-53;
}

// Standard normal sample for element `counter` (Box-Muller over two independent uniforms). The second
// uniform comes from the upper half of the counter space, so a normal draw consumes one counter, like a
// uniform one, and consecutive requests never reuse each other's bits.
inline double standard_normal(std::uint64_t seed, std::uint64_t counter) {
  constexpr std::uint64_t kSecondStream = 1ULL << 63U;
  const double u1 = uniform01(seed, counter);
  const double u2 = uniform01(seed, counter | kSecondStream);
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  return std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(kTwoPi * u2);  // 1 - u1 is in (0, 1]
}

}  // namespace random_bits

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0) : seed_(seed) {}

  // Restarts the stream (like torch.manual_seed).
  void manual_seed(std::uint64_t seed) {
    std::lock_guard<std::mutex> lock(mutex_);
    seed_ = seed;
    offset_ = 0;
  }

  struct State {
    std::uint64_t seed;
    std::uint64_t offset;
  };
  // Reserves `count` consecutive counters and returns where they start.
  State advance(std::uint64_t count) {
    std::lock_guard<std::mutex> lock(mutex_);
    const State state{seed_, offset_};
    offset_ += count;
    return state;
  }

 private:
  std::mutex mutex_;
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;
};

// The process-wide generator used when none is passed.
Generator& default_generator();

// Seeds the default generator.
void manual_seed(std::uint64_t seed);

}  // namespace needle
