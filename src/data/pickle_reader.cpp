// The restricted unpickler: a stack machine over the CIFAR batches' opcodes, with every length and
// stack access checked so a damaged or hostile file can only produce an error.
#include "data/pickle_reader.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <new>
#include <utility>

#include "needle/core/error.h"
#include "needle/core/shape.h"

namespace needle::data::pickle {

namespace {

using Kind = Object::Kind;

std::atomic<std::size_t> live_objects{0};

// Freeing without recursion. An object owns its items, so if each ~Object freed them itself, freeing a
// structure n deep would nest n destructors. Instead the first ~Object on a thread to free items becomes
// the freer: it parks them on a list of its own and drops them one at a time, and an object that dies
// meanwhile on this thread parks its items on that list and returns. (kMaxNesting bounds the depth of
// what a load returns anyway; freeing does not rely on it.) A raw pointer to the freer's local list, so
// that it is trivially destructible.
thread_local std::vector<ObjectPtr>* freeing = nullptr;

void park_items(std::vector<ObjectPtr>& items, std::vector<ObjectPtr>& list) noexcept {
  try {
    for (ObjectPtr& item : items) list.push_back(std::move(item));
  } catch (const std::bad_alloc&) {
    items.clear();  // no memory for the list: free the rest here, recursing at most kMaxNesting deep
  }
  items.clear();
}

}  // namespace

Object::Object() { live_objects.fetch_add(1, std::memory_order_relaxed); }

Object::~Object() {
  live_objects.fetch_sub(1, std::memory_order_relaxed);
  if (items.empty()) return;
  if (freeing != nullptr) {
    park_items(items, *freeing);  // the freer further down this thread's stack drops them
    return;
  }
  std::vector<ObjectPtr> list;
  park_items(items, list);
  freeing = &list;
  while (!list.empty()) {
    ObjectPtr item = std::move(list.back());
    list.pop_back();
    item.reset();  // may destroy an object, which parks its own items on `list`
  }
  freeing = nullptr;
}

std::size_t Object::live_count() { return live_objects.load(std::memory_order_relaxed); }

namespace {

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Tuple:
      return "tuple";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    default:
      return "object";
  }
}

// The one way to change an object once it has been shared (every object is handed around as const).
Object& writable(const ObjectPtr& o) {
  return const_cast<Object&>(*o);  // NOLINT(cppcoreguidelines-pro-type-const-cast)
}

ObjectPtr make(Kind kind) {
  auto o = std::make_shared<Object>();
  o->kind = kind;
  if (kind == Kind::Tuple || kind == Kind::List || kind == Kind::Dict) o->nesting = 1;
  return o;
}

ObjectPtr make_int(std::int64_t v, Kind kind = Kind::Int) {
  auto o = std::make_shared<Object>();
  o->kind = kind;
  o->integer = v;
  return o;
}

ObjectPtr make_text(Kind kind, std::string text) {
  auto o = std::make_shared<Object>();
  o->kind = kind;
  o->text = std::move(text);
  return o;
}

class Machine {
 public:
  Machine(std::string_view bytes, const std::string& path) : bytes_(bytes), path_(path) {}

  ObjectPtr run() {
    while (true) {
      const std::size_t at = pos_;
      const auto op = static_cast<unsigned char>(take(1)[0]);
      op_at_ = at;
      switch (op) {
        case 0x80:  // PROTO
          if (static_cast<unsigned char>(take(1)[0]) > 2) fail("only pickle protocols up to 2 are supported");
          break;
        case '.':  // STOP
          if (stack_.size() != 1 || !marks_.empty()) fail("STOP with a malformed stack");
          return stack_.back();
        case '(':  // MARK
          marks_.push_back(stack_.size());
          break;
        case '}':  // EMPTY_DICT
          stack_.push_back(make(Kind::Dict));
          break;
        case ']':  // EMPTY_LIST
          stack_.push_back(make(Kind::List));
          break;
        case ')':  // EMPTY_TUPLE
          stack_.push_back(make(Kind::Tuple));
          break;
        case 'N':  // NONE
          stack_.push_back(make(Kind::None));
          break;
        case 0x88:  // NEWTRUE
        case 0x89:  // NEWFALSE
          stack_.push_back(make_int(op == 0x88 ? 1 : 0, Kind::Bool));
          break;
        case 'K':  // BININT1
          stack_.push_back(make_int(little_endian(1)));
          break;
        case 'M':  // BININT2
          stack_.push_back(make_int(little_endian(2)));
          break;
        case 'J':  // BININT (signed 32-bit)
          stack_.push_back(make_int(static_cast<std::int32_t>(static_cast<std::uint32_t>(little_endian(4)))));
          break;
        case 0x8a:  // LONG1: a little-endian two's-complement integer of n bytes
          stack_.push_back(make_int(long1()));
          break;
        case 'G': {  // BINFLOAT (big-endian double)
          const std::string_view raw = take(8);
          std::uint64_t bits = 0;
          for (const char c : raw) bits = (bits << 8U) | static_cast<unsigned char>(c);
          auto o = std::make_shared<Object>();
          o->kind = Kind::Float;
          std::memcpy(&o->real, &bits, sizeof(bits));
          stack_.push_back(o);
          break;
        }
        case 'U':  // SHORT_BINSTRING (Python 2 str)
        case 'C':  // SHORT_BINBYTES
          stack_.push_back(make_text(Kind::Bytes, std::string(take(static_cast<std::size_t>(little_endian(1))))));
          break;
        case 'T':  // BINSTRING
        case 'B':  // BINBYTES
          stack_.push_back(make_text(Kind::Bytes, std::string(take(static_cast<std::size_t>(little_endian(4))))));
          break;
        case 'X':  // BINUNICODE (UTF-8)
          stack_.push_back(make_text(Kind::Str, std::string(take(static_cast<std::size_t>(little_endian(4))))));
          break;
        case 0x8c:  // SHORT_BINUNICODE
          stack_.push_back(make_text(Kind::Str, std::string(take(static_cast<std::size_t>(little_endian(1))))));
          break;
        case 'q':  // BINPUT
          memo_[static_cast<std::uint32_t>(little_endian(1))] = top();
          break;
        case 'r':  // LONG_BINPUT
          memo_[static_cast<std::uint32_t>(little_endian(4))] = top();
          break;
        case 'h':    // BINGET
        case 'j': {  // LONG_BINGET
          const auto key = static_cast<std::uint32_t>(little_endian(op == 'h' ? 1 : 4));
          const auto found = memo_.find(key);
          if (found == memo_.end()) fail(str("memo key ", key, " was never stored"));
          stack_.push_back(found->second);
          break;
        }
        case 0x85:  // TUPLE1
        case 0x86:  // TUPLE2
        case 0x87:  // TUPLE3
          push_tuple(static_cast<std::size_t>(op - 0x84));
          break;
        case 't':  // TUPLE
          push_tuple(stack_.size() - pop_mark());
          break;
        case 'a':  // APPEND
          fill_top(Kind::List, "APPEND", {pop()});
          break;
        case 'e':  // APPENDS
          fill_top(Kind::List, "APPENDS", pop_to_mark());
          break;
        case 's': {  // SETITEM
          ObjectPtr value = pop();
          ObjectPtr key = pop();
          fill_top(Kind::Dict, "SETITEM", {std::move(key), std::move(value)});
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<ObjectPtr> items = pop_to_mark();
          if (items.size() % 2 != 0) fail("SETITEMS with an odd number of items");
          fill_top(Kind::Dict, "SETITEMS", std::move(items));
          break;
        }
        case 'c':  // GLOBAL "module\nname\n"
          stack_.push_back(global());
          break;
        case 'R':  // REDUCE
          reduce();
          break;
        case 'b':  // BUILD
          build();
          break;
        default:
          fail(str("unsupported pickle opcode 0x", std::hex, static_cast<int>(op), std::dec));
      }
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ValueError(str("CIFAR10Dataset: '", path_, "': ", what, " (at byte ", op_at_, ")"));
  }

  std::string_view take(std::size_t n) {
    if (n > bytes_.size() - pos_) fail("the pickle ends early (truncated file?)");
    const std::string_view out = bytes_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  std::uint64_t little_endian(std::size_t n) {
    const std::string_view raw = take(n);
    std::uint64_t v = 0;
    for (std::size_t i = n; i-- > 0;) v = (v << 8U) | static_cast<unsigned char>(raw[i]);
    return v;
  }

  std::int64_t long1() {
    const auto n = static_cast<std::size_t>(little_endian(1));
    if (n > 8) fail("integer too large");
    if (n == 0) return 0;
    std::uint64_t v = little_endian(n);
    if (n < 8 && (v >> (8 * n - 1)) != 0) v |= ~std::uint64_t{0} << (8 * n);  // sign-extend
    return static_cast<std::int64_t>(v);
  }

  ObjectPtr pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
    ObjectPtr o = std::move(stack_.back());
    stack_.pop_back();
    return o;
  }

  const ObjectPtr& top() const {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }

  // Records that `container` holds `item`: every containment of the loaded structure is made here, under
  // two rules. An object that is inside another may no longer be filled (fill_top), and none may hold
  // itself; so no object can ever come to contain itself, however indirectly, and the shared pointers
  // never form a cycle, which would never be freed. And nesting is bounded: since a contained object
  // never changes, each object's depth is final once it is contained and is checked here as it grows.
  void adopt(Object& container, const ObjectPtr& item) {
    if (item.get() == &container) {
      fail(str("a ", kind_name(container.kind), " that contains itself (recursive structures are not supported)"));
    }
    if (item->nesting + 1 > kMaxNesting) fail(str("pickle nesting deeper than ", kMaxNesting, " levels"));
    writable(item).contained = true;
    container.nesting = std::max(container.nesting, item->nesting + 1);
  }

  // Appends `items` to the list or dict on top of the stack. Pickle fills each list and dict right after
  // creating it, before putting it into anything else; filling one that is already inside another
  // object is how a recursive structure would be built, and is refused.
  void fill_top(Kind kind, const char* opcode, std::vector<ObjectPtr> items) {
    const ObjectPtr& top_object = top();
    if (top_object->kind != kind) fail(str(opcode, " on an object that is not a ", kind_name(kind)));
    if (top_object->contained) {
      fail(str(opcode, " on a ", kind_name(kind),
               " already inside another object (recursive structures are not supported)"));
    }
    Object& container = writable(top_object);
    for (const ObjectPtr& item : items) adopt(container, item);
    container.items.insert(container.items.end(), std::make_move_iterator(items.begin()),
                           std::make_move_iterator(items.end()));
  }

  std::size_t pop_mark() {
    if (marks_.empty()) fail("MARK expected");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    return mark;
  }

  std::vector<ObjectPtr> pop_to_mark() {
    const std::size_t mark = pop_mark();
    std::vector<ObjectPtr> items(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(mark)),
                                 std::make_move_iterator(stack_.end()));
    stack_.resize(mark);
    return items;
  }

  void push_tuple(std::size_t n) {
    const std::size_t floor = marks_.empty() ? 0 : marks_.back();
    if (n > stack_.size() - floor) fail("stack underflow");
    auto tuple = make(Kind::Tuple);
    Object& t = writable(tuple);
    t.items.assign(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
    stack_.resize(stack_.size() - n);
    for (const ObjectPtr& item : t.items) adopt(t, item);
    stack_.push_back(std::move(tuple));
  }

  std::string line() {
    const std::size_t end = bytes_.find('\n', pos_);
    if (end == std::string_view::npos || end - pos_ > 256) fail("malformed GLOBAL");
    std::string out(bytes_.substr(pos_, end - pos_));
    pos_ = end + 1;
    return out;
  }

  ObjectPtr global() {
    const std::string module = line();
    const std::string name = line();
    const std::string full = module + "." + name;
    // numpy 2 renamed numpy.core to numpy._core; pickles name either.
    if (full != "numpy.core.multiarray._reconstruct" && full != "numpy._core.multiarray._reconstruct" &&
        full != "numpy.ndarray" && full != "numpy.dtype" && full != "_codecs.encode") {
      fail(str("refusing to load the global '", full,
               "': only numpy's array reconstruction may appear in a CIFAR-10 batch"));
    }
    return make_text(Kind::Global, full);
  }

  static bool is_global(const ObjectPtr& o, std::string_view name) {
    return o->kind == Kind::Global && (o->text == name || (name == "numpy.core.multiarray._reconstruct" &&
                                                           o->text == "numpy._core.multiarray._reconstruct"));
  }

  static std::vector<std::int64_t> int_tuple(const ObjectPtr& o, bool& ok) {
    std::vector<std::int64_t> out;
    ok = o->kind == Kind::Tuple;
    if (!ok) return out;
    for (const ObjectPtr& item : o->items) {
      if (item->kind != Kind::Int || item->integer < 0) {
        ok = false;
        return out;
      }
      out.push_back(item->integer);
    }
    return out;
  }

  void reduce() {
    const ObjectPtr args = pop();
    const ObjectPtr callable = pop();
    if (args->kind != Kind::Tuple) fail("REDUCE arguments are not a tuple");
    const std::vector<ObjectPtr>& a = args->items;
    if (is_global(callable, "numpy.core.multiarray._reconstruct")) {
      // _reconstruct(numpy.ndarray, (0,), b'b'): an empty array that BUILD fills.
      if (a.size() != 3 || !is_global(a[0], "numpy.ndarray")) fail("unexpected arguments to _reconstruct");
      stack_.push_back(make(Kind::Array));
    } else if (is_global(callable, "numpy.dtype")) {
      // numpy.dtype('u1', False, True)
      if (a.empty() || a[0]->kind == Kind::None || (a[0]->kind != Kind::Str && a[0]->kind != Kind::Bytes)) {
        fail("unexpected arguments to numpy.dtype");
      }
      stack_.push_back(make_text(Kind::DType, a[0]->text));
    } else if (is_global(callable, "_codecs.encode")) {
      // _codecs.encode(text, 'latin1'): how protocol 2 spells bytes in Python 3. Each character of the
      // UTF-8 text is one byte value (U+0000..U+00FF).
      if (a.size() != 2 || a[0]->kind != Kind::Str || a[1]->kind != Kind::Str || a[1]->text != "latin1") {
        fail("unexpected arguments to _codecs.encode");
      }
      stack_.push_back(make_text(Kind::Bytes, latin1(a[0]->text)));
    } else {
      fail("REDUCE of something other than numpy's reconstruction functions");
    }
  }

  std::string latin1(const std::string& utf8) const {
    std::string out;
    out.reserve(utf8.size());
    for (std::size_t i = 0; i < utf8.size(); ++i) {
      const auto c = static_cast<unsigned char>(utf8[i]);
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if ((c == 0xC2 || c == 0xC3) && i + 1 < utf8.size()) {
        const auto next = static_cast<unsigned char>(utf8[++i]);
        out += static_cast<char>(((c & 0x03U) << 6U) | (next & 0x3FU));
      } else {
        fail("_codecs.encode of text outside latin-1");
      }
    }
    return out;
  }

  void build() {
    const ObjectPtr state = pop();
    const ObjectPtr& target = top();
    if (target->kind == Kind::DType) {
      // (3, '|', None, None, None, -1, -1, 0): byte order and flags. A uint8 array has no byte order.
      if (state->kind != Kind::Tuple || state->items.size() < 2) fail("unexpected numpy.dtype state");
      return;
    }
    if (target->kind != Kind::Array || target->filled) fail("BUILD on an unsupported object");
    // (version 1, shape, dtype, is_fortran, raw bytes)
    if (state->kind != Kind::Tuple || state->items.size() != 5) fail("unexpected ndarray state");
    const std::vector<ObjectPtr>& s = state->items;
    bool ok = false;
    std::vector<std::int64_t> shape = int_tuple(s[1], ok);
    if (!ok) fail("the array's shape is not a tuple of non-negative integers");
    if (s[2]->kind != Kind::DType || (s[2]->text != "u1" && s[2]->text != "|u1")) {
      fail(str("the array's dtype is '", s[2]->kind == Kind::DType ? s[2]->text : "?", "', expected uint8 ('u1')"));
    }
    if (s[3]->kind != Kind::Bool && s[3]->kind != Kind::Int) fail("unexpected is_fortran flag");
    if (s[3]->integer != 0) fail("Fortran-ordered arrays are not supported");
    if (s[4]->kind != Kind::Bytes) fail("the array's data is not a byte string");
    std::uint64_t count = 1;
    for (std::int64_t d : shape) {
      if (d != 0 && count > (std::uint64_t{1} << 40U) / static_cast<std::uint64_t>(d)) fail("the array is too large");
      count *= static_cast<std::uint64_t>(d);
    }
    if (s[4]->text.size() != count) {
      fail(str("the array of shape ", shape_str(shape), " needs ", count, " bytes but its data has ",
               s[4]->text.size()));
    }
    Object& array = writable(target);
    array.shape = std::move(shape);
    array.text = s[4]->text;
    array.filled = true;
  }

  std::string_view bytes_;
  const std::string& path_;
  std::size_t pos_ = 0;
  std::size_t op_at_ = 0;
  std::vector<ObjectPtr> stack_;
  std::vector<std::size_t> marks_;
  std::map<std::uint32_t, ObjectPtr> memo_;
};

}  // namespace

ObjectPtr load(std::string_view bytes, const std::string& path) { return Machine(bytes, path).run(); }

ObjectPtr dict_get(const Object& dict, std::string_view key) {
  // From the end: a key stored twice keeps its last value, as Python's dict does.
  for (std::size_t i = dict.items.size() / 2; i-- > 0;) {
    const Object& k = *dict.items[2 * i];
    if ((k.kind == Kind::Bytes || k.kind == Kind::Str) && k.text == key) return dict.items[2 * i + 1];
  }
  return nullptr;
}

}  // namespace needle::data::pickle
