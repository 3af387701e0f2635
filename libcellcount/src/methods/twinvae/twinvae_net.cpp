#include "methods/twinvae/twinvae_net.h"

#include "core/error.h"

namespace cellcount::twinvae {

namespace F = torch::nn::functional;

ConvT2dImpl::ConvT2dImpl(int64_t in, int64_t out, int64_t k_, int64_t s_)
    : in_ch(in), out_ch(out), k(k_), s(s_), m((k_ + s_ - 1) / s_) {
  // Initialised by LibTorch's own ConvTranspose2d (same distribution and fan-in as upstream's nn.ConvTranspose2d).
  torch::nn::ConvTranspose2d ref(torch::nn::ConvTranspose2dOptions(in, out, k).stride(s));
  weight = register_parameter("weight", ref->weight.detach().clone());
  bias = register_parameter("bias", ref->bias.detach().clone());
}

torch::Tensor ConvT2dImpl::conv_weight() const {
  // [in, out, k, k] -> zero-padded to [in, out, M*s, M*s] -> [in, out, M, s, M, s] (tap t = m*s + a) -> m flipped
  // -> [out, s(a_y), s(a_x), in, M, M] -> [out*s*s, in, M, M] (pixel_shuffle's channel order o*s*s + a_y*s + a_x).
  auto w = F::pad(weight, F::PadFuncOptions({0, m * s - k, 0, m * s - k}));
  w = w.view({in_ch, out_ch, m, s, m, s}).flip({2, 4});
  return w.permute({1, 3, 5, 0, 2, 4}).reshape({out_ch * s * s, in_ch, m, m});
}

torch::Tensor ConvT2dImpl::forward(const torch::Tensor& x) {
  const int64_t h = x.size(2), w = x.size(3);
  auto y = F::conv2d(x, conv_weight(), F::Conv2dFuncOptions().padding(m - 1).bias(bias.repeat_interleave(s * s)));
  if (s > 1) y = F::pixel_shuffle(y, s);
  return y.slice(2, 0, (h - 1) * s + k).slice(3, 0, (w - 1) * s + k);
}

Domain parse_domain(const std::string& s) {
  if (s == "synthetic") return Domain::synthetic;
  if (s == "natural") return Domain::natural;
  fail(CELLCOUNT_ERR_INVALID_ARGUMENT, "twinvae: domain must be \"synthetic\" or \"natural\", not \"" + s + "\"");
}
const char* domain_name(Domain d) { return d == Domain::synthetic ? "synthetic" : "natural"; }

namespace {
torch::nn::Sequential make_reader(double drop, double leak) {
  torch::nn::Sequential r;
  int64_t c = 1;
  for (int64_t o : {32, 64, 128, 256}) {  // 128 -> 62 -> 29 -> 13 -> 5
    r->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(c, o, 5).stride(2)));
    r->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(leak)));
    r->push_back(torch::nn::Dropout(drop));
    c = o;
  }
  return r;
}
torch::nn::Sequential make_writer(double leak) {
  torch::nn::Sequential w;  // 5 -> 13 -> 29 -> 61 -> 62 -> 128 (indices as upstream: ConvT at 0,3,6,9,12)
  const int64_t spec[4][4] = {{256, 128, 5, 2}, {128, 64, 5, 2}, {64, 32, 5, 2}, {32, 32, 2, 1}};
  for (const auto& l : spec) {
    w->push_back(ConvT2d(l[0], l[1], l[2], l[3]));
    w->push_back(torch::nn::BatchNorm2d(l[1]));
    w->push_back(torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(leak)));
  }
  w->push_back(ConvT2d(32, 1, 6, 2));
  w->push_back(torch::nn::Sigmoid());
  return w;
}
torch::nn::Sequential linear_drop(int64_t in, int64_t out, double drop) {
  return torch::nn::Sequential(torch::nn::Linear(in, out), torch::nn::Dropout(drop));
}
}  // namespace

TwinVaeImpl::TwinVaeImpl(int64_t h, int64_t z, double dropout_enc, double dropout_fc, double leak)
    : h_dim(h), z_dim(z) {
  synth_reader = register_module("synth_reader", make_reader(dropout_enc, leak));
  natural_reader = register_module("natural_reader", make_reader(dropout_enc, leak));
  common_encoder = register_module(
      "common_encoder",
      torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(256, h, 5).stride(2)),
                            torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(leak)),
                            torch::nn::Dropout(dropout_enc), torch::nn::Flatten()));
  fc1 = register_module("fc1", linear_drop(h, z, dropout_fc));
  fc2 = register_module("fc2", linear_drop(h, z, dropout_fc));
  // No activations: upstream's LeakyReLU lines are commented out, so the count is affine in z (CODE-FACTS 4.2).
  regressor = register_module(
      "regressor", torch::nn::Sequential(torch::nn::Linear(z, 256), torch::nn::Dropout(dropout_fc),
                                         torch::nn::Linear(256, 128), torch::nn::Dropout(dropout_fc),
                                         torch::nn::Linear(128, 1)));
  fc3 = register_module("fc3", linear_drop(z, h, dropout_fc));
  common_decoder = register_module(
      "common_decoder",
      torch::nn::Sequential(torch::nn::Unflatten(torch::nn::UnflattenOptions(1, {h, 1, 1})), ConvT2d(h, 256, 5, 2),
                            torch::nn::BatchNorm2d(256),
                            torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(leak))));
  synth_writer = register_module("synth_writer", make_writer(leak));
  natural_writer = register_module("natural_writer", make_writer(leak));
}

Output TwinVaeImpl::forward(const torch::Tensor& x, Domain d, bool sample, bool decode_too,
                            c10::optional<at::Generator> gen) {
  CC_CHECK(x.dim() == 4 && x.size(1) == 1 && x.size(2) == kSide && x.size(3) == kSide, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "twinvae: the network takes [B,1,128,128]");
  Output o;
  auto h = common_encoder->forward(reader(d)->forward(x));
  o.mu = fc1->forward(h);
  // Choice: the transfer repo's clamp (logvar <= 15), which keeps exp() finite; the original repo has none.
  o.logvar = fc2->forward(h).clamp_max(15.0);
  if (sample) {
    auto eps = at::randn(o.mu.sizes(), gen, o.mu.options());
    o.z = o.mu + eps * torch::exp(0.5 * o.logvar);
  } else {
    o.z = o.mu;
  }
  o.count = regressor->forward(o.z).squeeze(1);  // from z (the sampled one when sampling), as upstream
  if (decode_too) o.recon = decode(o.z, d);
  return o;
}

torch::Tensor TwinVaeImpl::decode(const torch::Tensor& z, Domain d) {
  return writer(d)->forward(common_decoder->forward(fc3->forward(z)));
}

LossParts twinvae_loss(const Output& o, const torch::Tensor& x, const torch::Tensor& label, const LossWeights& w,
                       bool count_on) {
  LossParts p;
  const double beta = 1.0 / (double(w.batch_size) * double(kSide * kSide));
  p.kl = -0.5 * beta * w.kl * torch::sum(1 + o.logvar - o.mu.pow(2) - o.logvar.exp());
  p.rec = o.recon.defined() ? w.rec * F::mse_loss(o.recon, x) : torch::zeros({}, x.options());
  if (count_on) {
    // Label 0 = unlabelled: its prediction is set to 0, so it adds no error but counts in the mean (upstream).
    auto cc = torch::where(label == 0, torch::zeros_like(o.count), o.count);
    if (w.count_over_labelled) {
      const auto n = (label != 0).sum().clamp_min(1).to(cc.scalar_type());
      p.count = w.count * (cc - label).pow(2).sum() / n;
    } else {
      p.count = w.count * F::mse_loss(cc, label);
    }
  } else {
    p.count = torch::zeros({}, x.options());
  }
  p.total = p.rec + p.kl + p.count;
  return p;
}

}  // namespace cellcount::twinvae
