// Tracing: a traced step holds exactly the ops, backward nodes and kernels that ran, properly nested and
// timed; the data loader's threads are recorded safely; the JSON and the summary carry the events.
#include <gtest/gtest.h>
#include <needle/debug/debug.h>
#include <needle/needle.h>

#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gradcheck.h"

namespace needle {
namespace {

using testing::random_array;
using trace::Event;
using trace::EventKind;

std::string key(const Event& e) { return str(trace::event_kind_name(e.kind), ":", e.name); }

// Every event ends inside its parent, which is on its thread one level up; durations are positive.
void expect_well_nested(const std::vector<Event>& events) {
  for (const Event& e : events) {
    SCOPED_TRACE(key(e));
    EXPECT_TRUE(e.complete);
    EXPECT_GT(e.duration_us, 0.0);
    if (e.parent < 0) {
      EXPECT_EQ(e.depth, 0);
      continue;
    }
    ASSERT_LT(e.parent, e.id);
    const Event& p = events.at(static_cast<std::size_t>(e.parent));
    EXPECT_EQ(p.thread, e.thread);
    EXPECT_EQ(e.depth, p.depth + 1);
    EXPECT_GE(e.start_us, p.start_us);
    EXPECT_LE(e.start_us + e.duration_us, p.start_us + p.duration_us + 1e-6);
  }
}

std::vector<const Event*> children(const std::vector<Event>& events, std::int64_t parent) {
  std::vector<const Event*> out;
  for (const Event& e : events) {
    if (e.parent == parent) out.push_back(&e);
  }
  return out;
}

bool has_kernel_below(const std::vector<Event>& events, std::int64_t id, const std::string& kernel) {
  for (const Event* c : children(events, id)) {
    if ((c->kind == EventKind::Kernel && c->name == kernel) || has_kernel_below(events, c->id, kernel)) return true;
  }
  return false;
}

TEST(DebugTrace, AStepHoldsExactlyItsOpsAndBackwardNodesNested) {
  const Tensor x(random_array({4, 3}, cpu_device(), 1).astype(DType::Float32));
  const Tensor w(random_array({3, 2}, cpu_device(), 2).astype(DType::Float32), true);
  trace::Scope scope;
  const Tensor h = ops::matmul(x, w);
  const Tensor r = ops::relu(h);
  const Tensor loss = ops::summation(r);
  loss.backward();
  const trace::Recording& recording = scope.stop();
  const std::vector<Event>& events = recording.events();
  expect_well_nested(events);

  std::vector<std::string> top;
  const Event* pass = nullptr;
  for (const Event& e : events) {
    if (e.parent >= 0) continue;
    top.push_back(key(e));
    if (e.kind == EventKind::Autograd) pass = &e;
  }
  EXPECT_EQ(top, (std::vector<std::string>{"op:matmul", "op:relu", "op:summation", "autograd:backward"}));
  ASSERT_NE(pass, nullptr);

  // The backward nodes are the graph's ops, outputs first, each directly inside the backward pass.
  std::vector<std::string> nodes;
  for (const Event& e : events) {
    if (e.kind != EventKind::Backward) continue;
    EXPECT_EQ(e.parent, pass->id);
    nodes.push_back(e.name);
  }
  EXPECT_EQ(nodes, (std::vector<std::string>{"summation", "relu", "matmul"}));

  // Forward ops hold their kernels; matmul's counts its FLOPs (2 * m * n * k) and bytes.
  for (const Event& e : events) {
    if (e.kind == EventKind::Op && e.name == "matmul") {
      EXPECT_EQ(e.input_shapes, (std::vector<Shape>{{4, 3}, {3, 2}}));
      EXPECT_EQ(e.output_shapes, (std::vector<Shape>{{4, 2}}));
      EXPECT_EQ(e.device, "cpu");
      EXPECT_EQ(e.dtype, "float32");
      bool found = false;
      for (const Event* k : children(events, e.id)) {
        if (k->kind != EventKind::Kernel || k->name != "matmul") continue;
        found = true;
        EXPECT_EQ(k->flops, 2 * 4 * 2 * 3);
        EXPECT_EQ(k->bytes, (4 * 2 + 4 * 3 + 3 * 2) * 4);
        EXPECT_EQ(k->elements, 8);
      }
      EXPECT_TRUE(found);
    }
    if (e.kind == EventKind::Backward && e.name == "matmul") {
      // Its gradient x^T @ g runs as ops inside the node, and those run the matmul kernel.
      EXPECT_TRUE(has_kernel_below(events, e.id, "matmul"));
      for (const Event* c : children(events, e.id)) {
        EXPECT_TRUE(c->kind == EventKind::GradOp || c->kind == EventKind::Kernel) << key(*c);
      }
    }
  }

  const std::string summary = recording.summary();
  for (const char* needle_text : {"ops (forward", "backward nodes", "kernels", "matmul (cpu)", "GFLOP/s", "relu"}) {
    EXPECT_NE(summary.find(needle_text), std::string::npos) << needle_text << "\n" << summary;
  }
  const std::string json = recording.chrome_json();
  EXPECT_NE(json.find("\"traceEvents\""), std::string::npos);
  EXPECT_NE(json.find("\"ph\":\"X\""), std::string::npos);
  EXPECT_NE(json.find("\"name\":\"backward matmul\""), std::string::npos);
}

TEST(DebugTrace, NothingIsRecordedOutsideTheScopeAndOneTraceAtATime) {
  const Tensor a(NDArray::ones({3}));
  trace::Recording recording;
  {
    trace::Scope scope;
    EXPECT_TRUE(trace::is_recording());
    EXPECT_THROW(trace::Scope(), RuntimeError);
    (void)(a + a);
    recording = scope.stop();
    (void)(a * a);  // after stop: not recorded
  }
  EXPECT_FALSE(trace::is_recording());
  std::set<std::string> names;
  for (const Event& e : recording.events()) names.insert(e.name);
  EXPECT_TRUE(names.count("add") == 1);
  EXPECT_TRUE(names.count("multiply") == 0);
  // Kernels go straight to the built-in backend again.
  EXPECT_EQ(&backend_for(cpu_device()), &builtin_backend_for(cpu_device()));
}

TEST(DebugTrace, CallSitesMarkedInCxxReachTheEvents) {
  const Tensor a(NDArray::ones({2}), true);
  trace::Scope scope;
  const int line = __LINE__ + 1;
  NEEDLE_CALL_SITE();
  (void)ops::exp(a);
  const trace::Recording& recording = scope.stop();
  bool found = false;
  for (const Event& e : recording.events()) {
    if (e.kind != EventKind::Op || e.name != "exp") continue;
    found = true;
    EXPECT_NE(e.call_site.find(str("test_debug_trace.cpp:", line)), std::string::npos) << e.call_site;
  }
  EXPECT_TRUE(found);
}

TEST(DebugTrace, DataLoaderThreadsAreRecordedSafely) {
  const NDArray xs = random_array({64, 5}, cpu_device(), 3).astype(DType::Float32);
  const NDArray ys = NDArray::arange(64, DType::Int64);
  auto dataset = std::make_shared<data::NDArrayDataset>(std::vector<NDArray>{xs, ys});
  data::DataLoader loader(dataset, 4, /*shuffle=*/true, /*drop_last=*/false, /*num_workers=*/2, 7);
  const Tensor w(random_array({5, 3}, cpu_device(), 4).astype(DType::Float32), true);
  trace::Scope scope;
  std::int64_t batches = 0;
  for (const data::Batch& batch : loader) {
    const Tensor loss = ops::summation(ops::matmul(Tensor(batch[0]), w));
    loss.backward();
    ++batches;
  }
  const trace::Recording& recording = scope.stop();
  EXPECT_EQ(batches, 16);
  expect_well_nested(recording.events());
  std::set<std::uint32_t> kernel_threads;
  std::int64_t backward_passes = 0;
  for (const Event& e : recording.events()) {
    if (e.kind == EventKind::Kernel) kernel_threads.insert(e.thread);
    if (e.kind == EventKind::Autograd) ++backward_passes;
    EXPECT_LT(e.thread, recording.threads());
  }
  EXPECT_EQ(backward_passes, 16);
  // The workers gathered the batches: their copy kernels are on threads other than the tracing one.
  EXPECT_GT(kernel_threads.size(), 1U);
}

}  // namespace
}  // namespace needle
