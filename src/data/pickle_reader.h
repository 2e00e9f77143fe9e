// A restricted unpickler: exactly the opcodes and globals of the CIFAR-10 "python version" batches
// (a protocol-2 dict holding a numpy uint8 array and lists of ints and strings), nothing else.
//
// It never imports or calls anything: the only globals it accepts are numpy's array reconstruction
// (numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype) and _codecs.encode (how Python 3
// pickles bytes at protocol 2), each interpreted here for the one use those files make of it. Any other
// global, opcode or malformed structure is an error.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace needle::data::pickle {

struct Object;
using ObjectPtr = std::shared_ptr<const Object>;

struct Object {
  enum class Kind : std::uint8_t { None, Bool, Int, Float, Bytes, Str, Tuple, List, Dict, Global, Array, DType };
  Kind kind = Kind::None;
  std::int64_t integer = 0;         // Int, Bool
  double real = 0.0;                // Float
  std::string text;                 // Bytes (Python 2 str too), Str, Global ("module.name"), DType ("u1"), Array data
  std::vector<ObjectPtr> items;     // Tuple, List; Dict as key, value, key, ...
  std::vector<std::int64_t> shape;  // Array
  bool filled = false;              // Array: set by BUILD
};

// Parses `bytes` (the content of `path`, used in messages) and returns the pickled object. Throws
// ValueError naming the file and the byte offset for anything outside the supported subset.
ObjectPtr load(std::string_view bytes, const std::string& path);

// dict[key] where the key is a str or bytes equal to `key`; null when absent.
ObjectPtr dict_get(const Object& dict, std::string_view key);

}  // namespace needle::data::pickle
