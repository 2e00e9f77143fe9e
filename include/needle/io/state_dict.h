// Module checkpoints: a module's state_dict() as a safetensors file, and back.
#pragma once

#include <string>

#include "needle/io/safetensors.h"
#include "needle/nn/module.h"

namespace needle::io {

// Writes module.state_dict() (parameters and buffers by dotted name) to `path`.
void save_state_dict(const std::string& path, const nn::Module& module, const Metadata& metadata = {});

// Reads `path` and hands it to module.load_state_dict(state, strict), which validates names, shapes
// and dtypes before changing anything. The arrays are loaded onto the device of the module's first
// parameter or buffer (the default device for a module without state).
void load_state_dict(const std::string& path, nn::Module& module, bool strict = true);

}  // namespace needle::io
