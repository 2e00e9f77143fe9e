// A restricted unpickler: exactly the opcodes and globals of the CIFAR-10 "python version" batches
// (a protocol-2 dict holding a numpy uint8 array and lists of ints and strings), nothing else.
//
// It never imports or calls anything: the only globals it accepts are numpy's array reconstruction
// (numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype) and _codecs.encode (how Python 3
// pickles bytes at protocol 2), each interpreted here for the one use those files make of it. Any other
// global, opcode or malformed structure is an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace needle::data::pickle {

struct Object;
using ObjectPtr = std::shared_ptr<const Object>;

// The deepest nesting of containers (tuples, lists, dicts) a pickle may hold. A CIFAR-10 batch nests
// three deep; the bound keeps a hostile file from building structures millions deep.
inline constexpr std::size_t kMaxNesting = 100;

struct Object {
  enum class Kind : std::uint8_t { None, Bool, Int, Float, Bytes, Str, Tuple, List, Dict, Global, Array, DType };
  Object();
  ~Object();  // frees nested items with a loop, never a recursion as deep as the nesting
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;
  Object(Object&&) = delete;
  Object& operator=(Object&&) = delete;
  // Objects alive right now in this process (tests check that failed loads free everything).
  static std::size_t live_count();

  Kind kind = Kind::None;
  std::int64_t integer = 0;         // Int, Bool
  double real = 0.0;                // Float
  std::string text;                 // Bytes (Python 2 str too), Str, Global ("module.name"), DType ("u1"), Array data
  std::vector<ObjectPtr> items;     // Tuple, List; Dict as key, value, key, ...
  std::vector<std::int64_t> shape;  // Array
  bool filled = false;              // Array: set by BUILD
  // Bookkeeping of the reader: how many containers deep this object is (0 for a scalar, 1 for an empty
  // list), and whether it has been put inside another object (after which it may no longer change).
  std::size_t nesting = 0;
  bool contained = false;
};

// Parses `bytes` (the content of `path`, used in messages) and returns the pickled object. Throws
// ValueError naming the file and the byte offset for anything outside the supported subset, for
// nesting deeper than kMaxNesting, and for recursive structures (an object that contains itself).
ObjectPtr load(std::string_view bytes, const std::string& path);

// dict[key] where the key is a str or bytes equal to `key`; null when absent. When the key appears more
// than once, the last value wins, as when Python builds the dict.
ObjectPtr dict_get(const Object& dict, std::string_view key);

}  // namespace needle::data::pickle
