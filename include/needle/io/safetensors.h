// The safetensors format (https://github.com/huggingface/safetensors): the checkpoint format of Needle.
//
// Layout: an 8-byte little-endian unsigned header size N; N bytes of UTF-8 JSON,
//   {"__metadata__": {"key": "value", ...}, "name": {"dtype": "F32", "shape": [2, 3],
//    "data_offsets": [begin, end]}, ...}
// padded with spaces so the data starts at a multiple of 8; then the tensors' raw little-endian bytes,
// each at [begin, end) relative to the start of the data, packed without gaps. Needle's dtypes map to
// F32, F64, I32, I64 and BOOL (one byte, 0 or 1).
#pragma once

#include <map>
#include <string>

#include "needle/core/ndarray.h"

namespace needle::io {

using TensorMap = std::map<std::string, NDArray>;
using Metadata = std::map<std::string, std::string>;

// Writes `tensors` (in name order, like the reference writer for equal dtypes) and `metadata` (omitted
// when empty) to `path`. Arrays on any device and with any strides are written as contiguous host
// bytes. The file is replaced atomically: the bytes go to a uniquely named temporary file in the same
// folder, which is flushed to disk and renamed over `path`, so readers (and a crash at any moment) see
// the old file or the whole new one, and concurrent saves to one path leave exactly one of them.
// ValueError for a tensor named "__metadata__"; RuntimeError naming the path when it cannot be
// written, after which the old file is unchanged and no temporary file remains.
void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});

// Reads every tensor of `path` onto `device`. Everything is validated before a single tensor is
// created: a missing, truncated or malformed file (header size, JSON, unknown dtype, shape and byte
// count disagreeing, offsets out of range, overlapping or leaving gaps, BOOL bytes other than 0/1)
// raises ValueError whose message names the file and what is wrong.
TensorMap load_safetensors(const std::string& path, Device device = default_device());

// The "__metadata__" of `path` (empty when absent), validated like load_safetensors validates.
Metadata load_safetensors_metadata(const std::string& path);

}  // namespace needle::io
