// The autograd graph as DOT: every op of a small known graph, its leaves, requires_grad, where gradients
// accumulate and where the gradients of several uses are summed.
#include <gtest/gtest.h>
#include <needle/debug/debug.h>
#include <needle/needle.h>

#include <string>

namespace needle {
namespace {

// Occurrences of `part` in `text` (plain substrings: libstdc++'s <regex> trips -Wmaybe-uninitialized
// under the sanitizer build).
std::size_t count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + part.size())) ++n;
  return n;
}

TEST(DebugGraph, DotNamesEveryOpLeafAndEdgeOfAKnownGraph) {
  const Tensor x(NDArray::ones({4, 3}));
  const Tensor w(NDArray::ones({3, 2}), true);
  const Tensor b(NDArray::ones({2}), true);
  const Tensor h = ops::matmul(x, w) + b;                // matmul, add
  const Tensor loss = ops::summation(ops::relu(h) * h);  // relu, multiply, summation; h used twice
  const std::string dot = debug::graph_dot(loss);

  EXPECT_EQ(dot.rfind("digraph needle {", 0), 0U);
  for (const char* op : {"matmul", "add", "relu", "multiply", "summation"}) {
    const std::string label = str("label=\"", op, "\\n");  // the op's name, then DOT's line break
    EXPECT_EQ(count(dot, label), 1U) << op << "\n" << dot;
  }
  EXPECT_EQ(count(dot, "label=\"leaf"), 3U);                                  // x, w, b
  EXPECT_EQ(count(dot, "requires_grad: gradients accumulate in .grad"), 2U);  // w, b
  EXPECT_EQ(count(dot, "gradients of 2 uses summed here"), 1U);               // h
  EXPECT_EQ(count(dot, " -> "), 8U);                                          // 2 + 2 + 1 + 2 + 1 inputs
  EXPECT_NE(dot.find("(4, 2) float32"), std::string::npos);
  EXPECT_EQ(count(dot, "peripheries=2"), 1U);  // the root
  EXPECT_THROW((void)debug::graph_dot(Tensor()), ValueError);
}

TEST(DebugGraph, ReleasedGraphsAreShownAsSuch) {
  const Tensor w(NDArray::ones({2}), true);
  const Tensor loss = ops::summation(ops::exp(w));
  loss.backward();
  const std::string dot = debug::graph_dot(loss);
  EXPECT_NE(dot.find("summation (graph released)"), std::string::npos) << dot;
}

}  // namespace
}  // namespace needle
