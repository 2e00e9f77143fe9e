// needle::dist across processes: run by CTest under `mpirun -np 2` and `-np 3` (every rank runs every
// test, in the same order). Collectives on every dtype and on sizes 0, 1, odd and above a bucket; calls the
// ranks disagree on refused on every rank; DistributedDataParallel against one process on the whole batch;
// the overlap of all-reduce with backward; SyncBatchNorm against BatchNorm on the whole batch.
#include <gtest/gtest.h>
#include <needle/dist/ddp.h>
#include <needle/dist/process_group.h>
#include <needle/dist/sync_batch_norm.h>
#include <needle/needle.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace needle {
namespace {

dist::ProcessGroup& group() { return dist::init(); }

// Values of rank r's array: distinct per rank and per element, exact in every dtype.
NDArray rank_values(std::int64_t n, DType dtype, int rank) {
  std::vector<double> values(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    values[static_cast<std::size_t>(i)] = static_cast<double>((i * 7 + rank * 3) % 11);
  if (dtype == DType::Bool) {
    for (std::int64_t i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = ((i + rank) % 3 == 0) ? 1 : 0;
  }
  return NDArray::from_vector(values, {n}, cpu_device()).astype(dtype);
}

std::vector<double> host(const NDArray& a) { return a.astype(DType::Float64).to_vector<double>(); }

TEST(Collectives, AllReduceEveryDtypeAndSize) {
  const int size = group().size();
  for (const DType dtype : kAllDTypes) {
    for (const std::int64_t n : {0, 1, 7, 1000}) {
      SCOPED_TRACE(str(dtype_name(dtype), " n=", n));
      std::vector<double> sum(static_cast<std::size_t>(n), 0.0);
      std::vector<double> max(static_cast<std::size_t>(n), -1e300);
      for (int r = 0; r < size; ++r) {
        const std::vector<double> v = host(rank_values(n, dtype, r));
        for (std::size_t i = 0; i < v.size(); ++i) {
          sum[i] += v[i];
          max[i] = std::max(max[i], v[i]);
        }
      }
      const NDArray a = rank_values(n, dtype, group().rank());
      group().all_reduce(a, dist::ReduceOp::Sum);
      if (dtype == DType::Bool) {
        for (double& s : sum) s = s > 0 ? 1 : 0;  // logical or
      }
      EXPECT_EQ(host(a), sum);
      const NDArray b = rank_values(n, dtype, group().rank());
      group().all_reduce(b, dist::ReduceOp::Max);
      EXPECT_EQ(host(b), max);
      if (is_floating(dtype)) {
        const NDArray c = rank_values(n, dtype, group().rank());
        group().all_reduce(c, dist::ReduceOp::Average);
        std::vector<double> mean = sum;
        for (double& m : mean) m /= size;
        const std::vector<double> got = host(c);
        for (std::size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], mean[i], 1e-6);
      }
    }
  }
}

TEST(Collectives, LargerThanABucketAndStridedViews) {
  // 7.5 M float32 elements: 30 MB, more than one 25 MB bucket.
  const std::int64_t n = 7'500'000;
  const NDArray big = NDArray::full({n}, Scalar(static_cast<double>(group().rank() + 1)), DType::Float32, cpu_device());
  group().all_reduce(big, dist::ReduceOp::Sum);
  const double expected = group().size() * (group().size() + 1) / 2.0;
  const std::vector<float> values = big.to_vector<float>();
  EXPECT_EQ(values.front(), expected);
  EXPECT_EQ(values.back(), expected);
  EXPECT_EQ(std::count(values.begin(), values.end(), static_cast<float>(expected)), n);
  // A transposed view is reduced and written back through its strides; the rest of the storage is untouched.
  const NDArray base = NDArray::from_vector<double>({1, 2, 3, 4, 5, 6}, {2, 3}, cpu_device());
  const NDArray view = base.permute({1, 0});
  group().all_reduce(view, dist::ReduceOp::Sum);
  EXPECT_EQ(host(base), (std::vector<double>{1.0 * group().size(), 2.0 * group().size(), 3.0 * group().size(),
                                             4.0 * group().size(), 5.0 * group().size(), 6.0 * group().size()}));
}

TEST(Collectives, BroadcastAllGatherReduceScatterBarrier) {
  const int size = group().size();
  const int rank = group().rank();
  for (const DType dtype : kAllDTypes) {
    SCOPED_TRACE(dtype_name(dtype));
    const NDArray a = rank_values(5, dtype, rank);
    group().broadcast(a, size - 1);
    EXPECT_EQ(host(a), host(rank_values(5, dtype, size - 1)));
    const NDArray gathered = group().all_gather(rank_values(3, dtype, rank).reshape({3, 1}));
    ASSERT_EQ(gathered.shape(), (Shape{size, 3, 1}));
    for (int r = 0; r < size; ++r) {
      EXPECT_EQ(host(gathered.index({IndexItem::at(r)}).reshape({3})), host(rank_values(3, dtype, r)));
    }
  }
  // reduce_scatter: (size * 2, 3) summed, rank r keeps rows 2r and 2r + 1.
  std::vector<double> values(static_cast<std::size_t>(size * 6));
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<double>(i) * (rank + 1);
  const NDArray input = NDArray::from_vector(values, {size * 2, 3}, cpu_device());
  const NDArray mine = group().reduce_scatter(input, dist::ReduceOp::Sum);
  ASSERT_EQ(mine.shape(), (Shape{2, 3}));
  const double factor = size * (size + 1) / 2.0;
  const std::vector<double> got = host(mine);
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], static_cast<double>(rank * 6 + i) * factor);
  group().barrier();
  EXPECT_EQ(group().all_gather(NDArray::zeros({0})).shape(), (Shape{size, 0}));
}

TEST(Collectives, AsyncWorkCompletesInAnyWaitOrder) {
  std::vector<NDArray> arrays;
  std::vector<std::shared_ptr<dist::Work>> works;
  for (int i = 0; i < 4; ++i) {
    arrays.push_back(NDArray::full({100}, Scalar(static_cast<double>(i)), DType::Float64, cpu_device()));
    works.push_back(group().all_reduce_async(arrays.back(), dist::ReduceOp::Sum));
  }
  for (int i = 3; i >= 0; --i) works[static_cast<std::size_t>(i)]->wait(std::chrono::seconds(60));
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(works[static_cast<std::size_t>(i)]->completed());
    EXPECT_EQ(host(arrays[static_cast<std::size_t>(i)])[0], static_cast<double>(i * group().size()));
  }
}

// Each expects every rank to raise the same RuntimeError naming what each rank called; afterwards the
// group still works (no rank went on into the data transfer).
TEST(Collectives, DisagreeingCallsFailOnEveryRank) {
  if (group().size() < 2) GTEST_SKIP() << "needs at least 2 ranks to disagree";
  const int rank = group().rank();
  const auto expect_refused = [&](const std::function<void()>& call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no error";
    } catch (const RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("rank 1 called"), std::string::npos) << e.what();
    }
  };
  expect_refused([&] { group().all_reduce(NDArray::zeros({rank == 0 ? 3 : 4}), dist::ReduceOp::Sum); }, "shape (3,)");
  expect_refused(
      [&] {
        group().all_reduce(NDArray::zeros({3}, rank == 0 ? DType::Float32 : DType::Float64), dist::ReduceOp::Sum);
      },
      "float64");
  expect_refused(
      [&] {
        if (rank == 0) {
          group().all_reduce(NDArray::zeros({3}), dist::ReduceOp::Sum);
        } else {
          group().broadcast(NDArray::zeros({3}), 0);
        }
      },
      "broadcast");
  expect_refused(
      [&] { group().all_reduce(NDArray::zeros({3}), rank == 0 ? dist::ReduceOp::Sum : dist::ReduceOp::Max); },
      "op max");
  const NDArray after = NDArray::ones({2});
  group().all_reduce(after, dist::ReduceOp::Sum);
  EXPECT_EQ(host(after)[0], group().size());
}

// CUDA arrays go through NCCL, each rank on the GPU of its local rank. Every rank runs it or every rank
// skips it (decided together: one rank in a collective alone would wait for the others).
TEST(Collectives, CudaArraysThroughNccl) {
  const Device gpu = cuda_device(group().local_rank());
  const NDArray ready =
      NDArray::full({1}, Scalar(gpu.enabled() && dist::nccl_available() ? 1 : 0), DType::Int64, cpu_device());
  group().all_reduce(ready, dist::ReduceOp::Sum);
  if (ready.to_vector<std::int64_t>()[0] != group().size()) {
    GTEST_SKIP() << "needs a CUDA device for every rank (one per local rank) and Needle built with NCCL: "
                 << (dist::nccl_available() ? "not every rank has its GPU here" : "built without NCCL");
  }
  const int size = group().size();
  const int rank = group().rank();
  for (const DType dtype : {DType::Float32, DType::Float64, DType::Int64, DType::UInt8}) {
    SCOPED_TRACE(dtype_name(dtype));
    const NDArray a = rank_values(1000, dtype, rank).to(gpu);
    group().all_reduce(a, dist::ReduceOp::Sum);
    std::vector<double> sum(1000, 0.0);
    for (int r = 0; r < size; ++r) {
      const std::vector<double> v = host(rank_values(1000, dtype, r));
      for (std::size_t i = 0; i < v.size(); ++i) sum[i] += v[i];
    }
    if (dtype == DType::UInt8) {
      for (double& v : sum) v = std::fmod(v, 256.0);  // wraps, as it would in MPI
    }
    EXPECT_EQ(host(a.to(cpu_device())), sum);
    const NDArray b = rank_values(7, dtype, rank).to(gpu);
    group().broadcast(b, size - 1);
    EXPECT_EQ(host(b.to(cpu_device())), host(rank_values(7, dtype, size - 1)));
    const NDArray gathered = group().all_gather(rank_values(3, dtype, rank).to(gpu));
    EXPECT_EQ(gathered.shape(), (Shape{size, 3}));
  }
  const NDArray rows = NDArray::full({2 * size, 3}, Scalar(1.0), DType::Float32, gpu);
  EXPECT_EQ(host(group().reduce_scatter(rows, dist::ReduceOp::Average).to(cpu_device())), std::vector<double>(6, 1.0));
}

// An MLP of float64 layers whose weights depend on `seed`.
std::shared_ptr<nn::Sequential> mlp(std::uint64_t seed, std::int64_t width = 6, int hidden_layers = 1) {
  manual_seed(seed);
  std::vector<std::shared_ptr<nn::Module>> layers{
      std::make_shared<nn::Linear>(4, width, true, cpu_device(), DType::Float64)};
  for (int i = 0; i < hidden_layers; ++i) {
    layers.push_back(std::make_shared<nn::ReLU>());
    layers.push_back(std::make_shared<nn::Linear>(width, width, true, cpu_device(), DType::Float64));
  }
  layers.push_back(std::make_shared<nn::ReLU>());
  layers.push_back(std::make_shared<nn::Linear>(width, 2, true, cpu_device(), DType::Float64));
  return std::make_shared<nn::Sequential>(layers);
}

// Every rank's copy of every parameter, gathered: equal bit for bit across ranks.
void expect_ranks_bitwise_equal(const nn::Module& module) {
  for (const auto& [name, p] : module.named_parameters()) {
    const NDArray gathered = group().all_gather(p.value());
    const std::vector<double> all = gathered.to_vector<double>();
    const auto per_rank = static_cast<std::size_t>(p.size());
    for (int r = 1; r < group().size(); ++r) {
      EXPECT_EQ(std::memcmp(all.data(), all.data() + per_rank * static_cast<std::size_t>(r), per_rank * sizeof(double)),
                0)
          << name << " differs between rank 0 and rank " << r;
    }
  }
}

TEST(DistributedDataParallel, RanksMatchOneProcessOnTheWholeBatch) {
  const int size = group().size();
  const int rank = group().rank();
  auto local = mlp(100 + static_cast<std::uint64_t>(rank));  // a different seed on every rank
  dist::DistributedDataParallel ddp(local, dist::ReducerOptions{/*bucket_cap_mb=*/0.0002});
  expect_ranks_bitwise_equal(*local);  // rank 0's values everywhere
  auto whole = mlp(999);
  whole->load_state_dict(local->state_dict());

  optim::SGD ddp_sgd(ddp.parameters(), 0.1, 0.5);
  optim::SGD whole_sgd(whole->parameters(), 0.1, 0.5);
  const std::int64_t per_rank = 3;
  Generator data(7);  // the same global batches on every rank
  for (int step = 0; step < 4; ++step) {
    const NDArray x = rand({per_rank * size, 4}, -1, 1, DType::Float64, cpu_device(), &data);
    const NDArray y = rand({per_rank * size, 2}, -1, 1, DType::Float64, cpu_device(), &data);
    const auto mse = [](const Tensor& out, const Tensor& target) {
      const Tensor d = out - target;
      return ops::summation(d * d) / Scalar(static_cast<double>(out.size()));
    };
    const Index mine{IndexItem::range(rank * per_rank, (rank + 1) * per_rank)};
    ddp_sgd.reset_grad();
    mse(ddp(Tensor(x.index(mine).compact())), Tensor(y.index(mine).compact())).backward();
    ddp_sgd.step();
    whole_sgd.reset_grad();
    mse((*whole)(Tensor(x)), Tensor(y)).backward();
    whole_sgd.step();
  }
  const auto got = local->named_parameters();
  const auto expected = whole->named_parameters();
  for (std::size_t i = 0; i < got.size(); ++i) {
    const std::vector<double> a = host(got[i].second.value());
    const std::vector<double> b = host(expected[i].second.value());
    for (std::size_t j = 0; j < a.size(); ++j) EXPECT_NEAR(a[j], b[j], 1e-12) << got[i].first << "[" << j << "]";
  }
  expect_ranks_bitwise_equal(*local);
  EXPECT_EQ(ddp.reducer().stats().steps, 4);
  EXPECT_GT(ddp.reducer().stats().buckets, 1);
}

// Backward of this model takes tens of milliseconds at one thread, so even with more ranks than cores the
// communication thread gets to run before it ends.
TEST(DistributedDataParallel, FirstBucketStartsBeforeBackwardEnds) {
  auto model = mlp(5, 512, 6);
  dist::DistributedDataParallel ddp(model, dist::ReducerOptions{/*bucket_cap_mb=*/0.6});
  ASSERT_GT(ddp.reducer().stats().buckets, 3);
  const Tensor x(rand({256, 4}, -1, 1, DType::Float64, cpu_device()));
  for (int step = 0; step < 2; ++step) ops::summation(ddp(x)).backward();
  const auto& timeline = ddp.reducer().last_timeline();
  ASSERT_FALSE(timeline.buckets.empty());
  EXPECT_LT(timeline.buckets.front().queued_at, timeline.backward_end)
      << "the first bucket was handed to the communication thread only after backward ended";
  EXPECT_LT(timeline.buckets.front().started_at, timeline.backward_end)
      << "the first bucket's all-reduce started only after backward ended";
  EXPECT_GT(ddp.reducer().stats().total_comm_seconds, 0);
}

TEST(DistributedDataParallel, DifferentModelsAreRefusedOnEveryRank) {
  if (group().size() < 2) GTEST_SKIP() << "needs at least 2 ranks to differ";
  auto model = mlp(1, group().rank() == 1 ? 5 : 6);
  try {
    dist::DistributedDataParallel ddp(model);
    ADD_FAILURE() << "no error";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("on rank 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("0.weight"), std::string::npos) << e.what();
  }
}

TEST(DistributedDataParallel, NoSyncAccumulatesThenAverages) {
  const int rank = group().rank();
  auto model = mlp(3);
  dist::DistributedDataParallel ddp(model);
  const auto loss = [&](double scale) {
    return ops::summation(ddp(Tensor(NDArray::full({2, 4}, Scalar(scale * (rank + 1)), DType::Float64, cpu_device()))));
  };
  {
    auto guard = ddp.no_sync();
    loss(1.0).backward();
  }
  const std::vector<double> local_first = host(model->parameters().front().grad().value());
  loss(2.0).backward();
  // Gradients are linear in the input scale for this first layer's weight: local grads g(1) + g(2)
  // averaged over ranks; rank 0's and rank 1's differ before, agree after.
  expect_ranks_bitwise_equal(*model);
  const NDArray grad = model->parameters().front().grad().value().copy();
  const NDArray gathered = group().all_gather(grad);
  EXPECT_EQ(host(gathered.index({IndexItem::at(0)})), host(gathered.index({IndexItem::at(group().size() - 1)})));
  EXPECT_NE(host(grad), local_first);
}

TEST(SyncBatchNorm, RanksOnPartsEqualBatchNormOnTheWholeBatch) {
  const int size = group().size();
  const int rank = group().rank();
  Generator data(21);
  const std::int64_t per_rank = 3;
  const NDArray x = rand({per_rank * size, 2, 3, 3}, -2, 2, DType::Float64, cpu_device(), &data);
  const NDArray weights = rand(x.shape(), -1, 1, DType::Float64, cpu_device(), &data);
  nn::BatchNorm2d reference(2, 1e-5, 0.1, cpu_device(), DType::Float64);
  dist::SyncBatchNorm sync(2, 1e-5, 0.1, cpu_device(), DType::Float64);
  const Tensor x_all(x.copy(), true);
  const Tensor y_all = reference(x_all);
  ops::summation(y_all * Tensor(weights)).backward();
  const Index mine{IndexItem::range(rank * per_rank, (rank + 1) * per_rank)};
  const Tensor x_mine(x.index(mine).compact(), true);
  const Tensor y_mine = sync(x_mine);
  ops::summation(y_mine * Tensor(weights.index(mine).compact())).backward();
  const auto near = [](const std::vector<double>& a, const std::vector<double>& b) {
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-10) << i;
  };
  near(host(y_mine.value()), host(y_all.value().index(mine)));
  near(host(x_mine.grad().value()), host(x_all.grad().value().index(mine)));
  for (const char* name : {"weight", "bias"}) {
    const NDArray g = sync.parameter(name).grad().value().copy();
    group().all_reduce(g, dist::ReduceOp::Sum);  // each rank holds its share of the parameter gradient
    near(host(g), host(reference.parameter(name).grad().value()));
  }
  for (const char* name : {"running_mean", "running_var"}) {
    near(host(sync.buffer(name).value()), host(reference.buffer(name).value()));
  }
}

}  // namespace
}  // namespace needle
