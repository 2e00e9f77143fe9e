// The vocabulary shared by the array layer and the kernel interface (backend.h): which element-wise,
// reduction or random operation to run, and the hyper-parameters of the fused optimizer steps. Kept apart
// from backend.h so that the layers above the array layer name these without seeing the Backend class.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace needle {

// The functions of one operand, in the order of unary_ops.def (which gives each its formula, dtype rule
// and gradient). Gelu and its derivative GeluGrad are kernels of their own so that a GELU layer costs one
// pass over memory forward and one backward instead of a chain of five.
enum class UnaryOp : std::uint8_t {
#define NEEDLE_UNARY(kind, ...) kind,
#include "needle/core/unary_ops.def"
};

// Which dtypes a UnaryOp computes in (the `domain` column of unary_ops.def).
enum class UnaryDomain : std::uint8_t {
  Number,  // integers and floats, dtype kept; bool refused
  Float,   // floats; integers and bool are computed in float32
};

// The `domain` column of unary_ops.def, indexed by UnaryOp.
inline constexpr UnaryDomain kUnaryDomains[] = {
#define NEEDLE_UNARY(kind, name, domain, ...) UnaryDomain::domain,
#include "needle/core/unary_ops.def"
};

// Which dtypes `op` computes in; a constant expression, so kernels pick their dtypes at compile time.
constexpr UnaryDomain unary_op_domain(UnaryOp op) { return kUnaryDomains[static_cast<std::size_t>(op)]; }

enum class BinaryOp : std::uint8_t {
  Add,
  Sub,
  Mul,
  Div,
  Pow,
  Maximum,
  Minimum,  // arithmetic: output dtype = input dtype
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,  // comparisons: output dtype = bool
};

enum class ReduceOp : std::uint8_t { Sum, Max, Min };
enum class ArgReduceOp : std::uint8_t { Argmax, Argmin };
enum class RandomDistribution : std::uint8_t {
  Uniform,    // U[p0, p1)
  Normal,     // N(mean = p0, std = p1)
  Bernoulli,  // 1 with probability p0, else 0
};

// Names used in errors and traces of every layer: "exp", "add", "maximum", "lt", "sum", "argmax", "normal".
std::string_view unary_op_name(UnaryOp op);
std::string_view binary_op_name(BinaryOp op);
std::string_view reduce_op_name(ReduceOp op);
std::string_view arg_reduce_op_name(ArgReduceOp op);
std::string_view random_distribution_name(RandomDistribution dist);
bool is_comparison(BinaryOp op);

// The hyper-parameters of one Adam or AdamW step (Backend::adam_update); correction1 and correction2 are
// the bias corrections 1 - beta1^t and 1 - beta2^t of step t.
struct AdamStep {
  double lr = 0.0;
  double beta1 = 0.0;
  double beta2 = 0.0;
  double eps = 0.0;
  double weight_decay = 0.0;
  double correction1 = 1.0;
  double correction2 = 1.0;
  bool decoupled = false;  // AdamW: decay the parameter itself instead of adding wd * p to the gradient
};

// The hyper-parameters of one SGD step (Backend::sgd_update). `first` marks a parameter's first step with
// momentum: its buffer holds nothing yet and is only written.
struct SgdStep {
  double lr = 0.0;
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool first = false;
};

}  // namespace needle
