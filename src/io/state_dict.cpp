// Module checkpoints on top of the safetensors reader and writer.
#include "needle/io/state_dict.h"

namespace needle::io {

void save_state_dict(const std::string& path, const nn::Module& module, const Metadata& metadata) {
  save_safetensors(path, module.state_dict(), metadata);
}

void load_state_dict(const std::string& path, nn::Module& module, bool strict) {
  const nn::StateDict current = module.state_dict();
  // Loaded straight onto the module's device, so no host copy is made and then moved.
  const Device device = current.empty() ? default_device() : current.begin()->second.device();
  module.load_state_dict(load_safetensors(path, device), strict);
}

}  // namespace needle::io
