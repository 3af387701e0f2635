// Issue 25: the inference copies' convolutions packed once for oneDNN with their ReLU fused (core/packed_conv.h),
// and the 2 x 2 max-pool of strided maxima, give the plain modules' results; with gradient they fall back.
#include <gtest/gtest.h>

#include <ATen/ThreadLocalState.h>

#include <thread>
#include <vector>

#include "core/packed_conv.h"

using namespace cellcount;
namespace F = torch::nn::functional;

namespace {
torch::nn::Sequential plain_block() {
  torch::manual_seed(3);
  torch::nn::Sequential s;
  s->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).padding(1)));
  s->push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
  s->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
  s->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(8, 4, 3).padding(1).bias(false)));
  s->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 2, 1)));
  s->push_back(torch::nn::ReLU());
  return s;
}

int packed_count(const torch::nn::Sequential& s) {
  int n = 0;
  for (const auto& m : *s)
    if (auto p = std::dynamic_pointer_cast<PackedConvImpl>(m.ptr())) n += p->last_packed();
  return n;
}
}  // namespace

TEST(PackedConv, SequentialGivesThePlainResultsInEveryLayoutAndPrecision) {
  auto plain = plain_block();
  plain->eval();
  auto packed = pack_for_inference(plain);
  ASSERT_EQ(packed->size(), 4u);  // conv+relu, pool, conv, conv+relu: the ReLUs fused, the pool replaced
  EXPECT_TRUE(std::dynamic_pointer_cast<MaxPool2x2Impl>(packed->ptr(1)));
  c10::InferenceMode inference;
  for (const bool channels_last : {false, true})
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      plain->to(dtype);  // packed shares these modules' weights: it packs again when they change
      auto x = torch::randn({2, 3, 20, 18}).to(dtype);
      if (channels_last) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
      const auto want = plain->forward(x).to(torch::kFloat32);
      const auto got = packed->forward(x).to(torch::kFloat32);
      ASSERT_EQ(got.sizes(), want.sizes());
      const double tol = dtype == torch::kFloat32 ? 1e-5 : 2e-2;
      EXPECT_TRUE(torch::allclose(got, want, tol, tol))
          << "channels_last " << channels_last << " dtype " << dtype << ": max difference "
          << (got - want).abs().max().item<double>();
      if (at::hasMKLDNN()) EXPECT_EQ(packed_count(packed), 3) << "the packed operator did not run";
    }
}

TEST(PackedConv, WithGradientItIsThePlainConvolution) {
  auto plain = plain_block();
  auto packed = pack_for_inference(plain);
  auto x = torch::randn({1, 3, 8, 8}, torch::requires_grad());
  const auto y = packed->forward(x);
  EXPECT_EQ(packed_count(packed), 0);
  EXPECT_TRUE(torch::allclose(y, plain->forward(x), 1e-6, 1e-6));
  y.sum().backward();
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0);
}

TEST(PackedConv, MaxPoolOfStridedMaximaIsMaxPool2d) {
  torch::NoGradGuard ng;
  for (const auto& shape : std::vector<std::vector<int64_t>>{{2, 3, 8, 10}, {1, 2, 7, 9}, {1, 1, 3, 2}}) {
    auto x = torch::randn(shape);
    x.view(-1)[5] = NAN;  // max_pool2d propagates NaN; so do the maxima
    const auto want = F::max_pool2d(x, F::MaxPool2dFuncOptions(2).stride(2));
    const auto got = max_pool_2x2(x);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(torch::equal(torch::isnan(got), torch::isnan(want)));
    EXPECT_TRUE(torch::equal(torch::nan_to_num(got), torch::nan_to_num(want)));
    const auto cl = max_pool_2x2(x.contiguous(torch::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(torch::equal(torch::nan_to_num(cl), torch::nan_to_num(want)));
  }
}

TEST(PackedConv, SeveralThreadsAtOnceGetTheirOwnResults) {
  // Parallel tiles (issue 25) call one packed module from several threads, the first calls included (the packing
  // happens under a lock); each thread's result is what the module gives it alone.
  auto plain = plain_block();
  plain->eval();
  auto packed = pack_for_inference(plain);
  c10::InferenceMode inference;
  std::vector<torch::Tensor> inputs, want;
  for (int i = 0; i < 4; ++i) inputs.push_back(torch::randn({1, 3, 24 + 4 * i, 20}));
  for (const auto& x : inputs) want.push_back(plain->forward(x));
  std::vector<torch::Tensor> got(inputs.size());
  std::vector<std::thread> threads;
  const at::ThreadLocalState state;
  for (size_t i = 0; i < inputs.size(); ++i)
    threads.emplace_back([&, i] {
      const at::ThreadLocalStateGuard g(state);
      for (int k = 0; k < 5; ++k) got[i] = packed->forward(inputs[i]);
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < inputs.size(); ++i)
    EXPECT_TRUE(torch::allclose(got[i], want[i], 1e-5, 1e-5)) << "input " << i;
}
