// Whether running ops records the autograd graph (per thread, like PyTorch's grad mode).
#pragma once

namespace needle {

// True unless a NoGradGuard is active on this thread.
bool grad_enabled();
void set_grad_enabled(bool enabled);

// RAII: disables graph recording in its scope, restoring the previous mode on exit (C++'s `with no_grad()`).
class NoGradGuard {
 public:
  NoGradGuard() : previous_(grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace needle
