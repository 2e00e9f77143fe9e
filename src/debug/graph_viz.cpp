// The autograd graph as Graphviz DOT.
#include "needle/debug/graph_viz.h"

#include <fstream>
#include <sstream>
#include <unordered_map>

#include "autograd/tensor_debug_info.h"
#include "needle/autograd/engine.h"
#include "needle/autograd/op.h"
#include "needle/core/error.h"
#include "needle/debug/call_site.h"

namespace needle::debug {

namespace {

// A DOT string literal's contents: quotes and backslashes escaped, newlines as DOT's centred line breaks.
std::string dot_escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string value_str(const Tensor& t) { return shape_str(t.shape()) + " " + std::string(dtype_name(t.dtype())); }

}  // namespace

std::string graph_dot(const Tensor& root) {
  NEEDLE_CHECK(root.defined(), ValueError, "graph: the tensor is undefined");
  const std::vector<Tensor> order = autograd::topological_order({root});
  std::unordered_map<const TensorImpl*, std::size_t> ids;
  std::unordered_map<const TensorImpl*, std::size_t> uses;  // how many ops of this graph consume each tensor
  for (std::size_t i = 0; i < order.size(); ++i) {
    ids.emplace(order[i].impl().get(), i);
    for (const Tensor& input : order[i].inputs()) ++uses[input.impl().get()];
  }
  std::ostringstream out;
  out << "digraph needle {\n"
      << "  graph [rankdir=TB, fontname=\"Helvetica\"];\n"
      << "  node [fontname=\"Helvetica\", fontsize=10];\n"
      << "  edge [fontname=\"Helvetica\", fontsize=8];\n";
  for (std::size_t i = 0; i < order.size(); ++i) {
    const Tensor& t = order[i];
    const TensorImpl& impl = *t.impl();
    std::string label;
    std::string attrs;
    if (!t.is_leaf()) {
      label = t.op()->name() + "\n" + value_str(t);
      attrs = "shape=box, style=\"rounded,filled\", fillcolor=\"#dbe9f6\"";
    } else if (!impl.released_op_name.empty()) {
      label = impl.released_op_name + " (graph released)\n" + value_str(t);
      attrs = "shape=box, style=\"rounded,dashed\"";
    } else {
      label = "leaf\n" + value_str(t);
      if (t.requires_grad()) {
        label += "\nrequires_grad: gradients accumulate in .grad";
        attrs = "shape=ellipse, style=filled, fillcolor=\"#fde2b8\"";
      } else {
        attrs = "shape=ellipse, style=filled, fillcolor=\"#eeeeee\"";
      }
    }
    // The engine sums the gradients flowing back from each use of a tensor before passing them on.
    if (const auto used = uses.find(&impl); used != uses.end() && used->second > 1 && t.requires_grad()) {
      label += "\ngradients of " + std::to_string(used->second) + " uses summed here";
    }
    const std::string site = call_site_name(call_site_of(impl));
    if (!site.empty()) label += "\nat " + site;
    out << "  t" << i << " [label=\"" << dot_escape(label) << "\", " << attrs;
    if (t.same(root)) out << ", peripheries=2";
    out << "];\n";
  }
  for (std::size_t i = 0; i < order.size(); ++i) {
    const std::vector<Tensor>& inputs = order[i].inputs();
    for (std::size_t k = 0; k < inputs.size(); ++k) {
      out << "  t" << ids.at(inputs[k].impl().get()) << " -> t" << i;
      if (inputs.size() > 1) out << " [label=\"" << k << "\"]";
      out << ";\n";
    }
  }
  out << "}\n";
  return out.str();
}

void write_graph_dot(const Tensor& root, const std::string& path) {
  const std::string dot = graph_dot(root);
  std::ofstream file(path, std::ios::binary);
  NEEDLE_CHECK(file.good(), RuntimeError, "graph: cannot open '", path, "' for writing");
  file << dot;
  file.close();
  NEEDLE_CHECK(!file.fail(), RuntimeError, "graph: writing '", path, "' failed");
}

}  // namespace needle::debug
