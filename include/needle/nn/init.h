// Parameter initializers with Needle's formulas (needle.init), drawing from a Generator so C++ users can
// reproduce them (null = the default generator, seeded by manual_seed). Each returns a fresh array; a
// layer wraps it with Parameter().
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "needle/core/dtype.h"
#include "needle/core/ndarray.h"
#include "needle/core/random.h"

namespace needle::nn::init {

// Uniform in [low, high).
NDArray uniform(const Shape& shape, double low = 0.0, double high = 1.0, DType dtype = kDefaultFloat,
                Device device = default_device(), Generator* generator = nullptr);
// Normal with the given mean and standard deviation.
NDArray normal(const Shape& shape, double mean = 0.0, double std = 1.0, DType dtype = kDefaultFloat,
               Device device = default_device(), Generator* generator = nullptr);
NDArray zeros(const Shape& shape, DType dtype = kDefaultFloat, Device device = default_device());
NDArray ones(const Shape& shape, DType dtype = kDefaultFloat, Device device = default_device());

// The gain Needle (and PyTorch) use for a nonlinearity: "relu" sqrt(2), "tanh" 5/3, "linear"/"sigmoid"
// 1. Throws ValueError for other names.
double calculate_gain(const std::string& nonlinearity);

// Xavier/Glorot: uniform in +-gain * sqrt(6 / (fan_in + fan_out)), or normal with std
// gain * sqrt(2 / (fan_in + fan_out)). Shape (fan_in, fan_out) unless given.
NDArray xavier_uniform(std::int64_t fan_in, std::int64_t fan_out, double gain = 1.0,
                       const std::optional<Shape>& shape = std::nullopt, DType dtype = kDefaultFloat,
                       Device device = default_device(), Generator* generator = nullptr);
NDArray xavier_normal(std::int64_t fan_in, std::int64_t fan_out, double gain = 1.0,
                      const std::optional<Shape>& shape = std::nullopt, DType dtype = kDefaultFloat,
                      Device device = default_device(), Generator* generator = nullptr);

// Kaiming/He: uniform in +-gain * sqrt(3 / fan_in), or normal with std gain / sqrt(fan_in), gain from
// `nonlinearity` (sqrt(2) for relu). fan_out only sets the default shape (fan_in, fan_out), as in Needle.
NDArray kaiming_uniform(std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape = std::nullopt,
                        const std::string& nonlinearity = "relu", DType dtype = kDefaultFloat,
                        Device device = default_device(), Generator* generator = nullptr);
NDArray kaiming_normal(std::int64_t fan_in, std::int64_t fan_out, const std::optional<Shape>& shape = std::nullopt,
                       const std::string& nonlinearity = "relu", DType dtype = kDefaultFloat,
                       Device device = default_device(), Generator* generator = nullptr);

}  // namespace needle::nn::init
