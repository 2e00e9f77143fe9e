// The restricted pickle reader on hostile structures: nesting far deeper than a CIFAR-10 batch (refused
// with an error, never a stack overflow), objects that contain themselves (refused, and nothing of a
// failed load stays allocated), and a key stored twice in the batch's dict (the last value wins, as in
// Python).
#include <gtest/gtest.h>
#include <needle/data/cifar10.h>
#include <needle/needle.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/pickle_reader.h"
#include "file_test_util.h"

namespace needle {
namespace {

using namespace std::string_literals;
using testing::TempDir;
using testing::write_bytes;

std::string le(std::uint64_t v, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xFFU);
  return out;
}

std::string repeat(const std::string& s, std::size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// Protocol 2 bytes of [[[...]]] nested `depth` lists deep: every list pushed empty, then each appended
// into the one below it.
std::string nested_lists(std::size_t depth) { return "\x80\x02"s + repeat("]", depth) + repeat("a", depth - 1) + "."; }

// A CIFAR-10 batch of one image (every pixel 7): {b'data': uint8 array (1, 3072), <extra entries>,
// b'labels': [label]}, written as numpy and Python 2 pickle it at protocol 2 (no memo).
std::string one_image_batch(int label, const std::string& extra_entries = "") {
  std::string p =
      "\x80\x02}(U\x04"
      "data"s;
  p += "cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01"
       "b\x87R"s;
  p += "(K\x01K\x01M\x00\x0c\x86"s;  // state: version 1, shape (1, 3072)
  p += "cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"s;
  p += "\x89T"s + le(3072, 4) + std::string(3072, '\x07') + "tb"s;
  p += extra_entries;
  return p + "U\x06labels]K"s + le(static_cast<std::uint64_t>(label), 1) + "au."s;
}

std::string load_error(const std::string& bytes, const std::string& path = "hostile.pkl") {
  try {
    (void)data::pickle::load(bytes, path);
  } catch (const ValueError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(PickleReader, NestingDeeperThanTheBoundIsRefusedClearly) {
  // 300,000 nested lists (600 KB): once enough to overflow the stack when freed.
  const std::string deep = nested_lists(300000);
  EXPECT_NE(load_error(deep).find("hostile.pkl': pickle nesting deeper than 100 levels"), std::string::npos)
      << load_error(deep);
  // Tuples nest through the stack too: None wrapped in 300,000 one-element tuples.
  EXPECT_NE(load_error("\x80\x02N"s + repeat("\x85", 300000) + ".").find("nesting deeper than 100"), std::string::npos);
  // Up to the bound is fine.
  const data::pickle::ObjectPtr at_bound = data::pickle::load(nested_lists(data::pickle::kMaxNesting), "ok.pkl");
  EXPECT_EQ(at_bound->nesting, data::pickle::kMaxNesting);
  EXPECT_NE(load_error(nested_lists(data::pickle::kMaxNesting + 1)).find("nesting deeper"), std::string::npos);
}

TEST(PickleReader, DeepNestingInACifarBatchIsAValueErrorNamingTheFile) {
  const TempDir dir;
  const std::string path = dir.file("test_batch");
  write_bytes(path, nested_lists(300000));
  try {
    data::CIFAR10Dataset(dir.path(), false);
    FAIL() << "loaded";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find(path + "': pickle nesting deeper than 100 levels"), std::string::npos)
        << e.what();
  }
}

TEST(PickleReader, ObjectsContainingThemselvesAreRefusedAndFreed) {
  const std::size_t before = data::pickle::Object::live_count();
  const std::vector<std::string> recursive = {
      "\x80\x02]q\x00h\x00"
      "a."s,  // l = []; l.append(l)
      "\x80\x02]q\x00(K\x01h\x00"
      "e."s,                           // l.extend([1, l])
      "\x80\x02}q\x00U\x01kh\x00s."s,  // d = {}; d[b'k'] = d
      "\x80\x02]q\x00]q\x01h\x00"
      "aa."s,  // a = []; b = [a]; a.append(b)
      "\x80\x02]q\x00h\x00\x85q\x01"
      "a."s,  // l = []; l.append((l,))
  };
  for (const std::string& bytes : recursive) {
    const std::string error = load_error(bytes);
    EXPECT_TRUE(error.find("contains itself") != std::string::npos ||
                error.find("already inside another object") != std::string::npos)
        << error;
    EXPECT_EQ(data::pickle::Object::live_count(), before) << error;
  }
}

// A 1 MiB hostile file: a list holding 1 MiB of bytes and itself. Each failed load used to leak the MiB;
// now every object of every attempt is freed (ASan's leak checker sees it too).
TEST(PickleReader, RepeatedFailedLoadsOfARecursiveFileKeepNothing) {
  const std::string bytes = "\x80\x02]q\x00T"s + le(1U << 20U, 4) + std::string(1U << 20U, 'x') +
                            "ah\x00"
                            "a."s;
  const std::size_t before = data::pickle::Object::live_count();
  for (int i = 0; i < 50; ++i) EXPECT_NE(load_error(bytes).find("contains itself"), std::string::npos);
  EXPECT_EQ(data::pickle::Object::live_count(), before);
}

TEST(PickleReader, ADuplicateKeyKeepsItsLastValue) {
  // {b'k': 1, b'k': 2} through SETITEMS, and {b'k': 1} then d[b'k'] = 3 through SETITEM.
  const data::pickle::ObjectPtr d = data::pickle::load("\x80\x02}(U\x01kK\x01U\x01kK\x02u."s, "d.pkl");
  EXPECT_EQ(data::pickle::dict_get(*d, "k")->integer, 2);
  const data::pickle::ObjectPtr e = data::pickle::load("\x80\x02}(U\x01kK\x01uU\x01kK\x03s."s, "e.pkl");
  EXPECT_EQ(data::pickle::dict_get(*e, "k")->integer, 3);
  EXPECT_EQ(data::pickle::dict_get(*e, "absent"), nullptr);
}

TEST(PickleReader, ACifarBatchWithADuplicateKeyUsesTheLastValue) {
  const TempDir dir;
  // b'labels' twice: first [9] (invalid: there is a second), then [4]; the batch's labels are [4].
  write_bytes(dir.file("test_batch"), one_image_batch(4,
                                                      "U\x06labels]K\x09"
                                                      "a"s));
  const data::CIFAR10Dataset batch(dir.path(), false);
  ASSERT_EQ(batch.size(), 1);
  EXPECT_EQ(batch.labels().to_vector<std::int64_t>(), (std::vector<std::int64_t>{4}));
  EXPECT_FLOAT_EQ(batch.get(0)[0].compact().to_vector<float>()[0], 7.0F / 255.0F);
  // A second b'labels' that is wrong wins as well, and is reported.
  write_bytes(dir.file("test_batch"), one_image_batch(12,
                                                      "U\x06labels]K\x04"
                                                      "a"s));
  EXPECT_THROW(data::CIFAR10Dataset(dir.path(), false), ValueError);
}

}  // namespace
}  // namespace needle
