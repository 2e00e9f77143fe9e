// Anomaly mode: while an AnomalyModeGuard lives, the output of every op's forward and the gradients of
// every backward node are checked for NaN and Inf, and the first one raises RuntimeError naming the op,
// the shapes, the phase (forward or backward) and the call site that created the op (debug/call_site.h).
// Process-wide and nestable. Each check copies the values to the host, so this is for debugging only.
#pragma once

namespace needle {

class AnomalyModeGuard {
 public:
  AnomalyModeGuard();
  ~AnomalyModeGuard();
  AnomalyModeGuard(const AnomalyModeGuard&) = delete;
  AnomalyModeGuard& operator=(const AnomalyModeGuard&) = delete;
  AnomalyModeGuard(AnomalyModeGuard&&) = delete;
  AnomalyModeGuard& operator=(AnomalyModeGuard&&) = delete;
};

bool anomaly_mode_enabled();

namespace debug {
// The guard's two halves, for bindings whose scopes are not C++ scopes (calls must pair).
void enable_anomaly_mode();
void disable_anomaly_mode();
}  // namespace debug

}  // namespace needle
