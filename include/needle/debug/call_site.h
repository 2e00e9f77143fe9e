// Call sites: where the user's code created a tensor or an op, for traces, anomaly reports and memory
// summaries. They are captured only while a debugging tool is on, so they cost nothing otherwise.
//
// From Python, the `needle` package installs a hook that names the innermost Python frame outside the
// package ("train.py:42"). C++ has no portable way to know its caller without touching every op function,
// so C++ code names its own sites: NEEDLE_CALL_SITE() marks the rest of the enclosing scope with the
// file and line of the macro (the innermost mark wins), e.g.
//
//   { NEEDLE_CALL_SITE(); loss = ops::log(p); }   // ops created here report "model.cpp:17"
#pragma once

#include <cstdint>
#include <string>

namespace needle::debug {

// Marks the ops and tensors created on this thread while it lives with `file`:`line` (NEEDLE_CALL_SITE()
// passes its own). Scopes nest; the innermost one wins.
class CallSiteScope {
 public:
  CallSiteScope(const char* file, int line);
  ~CallSiteScope();
  CallSiteScope(const CallSiteScope&) = delete;
  CallSiteScope& operator=(const CallSiteScope&) = delete;
  CallSiteScope(CallSiteScope&&) = delete;
  CallSiteScope& operator=(CallSiteScope&&) = delete;

  [[nodiscard]] const char* file() const { return file_; }
  [[nodiscard]] int line() const { return line_; }

 private:
  const char* file_;
  int line_;
  const CallSiteScope* previous_;
};

// A function that names the current call site ("file.py:12"), or returns "" when it cannot. Called only
// while a debugging tool is on, on whichever thread creates a tensor; it must be thread-safe.
using CallSiteHook = std::string (*)();
void set_call_site_hook(CallSiteHook hook);

// The current call site on this thread: the innermost CallSiteScope, else the hook's answer; 0 = unknown.
std::uint32_t current_call_site();
// "file:line" for an id from current_call_site() ("" for 0).
std::string call_site_name(std::uint32_t id);

}  // namespace needle::debug

#define NEEDLE_DEBUG_CONCAT_INNER(a, b) a##b
#define NEEDLE_DEBUG_CONCAT(a, b) NEEDLE_DEBUG_CONCAT_INNER(a, b)
// Marks the rest of the enclosing scope as the call site of the ops created in it (see above).
#define NEEDLE_CALL_SITE() \
  const ::needle::debug::CallSiteScope NEEDLE_DEBUG_CONCAT(needle_call_site_, __LINE__)(__FILE__, __LINE__)
