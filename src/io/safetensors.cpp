// safetensors reading and writing. The reader validates the whole header against the file's size
// before creating any array, so a damaged file raises one clear error and never yields partial data.
#include "needle/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <istream>
#include <limits>
#include <new>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "core/json_quote.h"
#include "io/atomic_file.h"
#include "io/json.h"
#include "io/safetensors_bytes.h"
#include "needle/core/checked_math.h"

namespace needle::io {

// The format is little-endian; the bytes are copied as they are.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

// The reference implementation refuses larger headers; so do we, before allocating one.
constexpr std::uint64_t kMaxHeaderSize = 100'000'000;
constexpr std::size_t kHeaderAlignment = 8;

const char* format_dtype(DType dtype) {
  switch (dtype) {
    case DType::Bool:
      return "BOOL";
    case DType::UInt8:
      return "U8";
    case DType::Int8:
      return "I8";
    case DType::Int32:
      return "I32";
    case DType::Int64:
      return "I64";
    case DType::Float32:
      return "F32";
    case DType::Float64:
      return "F64";
  }
  return "?";
}

std::optional<DType> parse_dtype(std::string_view name) {
  for (DType dtype : kAllDTypes) {
    if (name == format_dtype(dtype)) return dtype;
  }
  return std::nullopt;
}

// The reader's errors: ValueError naming the file.
[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw ValueError(str("load_safetensors: ", json_quote(path), ": ", what));
}

// True when `bytes` is well-formed UTF-8 (what the JSON header must be).
bool valid_utf8(std::string_view bytes) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[i]);
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if (lead < 0x80) {
      ++i;
      continue;
    }
    if ((lead & 0xE0U) == 0xC0U) {
      extra = 1;
      code = lead & 0x1FU;
    } else if ((lead & 0xF0U) == 0xE0U) {
      extra = 2;
      code = lead & 0x0FU;
    } else if ((lead & 0xF8U) == 0xF0U) {
      extra = 3;
      code = lead & 0x07U;
    } else {
      return false;
    }
    if (i + extra >= bytes.size()) return false;  // the sequence runs past the end
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto cont = static_cast<unsigned char>(bytes[i + k]);
      if ((cont & 0xC0U) != 0x80U) return false;
      code = (code << 6U) | (cont & 0x3FU);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    static constexpr std::uint32_t kMinCode[] = {0, 0x80, 0x800, 0x10000};
    if (code < kMinCode[extra] || code > 0x10FFFF || (code >= 0xD800 && code < 0xE000)) return false;
    i += extra + 1;
  }
  return true;
}

struct Entry {
  std::string name;
  DType dtype = DType::Float32;
  Shape shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

struct Parsed {
  std::vector<Entry> entries;
  Metadata metadata;
  std::string data;  // the bytes after the header
};

Entry parse_entry(const std::string& path, const std::string& name, const json::Value& info) {
  const std::string where = str("tensor ", json_quote(name));
  if (info.kind != json::Value::Kind::Object) {
    fail(path, str(where, ": expected an object, found ", json::kind_name(info.kind)));
  }
  Entry entry;
  entry.name = name;
  for (const json::Member& member : info.object) {
    if (member.key != "dtype" && member.key != "shape" && member.key != "data_offsets") {
      fail(path, str(where, ": unexpected field ", json_quote(member.key)));
    }
  }
  const json::Value* dtype = info.find("dtype");
  const json::Value* shape = info.find("shape");
  const json::Value* offsets = info.find("data_offsets");
  if (dtype == nullptr || shape == nullptr || offsets == nullptr) {
    fail(path, str(where, ": missing field ",
                   dtype == nullptr   ? "\"dtype\""
                   : shape == nullptr ? "\"shape\""
                                      : "\"data_offsets\""));
  }
  if (dtype->kind != json::Value::Kind::String) fail(path, str(where, ": dtype must be a string"));
  const std::optional<DType> parsed = parse_dtype(dtype->string);
  if (!parsed) {
    fail(path,
         str(where, ": unsupported dtype ", json_quote(dtype->string), " (Needle reads F32, F64, I32, I64, BOOL)"));
  }
  entry.dtype = *parsed;
  if (shape->kind != json::Value::Kind::Array) fail(path, str(where, ": shape must be an array"));
  for (const json::Value& dim : shape->array) {
    if (dim.kind != json::Value::Kind::Integer ||
        dim.integer > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      fail(path, str(where, ": shape must hold non-negative integers"));
    }
    entry.shape.push_back(static_cast<std::int64_t>(dim.integer));
  }
  if (offsets->kind != json::Value::Kind::Array || offsets->array.size() != 2 ||
      offsets->array[0].kind != json::Value::Kind::Integer || offsets->array[1].kind != json::Value::Kind::Integer) {
    fail(path, str(where, ": data_offsets must be two non-negative integers [begin, end]"));
  }
  entry.begin = offsets->array[0].integer;
  entry.end = offsets->array[1].integer;
  if (entry.end < entry.begin) {
    fail(path, str(where, ": data_offsets [", entry.begin, ", ", entry.end, "] end before they begin"));
  }
  // The byte count the shape and dtype imply. The counts must fit in int64 even for an empty tensor:
  // shape [0, 2**62, 2**62] holds no bytes, but a sum over its first axis would have 2**124 elements.
  const std::optional<std::int64_t> elements = checked_numel(entry.shape);
  const std::optional<std::int64_t> nbytes =
      elements ? checked_mul(*elements, static_cast<std::int64_t>(itemsize(entry.dtype))) : std::nullopt;
  if (!nbytes) {
    fail(path, str(where, ": shape is too large: ", shape_str(entry.shape), " of dtype ", dtype->string,
                   " has more than ", kMaxSizeText, " elements or bytes"));
  }
  const auto bytes = static_cast<std::uint64_t>(*nbytes);
  if (entry.end - entry.begin != bytes) {
    fail(path, str(where, ": shape ", shape_str(entry.shape), " of dtype ", dtype->string, " needs ", bytes,
                   " bytes but data_offsets [", entry.begin, ", ", entry.end, "] span ", entry.end - entry.begin));
  }
  return entry;
}

// Reads up to `count` bytes into `out`; returns how many it read (fewer at the end of the file).
std::uint64_t read_bytes(std::istream& in, char* out, std::uint64_t count) {
  in.read(out, static_cast<std::streamsize>(count));
  return static_cast<std::uint64_t>(in.gcount());
}

Parsed read_and_validate(const std::string& path, std::istream& in, std::optional<std::uint64_t> file_size);

// The file at `path`, opened and measured, then read_and_validate.
Parsed read_and_validate(const std::string& path) {
  // A directory opens as a stream and fails only at the first read, in the C++ library's words.
  std::error_code error;
  const std::filesystem::file_status status = std::filesystem::status(path, error);
  if (!error && std::filesystem::is_directory(status)) fail(path, "is a directory, not a safetensors file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open the file");
  // The size of a regular file, measured on the opened stream (a save may rename a new file over the path
  // meanwhile: the size must be this file's); a pipe or a device (/dev/zero) has none and is read only as
  // far as the header says.
  std::optional<std::uint64_t> file_size;
  if (!error && std::filesystem::is_regular_file(status)) {
    in.seekg(0, std::ios::end);
    const std::streamoff end = in.tellg();
    in.seekg(0, std::ios::beg);
    if (!in) fail(path, "cannot read the file");
    if (end >= 0) file_size = static_cast<std::uint64_t>(end);
  }
  return read_and_validate(path, in, file_size);
}

// The stream is read piece by piece, each length checked before it is read: the 8-byte header length
// against the limit and the file's size (when it has one), the data section against what the header
// describes. Reading the whole file first would let /dev/zero or a huge file exhaust memory before any
// check ran. `path` names the file in errors.
Parsed read_and_validate(const std::string& path, std::istream& in, std::optional<std::uint64_t> file_size) {
  char length_bytes[8] = {};
  const std::uint64_t length_read = read_bytes(in, length_bytes, sizeof(length_bytes));
  if (in.bad()) fail(path, "read error");
  if (length_read < 8) fail(path, str("the file has ", length_read, " bytes, fewer than the 8-byte header size"));
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, length_bytes, sizeof(header_size));
  if (header_size > kMaxHeaderSize)
    fail(path, str("header size ", header_size, " is larger than the limit ", kMaxHeaderSize));
  if (file_size && header_size > *file_size - 8) {
    fail(path, str("header size ", header_size, " exceeds the ", *file_size - 8, " bytes after it (truncated file?)"));
  }
  std::string header_bytes(header_size, '\0');
  const std::uint64_t header_read = read_bytes(in, header_bytes.data(), header_size);
  if (in.bad()) fail(path, "read error");
  if (header_read < header_size) {
    fail(path, str("header size ", header_size, " exceeds the ", header_read, " bytes after it (truncated file?)"));
  }
  const std::string_view header(header_bytes);
  if (header.empty() || header.front() != '{') fail(path, "the header does not start with '{'");
  if (!valid_utf8(header)) fail(path, "the header is not valid UTF-8");
  json::Value root;
  try {
    root = json::parse(header);
  } catch (const json::ParseError& e) {
    fail(path, str("bad header: ", e.what()));
  }
  if (root.kind != json::Value::Kind::Object) fail(path, "the header is not a JSON object");

  Parsed parsed;
  for (const auto& [name, value] : root.object) {
    if (name == "__metadata__") {
      if (value.kind != json::Value::Kind::Object) fail(path, "__metadata__ must be an object of strings");
      for (const auto& [key, item] : value.object) {
        if (item.kind != json::Value::Kind::String) {
          fail(path,
               str("__metadata__ value of ", json_quote(key), " is ", json::kind_name(item.kind), ", not a string"));
        }
        parsed.metadata.emplace(key, item.string);
      }
      continue;
    }
    parsed.entries.push_back(parse_entry(path, name, value));
  }

  // The tensors must tile the data exactly: sorted by offset, each begins where the previous ended. A file
  // without a size (a pipe) has the data section its tensors describe, and is checked for more below.
  std::uint64_t data_size = 0;
  if (file_size) {
    data_size = *file_size - 8 - header_size;
  } else {
    for (const Entry& e : parsed.entries) data_size = std::max(data_size, e.end);
  }
  std::vector<const Entry*> by_offset;
  by_offset.reserve(parsed.entries.size());
  for (const Entry& e : parsed.entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t expected = 0;
  const Entry* previous = nullptr;
  for (const Entry* e : by_offset) {
    if (e->end > data_size) {
      fail(path, str("tensor ", json_quote(e->name), ": data_offsets [", e->begin, ", ", e->end,
                     "] are out of range of the ", data_size, "-byte data section (truncated file?)"));
    }
    if (e->begin < expected) {
      fail(path, str("tensor ", json_quote(e->name), ": data_offsets [", e->begin, ", ", e->end, "] overlap tensor ",
                     json_quote(previous->name)));
    }
    if (e->begin > expected) {
      fail(path, str("tensor ", json_quote(e->name), ": data_offsets begin at ", e->begin,
                     ", leaving a gap after byte ", expected));
    }
    expected = e->end;
    previous = e;
  }
  if (expected != data_size) {
    fail(path, str("the tensors cover ", expected, " bytes but the data section has ", data_size));
  }
  // The header may announce more data than memory holds (or, from a pipe, more than a string can).
  const auto too_large = [&] {
    return MemoryError(str("load_safetensors: ", json_quote(path), ": the data section of ", byte_size_str(data_size),
                           " cannot be read into memory"));
  };
  try {
    parsed.data.resize(data_size);
  } catch (const std::length_error&) {
    throw too_large();
  } catch (const std::bad_alloc&) {
    throw too_large();
  }
  const std::uint64_t data_read = read_bytes(in, parsed.data.data(), data_size);
  if (in.bad()) fail(path, "read error");
  if (data_read < data_size) {
    fail(path, str("the data section ends after ", data_read, " of its ", data_size, " bytes (truncated file?)"));
  }
  if (in.peek() != std::istream::traits_type::eof()) fail(path, "unexpected bytes after the data section");
  for (const Entry& e : parsed.entries) {
    if (e.dtype != DType::Bool) continue;
    for (std::uint64_t i = e.begin; i < e.end; ++i) {
      const auto byte = static_cast<unsigned char>(parsed.data[i]);
      if (byte > 1)
        fail(path, str("tensor ", json_quote(e.name), ": BOOL byte ", static_cast<int>(byte), " is neither 0 nor 1"));
    }
  }
  return parsed;
}

}  // namespace

void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      first = false;
      header += json_quote(key) + ':' + json_quote(value);
    }
    header += '}';
  }
  std::uint64_t offset = 0;
  for (const auto& [name, array] : tensors) {
    NEEDLE_CHECK(name != "__metadata__", ValueError, "save_safetensors: ", json_quote(path),
                 ": \"__metadata__\" is reserved and cannot name a tensor");
    const auto bytes = static_cast<std::uint64_t>(array.size()) * static_cast<std::uint64_t>(array.itemsize());
    if (header.size() > 1) header += ',';
    header += json_quote(name) + ":{\"dtype\":\"" + format_dtype(array.dtype()) + "\",\"shape\":[";
    for (std::size_t d = 0; d < array.shape().size(); ++d) {
      if (d > 0) header += ',';
      header += std::to_string(array.shape()[d]);
    }
    header += "],\"data_offsets\":[" + std::to_string(offset) + ',' + std::to_string(offset + bytes) + "]}";
    offset += bytes;
  }
  header += '}';
  // Spaces up to a multiple of 8, as the reference writer pads, so the data that follows is aligned.
  header.append((kHeaderAlignment - header.size() % kHeaderAlignment) % kHeaderAlignment, ' ');

  // Written to a temporary file of its own beside the target and renamed over it: a failed save leaves
  // the old checkpoint in place, and concurrent saves to one path each replace it whole (the last wins).
  AtomicFileWriter out(path, "save_safetensors");
  const std::uint64_t header_size = header.size();
  out.write(&header_size, sizeof(header_size));
  out.write(header.data(), header.size());
  std::vector<char> buffer;
  for (const auto& [name, array] : tensors) {
    buffer.resize(static_cast<std::size_t>(array.size() * array.itemsize()));
    if (!buffer.empty()) array.copy_to_host(buffer.data());
    out.write(buffer.data(), buffer.size());
  }
  out.commit();
}

namespace {

TensorMap to_arrays(const Parsed& parsed, Device device) {
  TensorMap tensors;
  for (const Entry& e : parsed.entries) {
    tensors.emplace(e.name, NDArray::from_host(parsed.data.data() + e.begin, e.shape, e.dtype, device));
  }
  return tensors;
}

}  // namespace

TensorMap load_safetensors(const std::string& path, Device device) {
  return to_arrays(read_and_validate(path), device);
}

Metadata load_safetensors_metadata(const std::string& path) { return read_and_validate(path).metadata; }

TensorMap load_safetensors_bytes(const std::string& bytes, const std::string& name, Device device) {
  std::istringstream in(bytes);
  return to_arrays(read_and_validate(name, in, bytes.size()), device);
}

}  // namespace needle::io
