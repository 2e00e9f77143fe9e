// Atomic file replacement with POSIX calls: open(O_EXCL), write, fsync, rename, fsync of the folder.
#include "io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <ios>
#include <random>
#include <system_error>
#include <utility>

#include "core/json_quote.h"
#include "needle/core/error.h"

namespace needle::io {

namespace {

// A name no other writer picks: the process id (distinct between live processes), a counter (distinct
// between calls of this process, threads included) and random bits (distinct between machines sharing a
// network folder, and after fork, where the child inherits the counter).
std::string unique_suffix() {
  static std::atomic<std::uint64_t> counter{0};
  std::random_device entropy;
  const std::uint64_t random = (std::uint64_t{entropy()} << 32U) | entropy();
  return str(".", std::hex, ::getpid(), ".", counter.fetch_add(1), ".", random, ".tmp");
}

std::string error_text(int error_number) { return std::generic_category().message(error_number); }

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path, std::string who) : path_(std::move(path)), who_(std::move(who)) {
  // A name already taken (by a file left behind by a killed writer, say) is retried with fresh bits.
  constexpr int kAttempts = 16;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    temporary_ = path_ + unique_suffix();
    // 0666 before the umask, the permissions an ordinary new file gets (mkstemp would give 0600).
    fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) return;
    if (errno != EEXIST && errno != EINTR) break;
  }
  const int error_number = errno;
  const std::string temporary = std::exchange(temporary_, std::string());  // nothing of ours to remove
  fail(str("cannot open for writing (creating ", json_quote(temporary), ")"), error_number);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (!committed_) discard();
}

void AtomicFileWriter::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temporary_.empty()) ::unlink(temporary_.c_str());
  temporary_.clear();
}

void AtomicFileWriter::fail(const std::string& what, int error_number) {
  discard();
  throw RuntimeError(str(who_, ": ", json_quote(path_), ": ", what, ": ", error_text(error_number)));
}

void AtomicFileWriter::write(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd_, bytes, size);
    if (written < 0) {
      if (errno == EINTR) continue;
      fail(str("writing ", json_quote(temporary_), " failed"), errno);
    }
    bytes += written;
    size -= static_cast<std::size_t>(written);
  }
}

void AtomicFileWriter::commit() {
  // The data must be on disk before the rename is: otherwise a crash right after the rename can leave
  // the target naming a file whose blocks were never written.
  if (::fsync(fd_) != 0) fail(str("flushing ", json_quote(temporary_), " to disk failed"), errno);
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) fail(str("closing ", json_quote(temporary_), " failed"), errno);
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    fail("cannot replace it with the written file", errno);
  }
  committed_ = true;
  // The rename lives in the folder's entries; flushing the folder makes it survive a crash. File
  // systems that cannot sync a folder say EINVAL; the file is in place either way, so only other
  // errors are reported.
  const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  const std::string folder = parent.empty() ? std::string(".") : parent.string();
  const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return;  // a folder we may write to but not read: the rename stands, unflushed
  const int synced = ::fsync(dir);
  const int error_number = errno;
  ::close(dir);
  if (synced != 0 && error_number != EINVAL) {
    throw RuntimeError(str(who_, ": ", json_quote(path_), ": flushing the folder ", json_quote(folder),
                           " to disk failed: ", error_text(error_number)));
  }
}

}  // namespace needle::io
