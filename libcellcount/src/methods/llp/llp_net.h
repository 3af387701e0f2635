// The Deep Sparse Detector (paper 002 section 2.2): complex-valued encoder, LocalSoftMax heatmap, sparse
// encoding, reconstruction head through T^-1, and the classifier on the sparse embeddings.
#pragma once
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <utility>
#include <vector>

#include "methods/llp/llp_transform.h"

namespace cellcount::llp {

// Choices (the paper's supplement is not available; every value is recorded in model.json "architecture"):
// encoder 3 complex convolutions (5x5, 5x5, 3x3; receptive field 11 px = 20 um, a large monocyte) of `width`
// channels to `features` (d) maps, complex ReLU after each; LocalSoftMax window m = `window` (7 px) with
// lambda = `lambda` (1); reconstruction head 2 complex convolutions 5x5 (support 9 px); classifier
// FC(E -> hidden) + ReLU + FC(hidden -> K) + softmax on the standardised embedding. The embedding is the
// real and imaginary parts of A at the detection (the paper's x_i = A'(., x_i, y_i), `scales` [1]); with more
// scales (our choice for the shipped models, e.g. [1, 5, 9]) also of A averaged over s x s around it, which
// gives the classifier the cell's extent (E = 2 d |scales|).
struct DsdConfig {
  Optics optics;
  int64_t width = 8, features = 8, window = 7, hidden = 32, classes = 3;
  double lambda = 1.0;
  std::vector<int64_t> scales = {1};
  // Our addition (empty = the paper's embedding): the object-plane energy |I|^2 = |T(x)|^2 averaged over
  // s x s around the detection for each s, a radial profile that measures the cell's extent directly.
  std::vector<int64_t> image_scales = {};
  // Our additions (empty = off): per s in `texture_scales` (odd, >= 3) the local standard deviation of |I|^2
  // over s x s and the mean over s x s of |I|^2's deviation from its own 3 x 3 mean (granularity: granules,
  // lobes and a ground-glass cytoplasm differ there when sizes overlap); per s in `field_scales` the real and
  // imaginary parts of I = T(x) averaged over s x s (the phase delay, which the energy loses).
  std::vector<int64_t> texture_scales = {};
  std::vector<int64_t> field_scales = {};
  // Our addition (0 = off, the paper's: the embedding at the detection): the embedding is taken at the peak of
  // |I|^2 averaged over 5 x 5 within `embed_snap` pixels of the detection (the point reported stays where it
  // was detected), so that every cell's window statistics share one reference point.
  int64_t embed_snap = 0;
  int64_t embedding_size() const {
    return 2 * features * int64_t(scales.size()) + int64_t(image_scales.size()) + 2 * int64_t(texture_scales.size()) +
           2 * int64_t(field_scales.size());
  }
  nlohmann::json to_json() const;
  static DsdConfig from_json(const nlohmann::json& j);  // CELLCOUNT_ERR_INVALID_ARGUMENT / range checks
};

// The classifier on the standardised embedding: FC(E -> hidden) + ReLU + FC(hidden -> K), or with hidden 0 one
// linear layer FC(E -> K) (our option: a linear classifier cannot split a class into arbitrary pieces to meet
// the proportions).
torch::nn::Sequential make_classifier(const DsdConfig& c);

// Complex convolution as a pair of real convolutions (complexPyTorch's apply_complex):
// (f_r(re) - f_i(im)) + i (f_r(im) + f_i(re)).
struct ComplexConvImpl : torch::nn::Module {
  ComplexConvImpl(int64_t in, int64_t out, int64_t k);
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& re, const torch::Tensor& im);
  torch::nn::Conv2d fr{nullptr}, fi{nullptr};
};
TORCH_MODULE(ComplexConv);

// LocalSoftMax of `score` [B,1,H,W]: exp(s(x,y)) / sum over the m x m window centred at (x,y) of exp(s),
// computed as exp(s - logsumexp_window(s)) (stable for any scale; reflect-padded borders).
torch::Tensor local_softmax(const torch::Tensor& score, int64_t m);

struct Encoding {
  torch::Tensor re, im;   // A: [B,d,H,W]
  torch::Tensor heat;     // H_A: [B,1,H,W] in (0,1]
  torch::Tensor energy;   // |I|^2 of the input in the object plane: [B,1,H,W]
  torch::Tensor field;    // I = T(x) as [B,2,H,W] (real, imaginary), detached
};

struct DsdNetImpl : torch::nn::Module {
  explicit DsdNetImpl(const DsdConfig& c);
  // x: [B,1,H,W] normalised image (real); I = T(x) enters the encoder.
  Encoding encode(const torch::Tensor& x);
  // The training mask M_A: heatmap values at local maxima (maxpool `nms`) at least `threshold`, else 0.
  static torch::Tensor sparse_mask(const torch::Tensor& heat, double threshold, int64_t nms);
  // Reconstruction in the hologram domain: T^-1(R(M_A . A)), complex [B,1,H,W].
  torch::Tensor reconstruct(const Encoding& e, const torch::Tensor& mask);
  // Classifier logits of embeddings [N,2d] (raw; standardised inside).
  torch::Tensor classify(const torch::Tensor& embeddings);
  // Embeddings [N,E] of one image's encoding (batch item b) at integer pixel positions.
  torch::Tensor embeddings_at(const Encoding& e, int64_t b, const std::vector<std::pair<int64_t, int64_t>>& yx) const;

  DsdConfig cfg;
  torch::nn::ModuleList enc{nullptr}, dec{nullptr};
  torch::nn::Sequential cls{nullptr};
  torch::Tensor emb_mean, emb_std;  // buffers: standardisation of the embeddings (from the training set)
};
TORCH_MODULE(DsdNet);

}  // namespace cellcount::llp
