// needle::dist in one process: the gradient hooks it is built on, the call-agreement records, the
// one-process group, DistributedSampler's shards, SyncBatchNorm against BatchNorm, and GradientReducer's
// buckets. The same pieces across several processes are tested by tests/cpp/dist (under mpirun).
#include <gtest/gtest.h>
#include <needle/autograd/engine.h>
#include <needle/dist/ddp.h>
#include <needle/dist/process_group.h>
#include <needle/dist/sampler.h>
#include <needle/dist/sync_batch_norm.h>
#include <needle/needle.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "dist/collective_check.h"
#include "nn_test_util.h"

namespace needle {
namespace {

using testing::host;

// A two-layer MLP in float64 with its input and a scalar loss.
struct TinyMlp {
  std::shared_ptr<nn::Sequential> model;
  Tensor x;
  TinyMlp() {
    model = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(5, 7, true, cpu_device(), DType::Float64), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Linear>(7, 3, true, cpu_device(), DType::Float64)});
    x = Tensor(testing::random_array({4, 5}, cpu_device(), 11));
  }
  [[nodiscard]] Tensor loss() const { return ops::summation(ops::power_scalar((*model)(x), Scalar(2.0))); }
};

TEST(GradHooks, FireOncePerPassWithTheFinalGradientLastLayerFirst) {
  TinyMlp mlp;
  const auto params = mlp.model->named_parameters();
  std::vector<std::string> fired;
  std::vector<std::vector<double>> seen;
  for (const auto& [name, p] : params) {
    p.register_post_accumulate_grad_hook([&fired, &seen, name = name](const Tensor& t) {
      fired.push_back(name);
      seen.push_back(host(t.grad()));
    });
  }
  bool callback_ran = false;
  std::size_t hooks_before_callback = 0;
  params.front().second.register_post_accumulate_grad_hook([&](const Tensor&) {
    autograd::queue_callback([&] {
      callback_ran = true;
      hooks_before_callback = fired.size();
    });
  });
  mlp.loss().backward();
  ASSERT_EQ(fired.size(), params.size());
  EXPECT_TRUE(callback_ran);
  EXPECT_EQ(hooks_before_callback, params.size()) << "the end-of-backward callback runs after every hook";
  // The gradient a hook saw is the one backward leaves.
  for (std::size_t i = 0; i < fired.size(); ++i) {
    const auto it = std::find_if(params.begin(), params.end(), [&](const auto& e) { return e.first == fired[i]; });
    EXPECT_EQ(seen[i], host(it->second.grad())) << fired[i];
  }
  // The last layer's parameters are ready before the first layer's (what lets buckets start early).
  const auto pos = [&](const std::string& name) { return std::find(fired.begin(), fired.end(), name) - fired.begin(); };
  EXPECT_LT(pos("2.weight"), pos("0.weight"));
  EXPECT_LT(pos("2.bias"), pos("0.bias"));
}

TEST(GradHooks, RemovedHooksDoNotFireAndNonLeavesAreRefused) {
  TinyMlp mlp;
  const Tensor w = mlp.model->named_parameters().front().second;
  int calls = 0;
  const std::uint64_t id = w.register_post_accumulate_grad_hook([&](const Tensor&) { ++calls; });
  mlp.loss().backward();
  EXPECT_EQ(calls, 1);
  w.remove_post_accumulate_grad_hook(id);
  mlp.loss().backward();
  EXPECT_EQ(calls, 1);
  const Tensor y = mlp.loss();
  EXPECT_THROW(y.register_post_accumulate_grad_hook([](const Tensor&) {}), TypeError);
  EXPECT_THROW(autograd::queue_callback([] {}), RuntimeError);
}

TEST(CollectiveCheck, RecordsDescribeTheCallAndDisagreementNamesEveryRank) {
  using dist::detail::CallRecord;
  using dist::detail::CollectiveKind;
  const CallRecord a = CallRecord::describe(CollectiveKind::AllReduce, 3, DType::Float32, {2, 3}, 0);
  EXPECT_EQ(a.str(), "all_reduce #3 (float32, shape (2, 3), op sum)");
  EXPECT_EQ(CallRecord::describe(CollectiveKind::Broadcast, 0, DType::Int64, {5}, 1).str(),
            "broadcast #0 (int64, shape (5,), root 1)");
  EXPECT_NO_THROW(dist::detail::check_agreement({a, a, a}));
  const CallRecord b = CallRecord::describe(CollectiveKind::AllReduce, 3, DType::Float32, {3}, 0);
  try {
    dist::detail::check_agreement({a, b});
    FAIL() << "no error";
  } catch (const RuntimeError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("rank 0 called all_reduce #3 (float32, shape (2, 3), op sum)"), std::string::npos)
        << message;
    EXPECT_NE(message.find("rank 1 called all_reduce #3 (float32, shape (3,), op sum)"), std::string::npos) << message;
  }
  // Shapes beyond the stored dimensions still count.
  const CallRecord deep1 = CallRecord::describe(CollectiveKind::AllReduce, 0, DType::Float32, Shape(10, 1), 0);
  Shape other(10, 1);
  other[9] = 2;
  other[8] = 1;
  const CallRecord deep2 = CallRecord::describe(CollectiveKind::AllReduce, 0, DType::Float32, other, 0);
  EXPECT_THROW(dist::detail::check_agreement({deep1, deep2}), RuntimeError);
}

TEST(LocalGroup, CollectivesOfOneRankAreTheIdentity) {
  dist::ProcessGroup& group = dist::init();
  ASSERT_EQ(group.size(), 1);
  EXPECT_EQ(group.rank(), 0);
  EXPECT_EQ(group.backend(), "local");
  const NDArray a = testing::random_array({3, 4}, cpu_device(), 5);
  const std::vector<double> before = host(a);
  group.all_reduce(a, dist::ReduceOp::Sum);
  group.all_reduce(a, dist::ReduceOp::Average);
  group.all_reduce(a, dist::ReduceOp::Max);
  group.broadcast(a, 0);
  group.barrier();
  EXPECT_EQ(host(a), before);
  const NDArray gathered = group.all_gather(a);
  EXPECT_EQ(gathered.shape(), (Shape{1, 3, 4}));
  EXPECT_EQ(host(gathered), before);
  EXPECT_EQ(host(group.reduce_scatter(a)), before);
  // Argument errors are the same as with several ranks.
  EXPECT_THROW(group.all_reduce(NDArray::arange(4), dist::ReduceOp::Average), TypeError);
  EXPECT_THROW(group.broadcast(a, 1), IndexError);
  EXPECT_THROW((void)group.all_gather_async(NDArray::empty({2, 3, 4}, DType::Float64), a), ValueError);
  EXPECT_THROW((void)group.all_gather_async(NDArray::empty({1, 3, 4}, DType::Float32), a), TypeError);
  EXPECT_THROW(dist::reduce_op_from_name("min"), ValueError);
}

// PyTorch's DistributedSampler without shuffling: the list padded by its start to a multiple of the
// ranks (or cut with drop_last), rank r taking every size-th entry from r.
TEST(DistributedSampler, ShardsLikePyTorch) {
  const auto shard = [](std::int64_t n, int ranks, int rank, bool drop_last) {
    return dist::DistributedSampler(n, ranks, rank, false, 0, drop_last).indices();
  };
  EXPECT_EQ(shard(10, 3, 0, false), (std::vector<std::int64_t>{0, 3, 6, 9}));
  EXPECT_EQ(shard(10, 3, 1, false), (std::vector<std::int64_t>{1, 4, 7, 0}));
  EXPECT_EQ(shard(10, 3, 2, false), (std::vector<std::int64_t>{2, 5, 8, 1}));
  EXPECT_EQ(shard(10, 3, 2, true), (std::vector<std::int64_t>{2, 5, 8}));
  EXPECT_EQ(shard(2, 4, 3, false), (std::vector<std::int64_t>{1}));  // padded more than once
  EXPECT_TRUE(shard(0, 2, 1, false).empty());
}

TEST(DistributedSampler, ShardsAreDisjointCoverTheDatasetAndAgreeOnTheShuffle) {
  for (const std::int64_t n : {1, 7, 10, 13, 64}) {
    for (const int ranks : {1, 2, 3, 4}) {
      for (const bool drop_last : {false, true}) {
        SCOPED_TRACE(str("n=", n, " ranks=", ranks, " drop_last=", drop_last));
        std::multiset<std::int64_t> all;
        std::size_t expected_each = 0;
        for (int r = 0; r < ranks; ++r) {
          dist::DistributedSampler sampler(n, ranks, r, true, 42, drop_last);
          sampler.set_epoch(3);
          const auto mine = sampler.indices();
          EXPECT_EQ(static_cast<std::int64_t>(mine.size()), sampler.size());
          if (r == 0) expected_each = mine.size();
          EXPECT_EQ(mine.size(), expected_each) << "every rank gets as many indices";
          all.insert(mine.begin(), mine.end());
        }
        const std::set<std::int64_t> distinct(all.begin(), all.end());
        if (drop_last) {
          EXPECT_EQ(distinct.size(), all.size()) << "no index twice";
          EXPECT_EQ(static_cast<std::int64_t>(all.size()), n / ranks * ranks);
        } else {
          EXPECT_EQ(static_cast<std::int64_t>(distinct.size()), n) << "every index read";
          EXPECT_LT(all.size() - distinct.size(), static_cast<std::size_t>(ranks)) << "padding below one per rank";
        }
      }
    }
  }
  dist::DistributedSampler a(100, 2, 0, true, 7);
  dist::DistributedSampler b(100, 2, 0, true, 7);
  EXPECT_EQ(a.indices(), b.indices());
  b.set_epoch(1);
  EXPECT_NE(a.indices(), b.indices()) << "set_epoch reshuffles";
  EXPECT_THROW(dist::DistributedSampler(10, 2, 2), IndexError);
  EXPECT_THROW(dist::DistributedSampler(-1, 2, 0), ValueError);
}

// With one rank SyncBatchNorm is BatchNorm: forward, running statistics, gradients, eval mode.
TEST(SyncBatchNorm, OneRankEqualsBatchNorm) {
  for (const Shape& shape : {Shape{6, 3}, Shape{4, 3, 5, 2}}) {
    SCOPED_TRACE(shape_str(shape));
    std::shared_ptr<nn::Module> reference;
    if (shape.size() == 2) {
      reference = std::make_shared<nn::BatchNorm1d>(3, 1e-5, 0.1, cpu_device(), DType::Float64);
    } else {
      reference = std::make_shared<nn::BatchNorm2d>(3, 1e-5, 0.1, cpu_device(), DType::Float64);
    }
    dist::SyncBatchNorm sync(3, 1e-5, 0.1, cpu_device(), DType::Float64);
    const NDArray w = testing::random_array({3}, cpu_device(), 3);
    for (nn::Module* m : {reference.get(), static_cast<nn::Module*>(&sync)}) {
      m->load_state_dict({{"weight", w},
                          {"bias", w * Scalar(0.5)},
                          {"running_mean", w * Scalar(0.1)},
                          {"running_var", NDArray::full({3}, Scalar(2.0), DType::Float64)}});
    }
    const NDArray x = testing::random_array(shape, cpu_device(), 8);
    const NDArray weights = testing::random_array(shape, cpu_device(), 9);
    for (const bool training : {true, false}) {
      reference->train(training);
      sync.train(training);
      const Tensor xr(x.copy(), true);
      const Tensor xs(x.copy(), true);
      const Tensor yr = (*reference)(xr);
      const Tensor ys = sync(xs);
      testing::expect_all_near(host(ys), host(yr), 1e-10);
      ops::summation(yr * Tensor(weights)).backward();
      ops::summation(ys * Tensor(weights)).backward();
      testing::expect_all_near(host(xs.grad()), host(xr.grad()), 1e-9);
      for (const char* name : {"weight", "bias"}) {
        testing::expect_all_near(host(sync.parameter(name).grad()), host(reference->parameter(name).grad()), 1e-9);
      }
      for (const char* name : {"running_mean", "running_var"}) {
        testing::expect_all_near(host(sync.buffer(name)), host(reference->buffer(name)), 1e-12);
      }
      reference->zero_grad();
      sync.zero_grad();
    }
  }
}

TEST(SyncBatchNorm, GradientsMatchFiniteDifferences) {
  dist::SyncBatchNorm sync(2, 1e-5, 0.1, cpu_device(), DType::Float64);
  testing::expect_gradients_match(
      [&](const std::vector<Tensor>& in) {
        sync.set_parameter("weight", in[1]);
        sync.set_parameter("bias", in[2]);
        return sync(in[0]);
      },
      {testing::random_array({3, 2, 2}, cpu_device(), 1), testing::random_array({2}, cpu_device(), 2),
       testing::random_array({2}, cpu_device(), 3)});
  EXPECT_THROW(sync(Tensor(NDArray::zeros({3, 4}, DType::Float64))), ValueError);
}

TEST(GradientReducer, BucketsInReverseOrderAndGradientsOfOneRankUnchanged) {
  TinyMlp mlp;
  TinyMlp plain;
  plain.model->load_state_dict(mlp.model->state_dict());
  dist::DistributedDataParallel ddp(mlp.model, dist::ReducerOptions{/*bucket_cap_mb=*/1e-4});
  // A cap below every parameter's size: one parameter per bucket, last registered first.
  const auto buckets = ddp.reducer().bucket_names();
  ASSERT_EQ(buckets.size(), 4U);
  EXPECT_EQ(buckets.front(), std::vector<std::string>{"2.bias"});
  EXPECT_EQ(buckets.back(), std::vector<std::string>{"0.weight"});
  EXPECT_EQ(ddp.named_parameters().front().first, "module.0.weight");
  for (int step = 0; step < 2; ++step) {
    mlp.loss().backward();
    plain.loss().backward();
  }
  const auto mine = mlp.model->named_parameters();
  const auto expected = plain.model->named_parameters();
  for (std::size_t i = 0; i < mine.size(); ++i) {
    testing::expect_all_near(host(mine[i].second.grad()), host(expected[i].second.grad()), 1e-12);
  }
  EXPECT_EQ(ddp.reducer().stats().steps, 2);
  {
    auto guard = ddp.no_sync();
    mlp.loss().backward();
  }
  EXPECT_EQ(ddp.reducer().stats().steps, 2) << "no_sync backward passes are not reduced";
  const auto big = dist::DistributedDataParallel(TinyMlp().model).reducer().bucket_names();
  EXPECT_EQ(big.size(), 1U) << "everything fits one 25 MB bucket";
}

// A model that fits one 25 MB bucket still gets a small first bucket, so its all-reduce can start while
// backward goes through the first layer.
TEST(GradientReducer, TheFirstBucketIsSmall) {
  const auto make = [] {
    return std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Module>>{
        std::make_shared<nn::Linear>(784, 512), std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(512, 256),
        std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(256, 10)});
  };
  const auto buckets = dist::DistributedDataParallel(make()).reducer().bucket_names();
  ASSERT_EQ(buckets.size(), 2U);  // 1 MB: the last two layers and the first bias; then the 1.6 MB weight
  EXPECT_EQ(buckets[0], (std::vector<std::string>{"4.bias", "4.weight", "2.bias", "2.weight", "0.bias"}));
  EXPECT_EQ(buckets[1], std::vector<std::string>{"0.weight"});
  EXPECT_EQ(dist::DistributedDataParallel(make(), dist::ReducerOptions{25, false, 25}).reducer().bucket_names().size(),
            1U);
  EXPECT_THROW(dist::DistributedDataParallel(make(), dist::ReducerOptions{25, false, 0}), ValueError);
}

TEST(GradientReducer, UnusedParametersAreAnErrorUnlessAllowed) {
  for (const bool allow : {false, true}) {
    TinyMlp mlp;
    auto extra = std::make_shared<nn::Linear>(2, 2, true, cpu_device(), DType::Float64);
    auto both = std::make_shared<nn::ModuleList>(std::vector<std::shared_ptr<nn::Module>>{mlp.model, extra});
    dist::DistributedDataParallel ddp(both, dist::ReducerOptions{25, allow});
    if (allow) {
      mlp.loss().backward();
      EXPECT_EQ(host(extra->parameter("weight").grad()), std::vector<double>(4, 0.0));
    } else {
      try {
        mlp.loss().backward();
        FAIL() << "no error";
      } catch (const RuntimeError& e) {
        EXPECT_NE(std::string(e.what()).find("'1.weight'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("find_unused_parameters"), std::string::npos) << e.what();
      }
      // The next step works once every parameter gets a gradient.
      ops::summation((*extra)(Tensor(NDArray::ones({1, 2}, DType::Float64))) + mlp.loss()).backward();
      EXPECT_TRUE(extra->parameter("weight").grad().defined());
    }
  }
}

}  // namespace
}  // namespace needle
