// load_safetensors on bytes already in memory: the same validation and arrays, without a file. Internal,
// for the fuzz harness (tests/fuzz), which would otherwise spend most of its time in file system calls.
#pragma once

#include <string>

#include "needle/io/safetensors.h"

namespace needle::io {

// What load_safetensors(path, device) returns when the file at `path` holds `bytes`; `name` stands for
// the path in error messages.
TensorMap load_safetensors_bytes(const std::string& bytes, const std::string& name, Device device = default_device());

}  // namespace needle::io
