// The inference copies' convolutions with their weights packed once for oneDNN and the ReLU after them fused
// (issue 25). LibTorch's plain conv2d reorders the weights into oneDNN's blocked layout on every call, copies a
// channels-last copy of them in bf16, and the ReLU after it is one more pass over the activations: at 1024 x 1024
// (dcl-vgg, bf16, 2 threads) those reorders and ReLUs took longer than the convolutions themselves. LibTorch's own
// mkldnn_prepacked::conv2d_prepack / conv2d_run (the operators its JIT's frozen graphs use) do the packing once and
// the ReLU as a post-op. Results are those of conv2d + relu (the same oneDNN kernels; equal to the bit in the
// checks of tests/unit/core/test_packed_conv.cpp). Defined once, here; dcl and exemplar use it.
#pragma once
#include <atomic>
#include <mutex>

#include <torch/torch.h>

namespace cellcount {

struct UNetImpl;

// A Conv2d, optionally followed by a ReLU, for inference. forward uses the packed operator when it applies (CPU,
// fp32 or bf16 input of the weights' type, or under CPU autocast its type with the weights cast to it once, as
// autocast's conv2d would per call; no gradient wanted, not tracing, zero padding, the operator present in this
// LibTorch), packing on first use and again when the weights' storage, type or the input's memory format change;
// otherwise conv->forward (and relu). The weights stay in `conv`, so .to(device, dtype) moves them as usual.
// Safe to call from several threads at once (parallel tiles): the packing is done under a lock, and the packed
// operator only reads its context.
struct PackedConvImpl : torch::nn::Module {
  PackedConvImpl(torch::nn::Conv2d conv, bool relu);
  torch::Tensor forward(const torch::Tensor& x);
  // Whether the last forward ran the packed operator (for the tests).
  bool last_packed() const { return last_packed_; }

  torch::nn::Conv2d conv{nullptr};
  bool relu = false;

 private:
  static torch::ScalarType compute_type(const torch::Tensor& x);
  bool packable(const torch::Tensor& x, torch::ScalarType compute) const;  // compute = compute_type(x)
  std::mutex packing_;  // guards the four below
  c10::IValue context_;
  const void* packed_weights_ = nullptr;
  torch::ScalarType packed_type_ = torch::kFloat32;
  bool packed_channels_last_ = false;
  std::atomic<bool> last_packed_{false};
};
TORCH_MODULE(PackedConv);

// 2 x 2 max-pooling, stride 2 (floor mode, as MaxPool2d(2)). Without gradient it is the maximum of the four
// strided quarters (the same values: max is exact; 8x faster than LibTorch 1.13's max_pool2d on NCHW tensors, which
// also computes indices); with gradient, or while tracing (an exported graph keeps max_pool2d), F::max_pool2d.
torch::Tensor max_pool_2x2(const torch::Tensor& x);

struct MaxPool2x2Impl : torch::nn::Module {
  torch::Tensor forward(const torch::Tensor& x) { return max_pool_2x2(x); }
};
TORCH_MODULE(MaxPool2x2);

// The same modules for inference: each Conv2d (followed or not by a ReLU) as a PackedConv, each MaxPool2d of
// kernel and stride 2 without padding or dilation as a MaxPool2x2; others kept. Fold BatchNorms first.
torch::nn::Sequential pack_for_inference(const torch::nn::Sequential& s);

// The UNet's convolutions packed in place: its blocks (down, bottom, up_conv), and packed_up / packed_out made.
void pack_for_inference(UNetImpl& u);

}  // namespace cellcount
