// The communication thread of a process group and the Work handles of what it runs.
//
// Collectives are queued here and run one after another on one thread, in the order they were called:
// the order every rank must see. MPI is called from that thread only (initialized for serialized use),
// so the caller is free to compute meanwhile. Work that must touch arrays with kernels (writing a
// gathered result back into a strided view) is done by the waiting thread in wait(), never here: kernels
// belong to the caller's thread pool.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "needle/dist/process_group.h"

namespace needle::dist::detail {

double now_seconds();

class QueuedWork final : public Work {
 public:
  QueuedWork(std::string description, int rank, std::function<void()> run, std::function<void()> finish);
  [[nodiscard]] bool completed() const override;
  void wait(std::chrono::milliseconds timeout) override;
  [[nodiscard]] WorkTiming timing() const override;

  // Called on the communication thread.
  void execute();

 private:
  const std::string description_;
  const int rank_;
  std::function<void()> run_;     // on the communication thread
  std::function<void()> finish_;  // once, on the thread that waits
  mutable std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  bool finished_ = false;
  std::exception_ptr error_;
  WorkTiming timing_;
};

class CommThread {
 public:
  explicit CommThread(int rank);
  ~CommThread();
  CommThread(const CommThread&) = delete;
  CommThread& operator=(const CommThread&) = delete;

  // Queues `run` (communication thread) with `finish` (waiter) and returns its handle.
  std::shared_ptr<Work> submit(std::string description, std::function<void()> run, std::function<void()> finish = {});
  // Runs what is queued, then stops the thread. Idempotent.
  void stop();

 private:
  void loop();

  const int rank_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<QueuedWork>> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace needle::dist::detail
