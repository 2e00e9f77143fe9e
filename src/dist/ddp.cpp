// DistributedDataParallel's wrapping: the same model on every rank (checked), rank 0's values everywhere,
// then a GradientReducer on its parameters.
#include "needle/dist/ddp.h"

#include <algorithm>
#include <cstring>
#include <sstream>

#include "needle/core/error.h"

namespace needle::dist {

namespace {

// One line per tensor: "name dtype shape".
std::vector<std::string> describe_tensors(const std::vector<std::pair<std::string, Tensor>>& named_tensors) {
  std::vector<std::string> lines;
  lines.reserve(named_tensors.size());
  for (const auto& [name, tensor] : named_tensors) {
    lines.push_back(str(name, " ", dtype_name(tensor.dtype()), " ", shape_str(tensor.shape())));
  }
  return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  return text;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Every rank's text, through two all-gathers (the lengths, then the bytes padded to the longest).
std::vector<std::string> all_gather_text(ProcessGroup& group, const std::string& text) {
  const NDArray length = NDArray::from_vector<std::int64_t>({static_cast<std::int64_t>(text.size())}, {1}, Device{});
  const NDArray lengths = group.all_gather(length);
  const std::vector<std::int64_t> sizes = lengths.to_vector<std::int64_t>();
  const std::int64_t longest = std::max<std::int64_t>(1, *std::max_element(sizes.begin(), sizes.end()));
  std::vector<std::uint8_t> padded(static_cast<std::size_t>(longest), 0);
  std::memcpy(padded.data(), text.data(), text.size());
  const NDArray gathered = group.all_gather(NDArray::from_vector<std::uint8_t>(padded, {longest}, Device{}));
  const std::vector<std::uint8_t> bytes = gathered.to_vector<std::uint8_t>();
  std::vector<std::string> texts;
  for (std::size_t r = 0; r < sizes.size(); ++r) {
    const auto* start = reinterpret_cast<const char*>(bytes.data()) + r * static_cast<std::size_t>(longest);
    texts.emplace_back(start, static_cast<std::size_t>(sizes[r]));
  }
  return texts;
}

}  // namespace

void broadcast_from_rank0(ProcessGroup& group, const std::vector<std::pair<std::string, Tensor>>& named_tensors,
                          const std::string& what) {
  if (group.size() == 1) return;
  const std::vector<std::string> mine = describe_tensors(named_tensors);
  const std::vector<std::string> texts = all_gather_text(group, join_lines(mine));
  const std::vector<std::string> reference = split_lines(texts[0]);
  for (std::size_t r = 1; r < texts.size(); ++r) {
    if (texts[r] == texts[0]) continue;
    const std::vector<std::string> other = split_lines(texts[r]);
    std::size_t i = 0;
    while (i < reference.size() && i < other.size() && reference[i] == other[i]) ++i;
    const std::string on0 = i < reference.size() ? "'" + reference[i] + "'" : "nothing more";
    const std::string onr = i < other.size() ? "'" + other[i] + "'" : "nothing more";
    throw RuntimeError(str("DistributedDataParallel: the ranks' models differ (every rank must build the same ", what,
                           "): entry ", i, " is ", on0, " on rank 0 but ", onr, " on rank ", r,
                           " (entries are 'name dtype shape'); rank 0 has ", reference.size(), ", rank ", r, " has ",
                           other.size()));
  }
  std::vector<std::shared_ptr<Work>> works;
  works.reserve(named_tensors.size());
  for (const auto& [name, tensor] : named_tensors) works.push_back(group.broadcast_async(tensor.value(), 0));
  for (const auto& work : works) work->wait();
}

DistributedDataParallel::DistributedDataParallel(std::shared_ptr<nn::Module> module, ReducerOptions options,
                                                 ProcessGroup* group)
    : module_(std::move(module)), group_(group != nullptr ? *group : world()) {
  NEEDLE_CHECK(module_ != nullptr, ValueError, "DistributedDataParallel: module is null");
  register_module("module", module_);
  std::vector<std::pair<std::string, Tensor>> state = module_->named_parameters();
  const std::vector<std::pair<std::string, Tensor>> buffers = module_->named_buffers();
  state.insert(state.end(), buffers.begin(), buffers.end());
  broadcast_from_rank0(group_, state, "parameters and buffers");
  reducer_ = std::make_unique<GradientReducer>(group_, module_->named_parameters(), options);
}

}  // namespace needle::dist
