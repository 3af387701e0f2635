// Twin-VAE network of paper 003, layer by layer as the authors' vae/VAE.py (CODE-FACTS 4.2): two
// domain-specific readers and writers (synthetic, natural) around a shared encoder, bottleneck (latent 256),
// decoder and count regressor. Input 1x128x128 in [0,1]; no padding anywhere.
#pragma once
#include <cstdint>
#include <string>
#include <torch/torch.h>

namespace cellcount::twinvae {

constexpr int64_t kSide = 128;  // the network's input and output side

// ConvTranspose2d(in, out, k, stride s, no padding) computed as one convolution to out*s*s channels followed by
// pixel_shuffle(s) and a crop: the exact same function (CODE-FACTS 4.2's writers), about twice as fast on CPU
// as LibTorch's transposed convolution here. Parameters are stored in ConvTranspose2d's layout
// (weight [in, out, k, k], bias [out]) and initialised by ConvTranspose2d itself, so weights move between the
// two freely (the equivalence test copies them). Derivation: output p = s*q + a (phase a in [0,s)) collects
// x[q - m] * W[.., s*m + a] for m in [0, M), M = ceil(k/s): a full correlation of x (padded by M-1) with the
// flipped phase kernels, whose outputs pixel_shuffle interleaves; the result is (H+M-1)*s long and its first
// (H-1)*s + k samples are the transposed convolution.
struct ConvT2dImpl : torch::nn::Module {
  ConvT2dImpl(int64_t in, int64_t out, int64_t k, int64_t s);
  torch::Tensor forward(const torch::Tensor& x);
  // The equivalent convolution's weight [out*s*s, in, M, M] (differentiable in `weight`).
  torch::Tensor conv_weight() const;
  int64_t in_ch, out_ch, k, s, m;
  torch::Tensor weight, bias;
};
TORCH_MODULE(ConvT2d);

// Which reader/writer pair a pass uses.
enum class Domain { synthetic, natural };
Domain parse_domain(const std::string& s);
const char* domain_name(Domain d);

struct Output {
  torch::Tensor recon;   // [B,1,128,128] in (0,1), undefined when the writer was skipped
  torch::Tensor mu, logvar, z;
  torch::Tensor count;   // [B] regressor(z)
};

struct TwinVaeImpl : torch::nn::Module {
  // h_dim 512, z_dim 256, dropouts 0.1, LeakyReLU 0.2: the authors' defaults.
  TwinVaeImpl(int64_t h_dim = 512, int64_t z_dim = 256, double dropout_enc = 0.1, double dropout_fc = 0.1,
              double leak = 0.2);
  // x [B,1,128,128] in [0,1]. `sample`: z = mu + eps * exp(logvar/2) (training, the authors' test protocol),
  // else z = mu. `gen`: generator of eps (undefined = LibTorch's global one). `decode`: run fc3, the shared
  // decoder and the writer (false during a transfer without the decoder, and for counting only).
  Output forward(const torch::Tensor& x, Domain d, bool sample, bool decode, c10::optional<at::Generator> gen = {});
  // Decode a latent with a domain's writer (the natural-to-synthetic translation decodes a natural frame's
  // latent with the synthetic writer).
  torch::Tensor decode(const torch::Tensor& z, Domain d);
  torch::nn::Sequential& reader(Domain d) { return d == Domain::synthetic ? synth_reader : natural_reader; }
  torch::nn::Sequential& writer(Domain d) { return d == Domain::synthetic ? synth_writer : natural_writer; }

  int64_t h_dim, z_dim;
  torch::nn::Sequential synth_reader{nullptr}, natural_reader{nullptr}, common_encoder{nullptr};
  torch::nn::Sequential fc1{nullptr}, fc2{nullptr}, fc3{nullptr}, regressor{nullptr};
  torch::nn::Sequential common_decoder{nullptr}, synth_writer{nullptr}, natural_writer{nullptr};
};
TORCH_MODULE(TwinVae);

// The loss of learner.loss_function (CODE-FACTS 4.3) of one batch. `label` [B] float, 0 = unlabelled: the
// prediction of an unlabelled frame is set to 0 before the MSE (it adds no error but counts in the batch
// mean, as upstream). beta = 1/(batch_size * 128*128) with the configured batch size (4.8 item 5).
// `o.recon` undefined (decoder off): the reconstruction term is left out; the KL term stays (it shapes the
// latent the regressor reads). `count_on` false: the count term is 0 (upstream's regressor_start).
struct LossParts {
  torch::Tensor total, rec, kl, count;
};
struct LossWeights {
  double rec = 1e3, kl = 1.0, count = 1.0;
  int64_t batch_size = 128;
  // The count MSE's mean: over the whole batch, unlabelled frames included (false, upstream), or over the
  // labelled frames only (true, our option: a natural batch with 2 labelled frames of 32 then weighs them as a
  // synthetic batch weighs its frames, instead of 16 times less).
  bool count_over_labelled = false;
};
LossParts twinvae_loss(const Output& o, const torch::Tensor& x, const torch::Tensor& label, const LossWeights& w,
                       bool count_on);

}  // namespace cellcount::twinvae
