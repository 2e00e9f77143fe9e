#include "dist/comm_thread.h"

#include <utility>

#include "needle/core/error.h"

namespace needle::dist::detail {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

QueuedWork::QueuedWork(std::string description, int rank, std::function<void()> run, std::function<void()> finish)
    : description_(std::move(description)), rank_(rank), run_(std::move(run)), finish_(std::move(finish)) {
  timing_.queued_at = now_seconds();
}

bool QueuedWork::completed() const {
  const std::lock_guard lock(mutex_);
  return done_;
}

WorkTiming QueuedWork::timing() const {
  const std::lock_guard lock(mutex_);
  return timing_;
}

void QueuedWork::execute() {
  const double started = now_seconds();
  std::exception_ptr error;
  try {
    run_();
  } catch (...) {
    error = std::current_exception();
  }
  run_ = nullptr;  // lets go of the buffers it held
  const std::lock_guard lock(mutex_);
  timing_.started_at = started;
  timing_.finished_at = now_seconds();
  error_ = error;
  done_ = true;
  done_cv_.notify_all();
}

void QueuedWork::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (!done_cv_.wait_for(lock, timeout, [this] { return done_; })) {
    throw RuntimeError(str("needle.distributed: ", description_, " on rank ", rank_, " did not complete within ",
                           static_cast<double>(timeout.count()) / 1000.0,
                           " s: another rank crashed, hangs, or has not reached this collective "
                           "(NEEDLE_DIST_TIMEOUT sets the limit in seconds)"));
  }
  if (error_) std::rethrow_exception(error_);
  if (!finished_) {
    finished_ = true;
    std::function<void()> finish = std::move(finish_);
    lock.unlock();
    if (finish) finish();
  }
}

CommThread::CommThread(int rank) : rank_(rank), thread_([this] { loop(); }) {}

CommThread::~CommThread() { stop(); }

std::shared_ptr<Work> CommThread::submit(std::string description, std::function<void()> run,
                                         std::function<void()> finish) {
  auto work = std::make_shared<QueuedWork>(std::move(description), rank_, std::move(run), std::move(finish));
  {
    const std::lock_guard lock(mutex_);
    NEEDLE_CHECK(!stopping_, RuntimeError, "needle.distributed: the process group was shut down");
    queue_.push_back(work);
  }
  cv_.notify_one();
  return work;
}

void CommThread::stop() {
  {
    const std::lock_guard lock(mutex_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void CommThread::loop() {
  for (;;) {
    std::shared_ptr<QueuedWork> work;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and everything queued has run
      work = std::move(queue_.front());
      queue_.pop_front();
    }
    work->execute();
  }
}

}  // namespace needle::dist::detail
