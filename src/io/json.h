// A small JSON reader and string escaper: exactly what the safetensors header needs, nothing more.
// Numbers are parsed as integers only (a header holds shapes and offsets); anything else is an error.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace needle::io::json {

struct Member;

struct Value {
  enum class Kind : std::uint8_t { Null, Bool, Integer, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  std::uint64_t integer = 0;  // non-negative integers only: the header never needs others
  std::string string;
  std::vector<Value> array;
  std::vector<Member> object;  // in file order; keys are unique

  [[nodiscard]] const Value* find(std::string_view key) const;
};

// An object's entry. A struct of its own, because std::pair may not hold the incomplete Value.
struct Member {
  std::string key;
  Value value;
};

// Parses `text` as one JSON value followed only by whitespace. Throws ParseError with a position and
// reason. Nesting deeper than 16 levels is refused (the header needs 3), so no input can exhaust the stack.
Value parse(std::string_view text);

class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A name for a value's kind in messages ("an object", "a string", ...).
const char* kind_name(Value::Kind kind);

}  // namespace needle::io::json
