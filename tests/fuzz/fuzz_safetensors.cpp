// libFuzzer target: the safetensors reader on arbitrary bytes, through load_safetensors_bytes (what
// load_safetensors runs on a file's content). Every input must load or raise needle::Error; each loaded
// array is read back whole, so an array whose bytes lie outside the file's data is an ASan report.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors_bytes.h"
#include "needle/core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const needle::io::TensorMap tensors = needle::io::load_safetensors_bytes(bytes, "fuzz.safetensors");
    std::vector<char> host;
    for (const auto& [name, array] : tensors) {
      host.resize(static_cast<std::size_t>(array.size() * array.itemsize()));
      if (!host.empty()) array.copy_to_host(host.data());
    }
  } catch (const needle::Error&) {  // a rejected file: the expected outcome for most inputs
  }
  return 0;
}
