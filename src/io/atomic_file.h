// Replacing a file so that every reader sees either its old content or the whole new content.
//
// The new bytes go to a temporary file of a unique name in the target's folder, created exclusively
// (O_EXCL), so concurrent writers, whether threads or processes, never share one. commit() flushes it to
// disk, renames it over the target (atomic within one file system) and flushes the folder, so that after a
// crash the target holds the old file or the complete new one. With several writers the last rename wins,
// whole. Until commit() succeeds the target is untouched, and a writer that fails or is destroyed early
// removes its temporary file. A process killed mid-write can only leave its temporary file behind.
#pragma once

#include <cstddef>
#include <string>

namespace needle::io {

class AtomicFileWriter {
 public:
  // Creates the temporary file beside `path`. Errors are RuntimeError starting with `who` (the public
  // function, e.g. "save_safetensors") and naming `path`.
  AtomicFileWriter(std::string path, std::string who);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  AtomicFileWriter(AtomicFileWriter&&) = delete;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;

  // Appends `size` bytes to the temporary file.
  void write(const void* data, std::size_t size);
  // Flushes the temporary file, renames it over the target and flushes the folder. Called once.
  void commit();

  [[nodiscard]] const std::string& temporary_path() const { return temporary_; }

 private:
  // Closes and removes the temporary file, then throws RuntimeError with `what` and errno's text.
  [[noreturn]] void fail(const std::string& what, int error_number);
  void discard() noexcept;

  std::string path_;
  std::string who_;
  std::string temporary_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace needle::io
