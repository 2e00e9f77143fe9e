// IDX readers for MNIST. zlib's gz* functions read gzipped and plain files alike.
#include "needle/data/mnist.h"

#include <zlib.h>

#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "needle/core/checked_math.h"

namespace needle::data {

namespace {

// Big-endian 32-bit integer at `offset` (IDX headers are big-endian).
std::uint32_t big_endian_u32(const std::vector<std::uint8_t>& bytes, std::size_t offset) {
  return (std::uint32_t{bytes[offset]} << 24U) | (std::uint32_t{bytes[offset + 1]} << 16U) |
         (std::uint32_t{bytes[offset + 2]} << 8U) | std::uint32_t{bytes[offset + 3]};
}

struct Idx {
  std::vector<std::uint8_t> bytes;
  std::vector<std::uint32_t> dims;
  std::size_t data_offset = 0;
};

// Reads an IDX file of unsigned bytes with `ndim` dimensions and checks that the data is exactly as
// long as the dimensions say.
Idx read_idx(const std::string& path, std::uint32_t magic, std::size_t ndim, const char* what) {
  Idx idx;
  idx.bytes = read_maybe_gzipped(path);
  const std::size_t header = 4 * (1 + ndim);
  NEEDLE_CHECK(idx.bytes.size() >= header, ValueError, "MNISTDataset: '", path, "': ", idx.bytes.size(),
               " bytes is too short for an IDX ", what, " header");
  const std::uint32_t found = big_endian_u32(idx.bytes, 0);
  NEEDLE_CHECK(found == magic, ValueError, "MNISTDataset: '", path, "': magic number 0x", std::hex, found, " is not 0x",
               magic, std::dec, " (an IDX ", what, " file)");
  // Checked: three 32-bit dimensions can multiply past 2**64 and wrap to a size the file matches (4 images
  // of 2**31 x 2**31 pixels wrap to 0 bytes, which a 16-byte header-only file "holds").
  std::optional<std::int64_t> expected_bytes = 1;
  for (std::size_t d = 0; d < ndim; ++d) {
    idx.dims.push_back(big_endian_u32(idx.bytes, 4 * (1 + d)));
    if (expected_bytes) expected_bytes = checked_mul(*expected_bytes, std::int64_t{idx.dims.back()});
  }
  if (!expected_bytes) {
    std::string dims;
    for (std::uint32_t dim : idx.dims) dims += (dims.empty() ? "" : " x ") + std::to_string(dim);
    throw ValueError(str("MNISTDataset: '", path, "': the header announces ", dims, " bytes of ", what, ", more than ",
                         kMaxSizeText, " (a corrupt header)"));
  }
  const auto expected = static_cast<std::uint64_t>(*expected_bytes);
  const std::uint64_t actual = idx.bytes.size() - header;
  NEEDLE_CHECK(actual == expected, ValueError, "MNISTDataset: '", path, "': the header announces ", expected,
               " bytes of ", what, " but the file holds ", actual,
               actual < expected ? " (truncated)" : " (trailing data)");
  idx.data_offset = header;
  return idx;
}

}  // namespace

std::vector<std::uint8_t> read_maybe_gzipped(const std::string& path) {
  const std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  NEEDLE_CHECK(file != nullptr, ValueError, "cannot open '", path, "'");
  std::vector<std::uint8_t> bytes;
  constexpr unsigned kChunk = 1U << 20U;
  while (true) {
    const std::size_t old_size = bytes.size();
    bytes.resize(old_size + kChunk);
    const int got = gzread(file.get(), bytes.data() + old_size, kChunk);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file.get(), &code);
      throw ValueError(str("'", path, "': corrupt gzip data (", message, ")"));
    }
    bytes.resize(old_size + static_cast<std::size_t>(got));
    if (got == 0) break;
  }
  // A stream cut short reads to its end and only then reports the missing bytes.
  int code = Z_OK;
  const char* message = gzerror(file.get(), &code);
  NEEDLE_CHECK(code == Z_OK || code == Z_STREAM_END, ValueError, "'", path, "': truncated or corrupt gzip data (",
               message, ")");
  return bytes;
}

MNISTDataset::MNISTDataset(const std::string& image_path, const std::string& label_path, Transforms transforms)
    : Dataset(std::move(transforms)) {
  const Idx images = read_idx(image_path, 0x00000803, 3, "images");
  const Idx labels = read_idx(label_path, 0x00000801, 1, "labels");
  const std::uint32_t n = images.dims[0];
  NEEDLE_CHECK(labels.dims[0] == n, ValueError, "MNISTDataset: '", image_path, "' holds ", n, " images but '",
               label_path, "' holds ", labels.dims[0], " labels");
  const auto count = static_cast<std::int64_t>(n);
  const auto rows = static_cast<std::int64_t>(images.dims[1]);
  const auto cols = static_cast<std::int64_t>(images.dims[2]);
  // Scaled on the host in one pass: x / 255 in float32, exactly what Needle's NumPy code computes.
  std::vector<float> pixels(images.bytes.size() - images.data_offset);
  for (std::size_t i = 0; i < pixels.size(); ++i) {
    pixels[i] = static_cast<float>(images.bytes[images.data_offset + i]) / 255.0F;
  }
  images_ = NDArray::from_vector(pixels, {count, rows, cols, 1});
  const std::vector<std::int64_t> label_values(labels.bytes.begin() + static_cast<std::ptrdiff_t>(labels.data_offset),
                                               labels.bytes.end());
  labels_ = NDArray::from_vector(label_values, {count});
}

std::vector<NDArray> MNISTDataset::get(std::int64_t index) const {
  const std::int64_t i = checked_index(index, "MNISTDataset");
  return {apply_transforms(images_.index({IndexItem::at(i)})), labels_.index({IndexItem::at(i)})};
}

}  // namespace needle::data
