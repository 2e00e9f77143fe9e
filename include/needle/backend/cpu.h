// What the cpu device's machine can do: its float32 FMA peak, measured rather than looked up, so that a
// benchmark can say how close a workload comes to it (the "fraction of peak" of BENCHMARKS.md).
#pragma once

#include <string>

namespace needle {

struct FmaPeak {
  std::string isa;      // "avx512", "avx2" or "scalar": the widest FMA the float32 GEMM kernels use here
  int threads = 1;      // threads that ran at the same time
  double gflops = 0.0;  // float32 GFLOP/s of all of them together (an FMA counts as two operations)
};

// Runs `threads` threads at once, each a loop of independent FMA chains (enough of them to keep every FMA
// unit busy despite each FMA's latency), for about `seconds`, and returns their combined rate. Throws
// ValueError for threads < 1 or seconds <= 0.
FmaPeak measure_fma_peak(int threads = 1, double seconds = 0.2);

}  // namespace needle
