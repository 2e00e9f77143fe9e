// Needle's thread pool: how many threads the kernels use, and parallel_for to split a loop over them.
//
// The pool belongs to the process. Its size comes from set_num_threads(n), or else from the environment
// variable NEEDLE_NUM_THREADS, or else from std::thread::hardware_concurrency(). A parallel_for splits its
// range into at most get_num_threads() contiguous chunks whose boundaries depend only on the range, the
// grain and the thread count, so a kernel whose chunks write disjoint outputs gives the same result on
// every run with the same thread count. The calling thread always takes part and never waits for a busy
// pool: chunks no worker has claimed are run by the caller itself.
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>

namespace needle {

// Sets the number of threads kernels use (the calling thread included); n must be at least 1.
// Throws ValueError otherwise.
void set_num_threads(int n);

// The number of threads kernels use: set_num_threads's value, else NEEDLE_NUM_THREADS, else the
// number of hardware threads.
[[nodiscard]] int get_num_threads();

// True while the calling thread runs a chunk of some parallel_for (a nested parallel_for then runs
// inline).
[[nodiscard]] bool in_parallel_region();

// A non-owning reference to a callable taking (chunk_begin, chunk_end): a pointer to the callable and a
// function that knows its type, so parallel_for can be an ordinary function compiled once in the library
// while callers pass lambdas that capture whatever they need. Nothing is allocated (unlike std::function),
// and each chunk costs one indirect call, which the chunk's own loop amortizes. It must not outlive the
// callable it refers to: parallel_for returns before a temporary passed to it is destroyed.
class ChunkFnRef {
 public:
  // Implicit, so a lambda converts at the call site; the constraint keeps copies on the copy constructor.
  template <typename Fn, typename = std::enable_if_t<!std::is_same_v<std::remove_cvref_t<Fn>, ChunkFnRef> &&
                                                     std::is_invocable_v<Fn&, std::int64_t, std::int64_t>>>
  ChunkFnRef(Fn&& fn) noexcept
      : callable_(const_cast<void*>(static_cast<const void*>(std::addressof(fn)))),
        call_([](void* callable, std::int64_t b, std::int64_t e) {
          (*static_cast<std::remove_reference_t<Fn>*>(callable))(b, e);
        }) {}

  void operator()(std::int64_t begin, std::int64_t end) const { call_(callable_, begin, end); }

 private:
  void* callable_;
  void (*call_)(void* callable, std::int64_t begin, std::int64_t end);
};

// Calls fn(chunk_begin, chunk_end) over contiguous chunks that cover [begin, end) exactly once. The range
// is cut into min(get_num_threads(), ceil((end - begin) / grain)) chunks of nearly equal size; with one
// chunk, or when called from inside another parallel_for's chunk, fn(begin, end) runs on the calling
// thread. An exception thrown by a chunk is rethrown here after every started chunk has finished (chunks
// not yet started are then skipped). fn must be safe to call concurrently on disjoint ranges.
void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, ChunkFnRef fn);

}  // namespace needle
