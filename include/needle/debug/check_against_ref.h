// check_against_ref: while a CheckAgainstRefGuard lives, every op computed on a device other than `ref`
// (forward ops and the ops of backward passes alike) is computed again on `ref` from copies of the same
// inputs, and the first op whose result differs by more than atol + rtol * |ref value| in some element
// raises RuntimeError with the op's name, its inputs' shapes and the largest absolute and relative
// differences. This is how a fast kernel is debugged: `ref` is the plain-loop baseline. Guards nest; the
// innermost one's tolerances apply. The defaults suit float32 results whose summation order differs.
#pragma once

namespace needle::debug {

inline constexpr double kDefaultCheckRtol = 1e-4;
inline constexpr double kDefaultCheckAtol = 1e-5;

class CheckAgainstRefGuard {
 public:
  explicit CheckAgainstRefGuard(double rtol = kDefaultCheckRtol, double atol = kDefaultCheckAtol);
  ~CheckAgainstRefGuard();
  CheckAgainstRefGuard(const CheckAgainstRefGuard&) = delete;
  CheckAgainstRefGuard& operator=(const CheckAgainstRefGuard&) = delete;
  CheckAgainstRefGuard(CheckAgainstRefGuard&&) = delete;
  CheckAgainstRefGuard& operator=(CheckAgainstRefGuard&&) = delete;
};

// The guard's two halves, for bindings (calls must pair). push throws ValueError for negative or NaN
// tolerances.
void push_check_against_ref(double rtol, double atol);
void pop_check_against_ref();
bool check_against_ref_enabled();

}  // namespace needle::debug
