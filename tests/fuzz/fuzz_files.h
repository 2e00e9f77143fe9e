// Shared by the reader targets of tests/fuzz: a private scratch folder for the files they hand Needle's
// public readers (which take paths), and the one rule of every target: an input may give a result or
// a needle::Error, and anything else (a crash, a sanitizer report, another exception) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace needle::fuzz {

// A folder of this process under the system's temporary directory, made on first use and removed at
// exit. libFuzzer's -jobs and -fork run separate processes, so each has its own.
inline const std::filesystem::path& scratch_folder() {
  static const std::filesystem::path folder = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "needle_fuzz_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();  // the harness cannot run without it
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(scratch_folder(), ignored);
    });
    return std::filesystem::path(pattern);
  }();
  return folder;
}

// Replaces the file `name` of the scratch folder with `size` bytes of `data`; returns its path.
inline std::string write_scratch_file(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::string path = (scratch_folder() / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) std::abort();
  return path;
}

}  // namespace needle::fuzz
