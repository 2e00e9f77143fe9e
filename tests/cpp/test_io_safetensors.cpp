// safetensors: round trips of every dtype (0-d and empty tensors included), the exact bytes of a small
// file written by hand (so the format is right, not only self-consistent), and every kind of damage
// raising a ValueError that names the file.
#include <gtest/gtest.h>
#include <needle/io/safetensors.h>
#include <needle/io/state_dict.h>
#include <needle/needle.h>
#include <needle/nn/layers.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/json_quote.h"
#include "file_test_util.h"
#include "ops_test_util.h"

namespace needle {
namespace {

using testing::read_bytes;
using testing::TempDir;
using testing::write_bytes;

// 8-byte little-endian length, then the header, then the data.
std::string file_bytes(const std::string& header, const std::string& data = "") {
  std::string out;
  std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) {
    out += static_cast<char>(n & 0xFFU);
    n >>= 8U;
  }
  return out + header + data;
}

// Expects loading `bytes` to raise ValueError naming the file and containing `fragment`.
void expect_corrupt(const TempDir& dir, const std::string& bytes, const std::string& fragment) {
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, bytes);
  try {
    (void)io::load_safetensors(path);
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const ValueError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find(fragment), std::string::npos) << message;
  }
}

void expect_same(const NDArray& a, const NDArray& b) {
  EXPECT_EQ(a.shape(), b.shape());
  EXPECT_EQ(a.dtype(), b.dtype());
  EXPECT_EQ(a.astype(DType::Float64).to_vector<double>(), b.astype(DType::Float64).to_vector<double>());
}

// The one JSON string escaper (safetensors headers and messages, trace files): every control character is
// escaped, the named ones by name, so a name with a carriage return cannot break a trace file.
TEST(JsonQuoteTest, EscapesQuotesBackslashesAndEveryControlCharacter) {
  EXPECT_EQ(json_quote("plain"), "\"plain\"");
  EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quote("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(json_quote(std::string("\x01\x1f\0", 3)), "\"\\u0001\\u001f\\u0000\"");
  EXPECT_EQ(json_quote("caf\xc3\xa9"), "\"caf\xc3\xa9\"");  // UTF-8 passes through
}

TEST(SafetensorsTest, RoundTripsEveryDtypeAndShape) {
  const TempDir dir;
  const NDArray f64 = NDArray::from_vector(std::vector<double>{1.5, -2.25, 1e300, 4, 5, 6}, {2, 3});
  io::TensorMap tensors = {
      {"f32", NDArray::from_vector(std::vector<float>{0.1F, -7.0F, 3.5F}, {3})},
      {"f64", f64},
      {"i32", NDArray::from_vector(std::vector<std::int32_t>{-2147483647 - 1, 5}, {2, 1})},
      {"i64", NDArray::from_vector(std::vector<std::int64_t>{9007199254740993LL}, {})},  // 0-d, not a double
      {"bool", NDArray::from_vector(std::vector<bool>{true, false, true, true}, {2, 2})},
      {"empty", NDArray::zeros({0, 4}, DType::Float32)},
      {"transposed", f64.permute({1, 0})},  // not contiguous: written in row-major order of the view
      {"layers.0.weight \"quoted\"\n", NDArray::ones({1}, DType::Float32, ref_device())},
  };
  const std::string path = dir.file("all.safetensors");
  io::save_safetensors(path, tensors, {{"format", "pt"}, {"note", "ünïcode \"and\" escapes\t"}});
  const io::TensorMap loaded = io::load_safetensors(path);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, array] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_EQ(loaded.count(name), 1U);
    expect_same(loaded.at(name), array);
    EXPECT_EQ(loaded.at(name).device(), default_device());
  }
  EXPECT_EQ(loaded.at("i64").to_vector<std::int64_t>()[0], 9007199254740993LL);
  const io::Metadata metadata = io::load_safetensors_metadata(path);
  EXPECT_EQ(metadata.at("note"), "ünïcode \"and\" escapes\t");
  // The data starts 8-byte aligned.
  const std::string bytes = read_bytes(path);
  EXPECT_EQ(bytes[0] % 8, 0);
  // On another device.
  EXPECT_EQ(io::load_safetensors(path, ref_device()).at("f32").device(), ref_device());
}

TEST(SafetensorsTest, EmptyMapAndEmptyMetadata) {
  const TempDir dir;
  const std::string path = dir.file("empty.safetensors");
  io::save_safetensors(path, {});
  // "{}" padded to 8 bytes with spaces; no __metadata__ when there is none.
  EXPECT_EQ(read_bytes(path), file_bytes("{}      "));
  EXPECT_TRUE(io::load_safetensors(path).empty());
  EXPECT_TRUE(io::load_safetensors_metadata(path).empty());
}

// The bytes of a two-tensor file, written out by hand from the format's description.
const std::string kGoldenHeader =
    R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
    R"("b":{"dtype":"I64","shape":[],"data_offsets":[8,16]}})"
    "      ";                                                         // 138 bytes + 6 spaces = 144 = 0x90
const std::string kGoldenData = std::string("\x00\x00\x80\x3f", 4) +  // 1.0f
                                std::string("\x00\x00\x20\xc0", 4) +  // -2.5f
                                std::string("\x07\x00\x00\x00\x00\x00\x00\x00", 8);  // int64 7
const std::string kGolden = std::string("\x90\x00\x00\x00\x00\x00\x00\x00", 8) + kGoldenHeader + kGoldenData;

TEST(SafetensorsTest, WritesTheExactBytesOfTheFormat) {
  const TempDir dir;
  const std::string path = dir.file("golden.safetensors");
  io::save_safetensors(path,
                       {{"b", NDArray::full({}, Scalar(std::int64_t{7}), DType::Int64)},
                        {"a", NDArray::from_vector(std::vector<float>{1.0F, -2.5F}, {2})}},
                       {{"format", "pt"}});
  ASSERT_EQ(kGolden.size(), 168U);
  EXPECT_EQ(read_bytes(path), kGolden);
}

TEST(SafetensorsTest, ReadsAFileWrittenByHand) {
  const TempDir dir;
  const std::string path = dir.file("golden.safetensors");
  write_bytes(path, kGolden);
  const io::TensorMap loaded = io::load_safetensors(path);
  EXPECT_EQ(loaded.at("a").to_vector<float>(), (std::vector<float>{1.0F, -2.5F}));
  EXPECT_EQ(loaded.at("a").shape(), (Shape{2}));
  EXPECT_EQ(loaded.at("b").shape(), Shape{});
  EXPECT_EQ(loaded.at("b").to_vector<std::int64_t>(), (std::vector<std::int64_t>{7}));
  // Tensors may appear in any order in the header and the data (the reference writer orders by dtype).
  write_bytes(path, file_bytes(R"({"x":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},)"
                               R"("y":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
                               std::string("\x01\x00\x00\x00\x02\x00\x00\x00", 8)));
  const io::TensorMap swapped = io::load_safetensors(path);
  EXPECT_EQ(swapped.at("x").to_vector<std::int32_t>()[0], 2);
  EXPECT_EQ(swapped.at("y").to_vector<std::int32_t>()[0], 1);
}

TEST(SafetensorsTest, RejectsDamagedFilesNamingThem) {
  const TempDir dir;
  const std::string four(4, '\0');
  const std::string entry = R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})";
  expect_corrupt(dir, "", "fewer than the 8-byte header size");
  expect_corrupt(dir, std::string("\x05\x00\x00", 3), "fewer than the 8-byte header size");
  expect_corrupt(dir, file_bytes(entry, four).substr(0, 20), "exceeds");
  expect_corrupt(dir, std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8) + "{}", "larger than the limit");
  expect_corrupt(dir, file_bytes("[1, 2]"), "does not start with '{'");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32",)"), "bad header");
  expect_corrupt(dir, file_bytes(R"({"a":1} x)"), "unexpected characters");
  expect_corrupt(dir, file_bytes("{\"\xc3\x28\":1}"), "not valid UTF-8");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})", "xx"),
                 "unsupported dtype \"F16\"");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,4]}})", four),
                 "needs 8 bytes but data_offsets [0, 4] span 4");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32","shape":[-1],"data_offsets":[0,4]}})", four),
                 "negative numbers");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32","shape":[1.5],"data_offsets":[0,4]}})", four),
                 "expected an integer");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[4,0]}})", four),
                 "end before they begin");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0]}})", four),
                 "data_offsets must be two");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32","shape":[1]}})", four), "missing field \"data_offsets\"");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4],"x":0}})", four),
                 "unexpected field \"x\"");
  expect_corrupt(dir, file_bytes(R"({"a":[]})"), "expected an object, found an array");
  expect_corrupt(dir, file_bytes(entry, "xx"), "out of range of the 2-byte data section");
  expect_corrupt(dir, file_bytes(entry, four + "zz"), "cover 4 bytes but the data section has 6");
  expect_corrupt(dir,
                 file_bytes(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
                            R"("b":{"dtype":"I32","shape":[1],"data_offsets":[2,6]}})",
                            four + four),
                 "overlap tensor \"a\"");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}})", four + four),
                 "leaving a gap");
  expect_corrupt(dir,
                 file_bytes(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
                            R"("a":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}})",
                            four + four),
                 "duplicate key \"a\"");
  expect_corrupt(dir, file_bytes(R"({"__metadata__":{"k":1}})"), "__metadata__ value of \"k\" is an integer");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\x01\x02"),
                 "BOOL byte 2 is neither 0 nor 1");
  expect_corrupt(dir, file_bytes(std::string(40, '[')), "does not start");
  expect_corrupt(dir, file_bytes("{\"a\":" + std::string(40, '[')), "nesting too deep");
  expect_corrupt(dir, file_bytes(R"({"a":{"dtype":"I32","shape":[99999999999,99999999999],"data_offsets":[0,4]}})"),
                 "shape is too large");
  try {
    (void)io::load_safetensors(dir.file("missing.safetensors"));
    ADD_FAILURE() << "a missing file loaded";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors\": cannot open the file"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsTest, EveryTruncationAndByteFlipIsAnErrorNotACrash) {
  const TempDir dir;
  const std::string path = dir.file("t.safetensors");
  // Every size up to the header and a spread of sizes past it (each file write costs a few ms).
  for (std::size_t size = 0; size < kGolden.size(); size += size < 16 || size + 1 == kGolden.size() ? 1 : 5) {
    write_bytes(path, kGolden.substr(0, size));
    EXPECT_THROW((void)io::load_safetensors(path), ValueError) << "truncated to " << size << " bytes";
  }
  // Changing any header byte either still describes a valid file or raises ValueError.
  for (std::size_t i = 0; i < 8 + kGoldenHeader.size(); i += 3) {
    std::string bytes = kGolden;
    bytes[i] = static_cast<char>(bytes[i] ^ 0x5A);
    write_bytes(path, bytes);
    try {
      (void)io::load_safetensors(path);
    } catch (const ValueError&) {  // expected for most bytes
    }
  }
}

TEST(SafetensorsTest, SaveErrors) {
  const TempDir dir;
  testing::expect_error<ValueError>(
      [&] {
        io::save_safetensors(dir.file("x.safetensors"), {{"__metadata__", NDArray::ones({1})}});
      },
      "\"__metadata__\" is reserved");
  testing::expect_error<RuntimeError>(
      [&] {
        io::save_safetensors(dir.file("no/such/folder/x.safetensors"), {{"a", NDArray::ones({1})}});
      },
      "cannot open");
}

std::shared_ptr<nn::Sequential> small_model() {
  return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
      std::make_shared<nn::Linear>(3, 4), std::make_shared<nn::BatchNorm1d>(4), std::make_shared<nn::Linear>(4, 2)});
}

TEST(SafetensorsTest, ModuleCheckpointsRoundTrip) {
  const TempDir dir;
  const std::string path = dir.file("model.safetensors");
  const auto model = small_model();
  io::save_state_dict(path, *model, {{"epoch", "3"}});
  const nn::StateDict saved = model->state_dict();
  EXPECT_EQ(io::load_safetensors(path).size(), saved.size());  // parameters and buffers
  EXPECT_EQ(io::load_safetensors_metadata(path).at("epoch"), "3");
  const auto other = small_model();  // different random initial weights
  io::load_state_dict(path, *other);
  for (const auto& [name, array] : other->state_dict()) {
    SCOPED_TRACE(name);
    expect_same(array, saved.at(name));
  }
  // A checkpoint of another architecture is refused by the module, which then stays unchanged.
  const std::string wrong = dir.file("wrong.safetensors");
  io::save_state_dict(wrong, nn::Linear(3, 4));
  EXPECT_ANY_THROW(io::load_state_dict(wrong, *other));
  expect_same(other->state_dict().begin()->second, saved.begin()->second);
}

}  // namespace
}  // namespace needle
