// The thread pool behind parallel_for.
//
// A parallel_for publishes one Job: its range cut into fixed chunks, and an atomic counter from which
// every participating thread claims the next chunk. The caller claims chunks too, so the job finishes even
// when every worker is busy elsewhere (another thread's parallel_for) or missing: progress never depends
// on the pool. Workers that finish spin for up to a millisecond before sleeping: a training step issues
// parallel_for calls with tens to hundreds of microseconds of framework work in between, and waking a
// sleeping worker (a futex wake-up, and on a VM the wake-up of an idle vCPU) costs more than splitting a
// small kernel saves.
#include "needle/core/threads.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "needle/core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace needle {

namespace {

// More threads than this is a typo, not a machine.
constexpr int kMaxThreads = 1024;

// How long an idle worker, or a caller waiting for workers, polls before blocking. Measured on the
// 2-vCPU VM of BENCHMARKS.md: resnet9_step at 2 threads took 6.2 ms with 50 us and 5.4 ms with 1 ms.
constexpr std::chrono::microseconds kSpin{1000};

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

int default_num_threads() {
  if (const char* env = std::getenv("NEEDLE_NUM_THREADS"); env != nullptr) {
    char* end = nullptr;
    const long value = std::strtol(env, &end, 10);
    // An unusable value is ignored rather than fatal: the variable is read lazily, far from its cause.
    if (end != env && *end == '\0' && value >= 1 && value <= kMaxThreads) return static_cast<int>(value);
  }
  const unsigned hardware = std::thread::hardware_concurrency();
  return hardware == 0 ? 1 : static_cast<int>(std::min<unsigned>(hardware, kMaxThreads));
}

std::atomic<int>& num_threads_setting() {
  static std::atomic<int> setting{default_num_threads()};
  return setting;
}

thread_local bool t_in_region = false;

// Marks the current thread as running chunks for the lifetime of the guard.
class RegionGuard {
 public:
  RegionGuard() : previous_(t_in_region) { t_in_region = true; }
  ~RegionGuard() { t_in_region = previous_; }
  RegionGuard(const RegionGuard&) = delete;
  RegionGuard& operator=(const RegionGuard&) = delete;

 private:
  bool previous_;
};

struct Job {
  explicit Job(ChunkFnRef chunk_fn) : fn(chunk_fn) {}

  ChunkFnRef fn;
  std::int64_t begin = 0;
  std::int64_t chunks = 0;
  std::int64_t base = 0;   // every chunk has `base` indices ...
  std::int64_t extra = 0;  // ... and the first `extra` chunks one more

  std::atomic<std::int64_t> next{0};
  std::atomic<bool> failed{false};
  std::atomic<int> attached{0};  // workers inside run_chunks (changed under the pool's mutex)
  int helpers_wanted = 0;        // guarded by the pool's mutex
  std::mutex error_mutex;
  std::exception_ptr error;

  void run_chunks() {
    for (;;) {
      const std::int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= chunks) return;
      if (failed.load(std::memory_order_relaxed)) continue;  // claim and skip the rest after an error
      const std::int64_t b = begin + i * base + std::min(i, extra);
      const std::int64_t e = b + base + (i < extra ? 1 : 0);
      try {
        fn(b, e);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed.store(true, std::memory_order_relaxed);
      }
    }
  }
};

class Pool {
 public:
  Pool() = default;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  ~Pool() {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (std::thread& worker : workers_) worker.join();
  }

  // Runs every chunk of `job` with up to `helpers` workers besides the calling thread.
  void run(Job& job, int helpers) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      start_workers(helpers);
      job.helpers_wanted = helpers;
      queue_.push_back(&job);
      pending_.fetch_add(1, std::memory_order_release);
    }
    for (int i = 0; i < helpers; ++i) work_cv_.notify_one();
    {
      const RegionGuard region;
      job.run_chunks();
    }
    // Every chunk is claimed: withdraw the job so no worker attaches any more, then wait for those
    // still running a chunk of it.
    std::unique_lock<std::mutex> lock(mutex_);
    withdraw(job);
    if (job.attached.load(std::memory_order_acquire) == 0) return;
    lock.unlock();
    const auto deadline = std::chrono::steady_clock::now() + kSpin;
    while (job.attached.load(std::memory_order_acquire) != 0 && std::chrono::steady_clock::now() < deadline) {
      cpu_relax();
    }
    lock.lock();
    done_cv_.wait(lock, [&] { return job.attached.load(std::memory_order_acquire) == 0; });
  }

 private:
  void start_workers(int count) {  // under mutex_
    while (static_cast<int>(workers_.size()) < count) {
      try {
        workers_.emplace_back([this] { work(); });
      } catch (const std::system_error&) {
        return;  // fewer workers: the callers run the chunks themselves
      }
    }
  }

  void withdraw(Job& job) {  // under mutex_
    const auto it = std::find(queue_.begin(), queue_.end(), &job);
    if (it != queue_.end()) {
      queue_.erase(it);
      pending_.fetch_sub(1, std::memory_order_relaxed);
    }
  }

  void work() {
    t_in_region = true;  // a parallel_for inside a chunk runs inline
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (queue_.empty() && !stop_) {
        lock.unlock();
        const auto deadline = std::chrono::steady_clock::now() + kSpin;
        while (pending_.load(std::memory_order_acquire) == 0 && std::chrono::steady_clock::now() < deadline) {
          cpu_relax();
        }
        lock.lock();
        work_cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      }
      if (stop_) return;
      Job* job = queue_.front();
      job->attached.fetch_add(1, std::memory_order_relaxed);
      if (--job->helpers_wanted == 0) withdraw(*job);
      lock.unlock();
      job->run_chunks();
      lock.lock();
      // The job may be destroyed as soon as its owner sees zero: touch nothing of it afterwards.
      if (job->attached.fetch_sub(1, std::memory_order_acq_rel) == 1) done_cv_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<Job*> queue_;
  std::atomic<int> pending_{0};  // queue_.size(), readable without the mutex
  std::vector<std::thread> workers_;
  bool stop_ = false;
};

// The process's pool, created on first use. A child process created by fork() has none of its parent's
// workers (and maybe a mutex some worker held mid-fork), so it starts over with a pool of its own; the
// parent's is left untouched.
std::atomic<Pool*> g_pool{nullptr};
std::vector<Pool*> g_abandoned_pools;  // kept reachable: their threads exist only in the parent

#if defined(__unix__) || defined(__APPLE__)
void start_over_after_fork() {
  g_abandoned_pools.push_back(g_pool.load(std::memory_order_relaxed));
  g_pool.store(nullptr, std::memory_order_relaxed);
}
#endif

Pool& pool() {
  Pool* current = g_pool.load(std::memory_order_acquire);
  if (current != nullptr) return *current;
  static std::mutex creation;
  const std::lock_guard<std::mutex> lock(creation);
  current = g_pool.load(std::memory_order_acquire);
  if (current == nullptr) {
#if defined(__unix__) || defined(__APPLE__)
    static const bool registered = [] { return pthread_atfork(nullptr, nullptr, &start_over_after_fork) == 0; }();
    static_cast<void>(registered);
#endif
    // Never destroyed: joining workers during static destruction would race with other threads still
    // using kernels at exit, and the process's end stops the workers anyway.
    current = new Pool();
    g_pool.store(current, std::memory_order_release);
  }
  return *current;
}

}  // namespace

void set_num_threads(int n) {
  NEEDLE_CHECK(n >= 1 && n <= kMaxThreads, ValueError,
               "set_num_threads: expected a positive number of threads, at most ", kMaxThreads, ", got ", n);
  num_threads_setting().store(n, std::memory_order_relaxed);
}

int get_num_threads() { return num_threads_setting().load(std::memory_order_relaxed); }

bool in_parallel_region() { return t_in_region; }

void parallel_for(std::int64_t begin, std::int64_t end, std::int64_t grain, ChunkFnRef fn) {
  if (end <= begin) return;
  const std::int64_t count = end - begin;
  grain = std::max<std::int64_t>(grain, 1);
  const std::int64_t pieces = count / grain + (count % grain != 0 ? 1 : 0);
  const std::int64_t chunks = std::min<std::int64_t>(get_num_threads(), pieces);
  if (chunks <= 1 || t_in_region) {
    fn(begin, end);
    return;
  }
  Job job(fn);
  job.begin = begin;
  job.chunks = chunks;
  job.base = count / chunks;
  job.extra = count % chunks;
  pool().run(job, static_cast<int>(chunks - 1));
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace needle
