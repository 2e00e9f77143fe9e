// Names of the kernel operations, used in error messages of every layer.
#include "needle/core/kernel_types.h"

namespace needle {

std::string_view unary_op_name(UnaryOp op) {
  switch (op) {
#define NEEDLE_UNARY(kind, name, ...) \
  case UnaryOp::kind:                 \
    return #name;
#include "needle/core/unary_ops.def"
  }
  return "unknown unary op";
}

std::string_view binary_op_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "add";
    case BinaryOp::Sub:
      return "sub";
    case BinaryOp::Mul:
      return "mul";
    case BinaryOp::Div:
      return "div";
    case BinaryOp::Pow:
      return "pow";
    case BinaryOp::Maximum:
      return "maximum";
    case BinaryOp::Minimum:
      return "minimum";
    case BinaryOp::Eq:
      return "eq";
    case BinaryOp::Ne:
      return "ne";
    case BinaryOp::Lt:
      return "lt";
    case BinaryOp::Le:
      return "le";
    case BinaryOp::Gt:
      return "gt";
    case BinaryOp::Ge:
      return "ge";
  }
  return "unknown binary op";
}

std::string_view reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return "sum";
    case ReduceOp::Max:
      return "max";
    case ReduceOp::Min:
      return "min";
  }
  return "unknown reduction";
}

std::string_view arg_reduce_op_name(ArgReduceOp op) { return op == ArgReduceOp::Argmax ? "argmax" : "argmin"; }

std::string_view random_distribution_name(RandomDistribution dist) {
  switch (dist) {
    case RandomDistribution::Uniform:
      return "uniform";
    case RandomDistribution::Normal:
      return "normal";
    case RandomDistribution::Bernoulli:
      return "bernoulli";
  }
  return "unknown distribution";
}

bool is_comparison(BinaryOp op) {
  switch (op) {
    case BinaryOp::Eq:
    case BinaryOp::Ne:
    case BinaryOp::Lt:
    case BinaryOp::Le:
    case BinaryOp::Gt:
    case BinaryOp::Ge:
      return true;
    default:
      return false;
  }
}

}  // namespace needle
