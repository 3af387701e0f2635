// exemplar: seg-then-count with pseudo-labelled masks (paper 001, METHODS.md section 2).
// Inference: image + exemplar boxes -> base counter features F and similarity S (mean over exemplars);
// the segmentation model's mask cos(P(I), v) binarised at 0.6; S outside the mask set to delta (eq. 4);
// the counter's density on [F, masked S]; count = its sum, points = its peaks. Training: (1) the base
// counter on single-kind tiles (L2 to Gaussian dot maps); (2) pseudo masks on the multi-kind benchmark's
// training images: K-means (K = k_min..k_max) of patch embeddings with the exemplar, the K whose masked
// density is closest (L2) to the ground truth (eq. 5); (3) the segmentation model, L2 to those masks (eq. 7).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/dataset.h"
#include "core/density_map.h"
#include "core/device.h"
#include "core/error.h"
#include "core/eval_loop.h"
#include "core/evaluate.h"
#include "core/log.h"
#include "core/method.h"
#include "core/metrics.h"
#include "core/peaks.h"
#include "core/staged_dir.h"
#include "core/tiling.h"
#include "core/train.h"
#include "core/train_run.h"
#include "io/image_file.h"
#include "methods/exemplar/exemplar_net.h"
#include "methods/exemplar/kinds.h"
#include "methods/exemplar/masks.h"

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace cellcount::exemplar {
namespace {

constexpr int64_t kStride = 16;

enum class MaskMode { kNone, kSeg, kKMeans, kSimilarity };

MaskMode parse_mode(const std::string& s) {
  if (s == "none") return MaskMode::kNone;
  if (s == "seg") return MaskMode::kSeg;
  if (s == "kmeans") return MaskMode::kKMeans;
  if (s == "similarity") return MaskMode::kSimilarity;
  fail(CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar: mask \"" + s + "\" unknown (none, seg, kmeans, similarity)");
}

std::vector<std::array<float, 4>> as_arrays(const std::vector<Box>& boxes) {
  std::vector<std::array<float, 4>> out;
  for (const auto& b : boxes) out.push_back({b.x0, b.y0, b.x1, b.y1});
  return out;
}

torch::Tensor nearest_up(const torch::Tensor& m, int64_t h, int64_t w) {
  return F::interpolate(m.to(torch::kFloat32), F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest));
}

// Settings of the masking step, from model.json "thresholds" (overridable per call).
struct MaskSettings {
  double mask_threshold = 0.6;        // paper: the segmentation mask is binarised at 0.6
  double delta = 0.0;                 // eq. 4's "small constant" for S outside the mask (choice: 0)
  double similarity_threshold = 0.6;  // ablation: cos(F_ij, b) >= this
  bool mask_output = true;            // choice: also zero the density outside the mask (false = the paper's
                                      // eq. 4 alone; measured both ways in the README)
  int64_t dilate = 0;                 // grow the binary mask by this many map cells (16 px) before use; 0 = the paper
  int64_t k = 3;                      // fixed K for the K-means ablation at inference
  uint64_t seed = 0;
};

// Patch embeddings for K-means (paper: an ImageNet ResNet-50; here, with no downloadable weights, the base
// counter's own backbone, globally pooled and L2-normalised): one patch per similarity-map pixel, of the
// mean exemplar size, plus the mean exemplar embedding. Image x: [C,h,w] with h, w multiples of 16.
std::pair<torch::Tensor, torch::Tensor> patch_embeddings(Counter& counter, const torch::Tensor& x,
                                                         const std::vector<std::array<float, 4>>& boxes, int64_t size) {
  const int64_t h = x.size(1), w = x.size(2);
  float bw = 0, bh = 0;
  for (const auto& b : boxes) {
    bw += (b[2] - b[0]) / boxes.size();
    bh += (b[3] - b[1]) / boxes.size();
  }
  auto embed = [&](const torch::Tensor& crops) {
    return F::normalize(counter->backbone->forward(crops).mean({2, 3}).to(torch::kFloat32), F::NormalizeFuncOptions().dim(1));
  };
  const auto pb = patch_boxes(h / kStride, w / kStride, kStride, std::max(bw, 2.f), std::max(bh, 2.f), h, w);
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < pb.size(); i += 256) {
    std::vector<std::array<float, 4>> chunk(pb.begin() + i, pb.begin() + std::min(pb.size(), i + 256));
    parts.push_back(embed(crop_boxes(x, chunk, size)));
  }
  return {torch::cat(parts, 0), embed(crop_boxes(x, boxes, size)).mean(0)};
}

// The networks' pass over one normalised tile [1,C,h,w]: [1,2,h,w] = density (per pixel) and the binary
// mask (nearest-upsampled). b: counter exemplar vectors [E,dim]; v: segmenter exemplar vectors [E,seg_dim].
torch::Tensor run_tile(ExemplarNet& net, const torch::Tensor& t, const torch::Tensor& b, const torch::Tensor& v,
                       MaskMode mode, const MaskSettings& ms, const std::vector<std::array<float, 4>>& boxes) {
  const auto& cfg = net->config;
  auto f = net->counter->features(t);
  auto s = net->counter->similarity(f, b.unsqueeze(0));
  const int64_t mh = f.size(2), mw = f.size(3);
  torch::Tensor m;
  switch (mode) {
    case MaskMode::kNone:
      m = torch::ones({1, 1, mh, mw}, s.options().dtype(torch::kFloat32));
      break;
    case MaskMode::kSeg:
      m = (SegmenterImpl::mask(net->segmenter->features(t), v.unsqueeze(0)) >= ms.mask_threshold).to(torch::kFloat32);
      break;
    case MaskMode::kSimilarity: {
      auto fb = F::normalize(f.to(torch::kFloat32), F::NormalizeFuncOptions().dim(1));
      auto bn = F::normalize(b.to(torch::kFloat32).mean(0, true), F::NormalizeFuncOptions().dim(1));
      m = (torch::einsum("ndhw,nd->nhw", {fb, bn}).unsqueeze(1) >= ms.similarity_threshold).to(torch::kFloat32);
      break;
    }
    case MaskMode::kKMeans: {
      auto [pe, ex] = patch_embeddings(net->counter, t[0], boxes, cfg.exemplar_size);
      m = cluster_mask(pe, ex, ms.k, ms.seed).view({1, 1, mh, mw}).to(t.device());
      break;
    }
  }
  if (ms.dilate > 0 && mode != MaskMode::kNone)
    m = F::max_pool2d(m, F::MaxPool2dFuncOptions(2 * ms.dilate + 1).stride(1).padding(ms.dilate));
  auto d = net->counter->density(f, apply_mask(s, m.to(s.scalar_type()), ms.delta)).to(torch::kFloat32) / cfg.target_scale;
  auto mu = nearest_up(m, t.size(2), t.size(3));
  if (ms.mask_output) d = d * mu;
  return torch::cat({d, mu}, 1);
}

// Exemplar vectors of both networks from the boxes of a normalised image [C,H,W].
std::pair<torch::Tensor, torch::Tensor> exemplar_vectors(ExemplarNet& net, const torch::Tensor& x,
                                                         const std::vector<std::array<float, 4>>& boxes) {
  auto crops = crop_boxes(x, boxes, net->config.exemplar_size);
  return {net->counter->exemplar_vectors(crops), net->segmenter->exemplar_vectors(crops)};
}

InputSpec exemplar_input_spec() {
  InputSpec spec;
  spec.channels = 3;
  spec.rgb_rule = "";  // 1-channel images are repeated to 3 (see prepare_image)
  spec.align = kStride;
  spec.min_side = 32;
  return spec;
}

// Grey images are repeated to RGB (the networks see 3 channels); other channel counts are refused.
torch::Tensor prepare_image(const InputSpec& spec, const torch::Tensor& raw) {
  CC_CHECK(raw.size(0) == 1 || raw.size(0) == 3, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar: expected a 1- or 3-channel image, got " + std::to_string(raw.size(0)) + " channels");
  CC_CHECK(raw.size(1) >= spec.min_side && raw.size(2) >= spec.min_side, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar: the image must be at least " + std::to_string(spec.min_side) + " x " +
               std::to_string(spec.min_side) + " pixels, got " + std::to_string(raw.size(2)) + " x " +
               std::to_string(raw.size(1)));
  return normalize(convert_channels(raw, "rgb"), spec.normalization);
}

class ExemplarMethod : public Method {
 public:
  explicit ExemplarMethod(const ModelFiles& f)
      : meta_(f.meta), net_(ExemplarConfig::from_json(f.meta.at("architecture"))) {
    spec_ = InputSpec::from_json(meta_.at("input"));
    load_weights(*net_, f);
    net_->eval();
    const auto& t = meta_.at("thresholds");
    ms_.mask_threshold = t.value("mask_threshold", ms_.mask_threshold);
    ms_.delta = t.value("delta", ms_.delta);
    ms_.similarity_threshold = t.value("similarity_threshold", ms_.similarity_threshold);
    ms_.mask_output = t.value("mask_output", ms_.mask_output);
    ms_.dilate = t.value("mask_dilate", ms_.dilate);
    peak_threshold_ = t.value("peak_threshold", peak_threshold_);
    peak_min_distance_ = t.value("peak_min_distance", peak_min_distance_);
  }

  nlohmann::json info() const override {
    nlohmann::json j = meta_;
    j["device"] = device_name(device_);
    return j;
  }

  Prediction predict(const PredictInput& in, const PredictOptions& o) override { return run(in, o, MaskMode::kSeg, ms_); }

  // One prediction with a mask mode (the ablations share this path). `ms` may override the model's settings.
  Prediction run(const PredictInput& in, const PredictOptions& o, MaskMode mode, MaskSettings ms) {
    CC_CHECK(!in.exemplars.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "exemplar: draw at least one box around a cell of the kind to count");
    // Resolved by the core (caller, then model.json, then the declared default); absent when an evaluation
    // passes its own settings in `ms`.
    if (o.method_options.contains("mask_threshold") && o.method_options["mask_threshold"].is_number())
      ms.mask_threshold = o.method_options["mask_threshold"].get<double>();
    if (o.device != device_) {
      net_->to(o.device);
      device_ = o.device;
    }
    torch::NoGradGuard ng;
    auto x = prepare_image(spec_, in.image).to(o.device);
    const int64_t H = x.size(1), W = x.size(2);
    const auto boxes = as_arrays(in.exemplars);
    AutocastGuard amp(o.device, o.precision);
    auto [b, v] = exemplar_vectors(net_, x, boxes);
    int64_t tile = o.tile_size > 0 ? o.tile_size : meta_["tiling"].value("tile_size", 512);
    int64_t overlap = o.tile_overlap >= 0 ? o.tile_overlap : meta_["tiling"].value("overlap", 64);
    // K-means clusters the whole image's patches: one tile.
    if (mode == MaskMode::kKMeans) tile = std::max(H, W), overlap = 0;
    auto maps = run_tiled(
        x, tile, overlap, kStride,
        [&](const torch::Tensor& t) { return run_tile(net_, t, b, v, mode, ms, boxes).to(torch::kCPU); }, o.progress);
    const float thr = std::isnan(o.peak_threshold) ? peak_threshold_ : o.peak_threshold;
    const float md = std::isnan(o.peak_min_distance) ? peak_min_distance_ : o.peak_min_distance;
    auto p = density_prediction(maps[0].contiguous(), in.region, thr, md, o.want_density);
    if (o.want_density) p.mask = maps[1].contiguous();
    (void)H;
    (void)W;
    return p;
  }

 private:
  nlohmann::json meta_;
  ExemplarNet net_;
  InputSpec spec_;
  MaskSettings ms_;
  float peak_threshold_ = 0.01f, peak_min_distance_ = 3.0f;
  torch::Device device_ = torch::kCPU;
};

// ----------------------------------------------------------------------------------------------- data

// The kind of interest of a benchmark image: the most common class among the points inside its exemplar
// boxes; its half is the side holding most of that class's points. Single-kind images: every point.
struct Interest {
  bool multi = false;
  int32_t cls = 0;
  bool left = true;
  std::vector<Point> points;  // of the class of interest
};

Interest interest_of(const Sample& s, const std::vector<Box>& boxes, size_t n_classes, int64_t width) {
  Interest r;
  r.multi = n_classes >= 2;
  if (!r.multi) {
    r.points = s.points;
    return r;
  }
  std::map<int32_t, int> votes;
  for (const auto& p : s.points)
    for (const auto& b : boxes)
      if (p.x + 0.5f >= b.x0 && p.x + 0.5f <= b.x1 && p.y + 0.5f >= b.y0 && p.y + 0.5f <= b.y1) ++votes[p.cls];
  CC_CHECK(!votes.empty(), CELLCOUNT_ERR_DATASET, "exemplar: no annotated point of '" + s.image + "' lies in an exemplar box");
  r.cls = std::max_element(votes.begin(), votes.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
  int left = 0;
  for (const auto& p : s.points)
    if (p.cls == r.cls) {
      r.points.push_back(p);
      left += p.x < width / 2.0f ? 1 : -1;
    }
  r.left = left >= 0;
  return r;
}

// The paper's error on a two-kind image: |y - y_hat_interest| + y_hat_elsewhere.
double benchmark_error(const torch::Tensor& density, const Interest& in, double& interest_count, double& elsewhere) {
  if (!in.multi) {  // a single-kind image: the plain count error
    interest_count = density.sum().item<double>();
    elsewhere = 0;
    return std::abs(double(in.points.size()) - interest_count);
  }
  const int64_t W = density.size(1), half = W / 2;
  auto l = density.slice(1, 0, half).sum().item<double>(), r = density.slice(1, half, W).sum().item<double>();
  interest_count = in.left ? l : r;
  elsewhere = in.left ? r : l;
  return std::abs(double(in.points.size()) - interest_count) + elsewhere;
}

struct TrainTile {
  torch::Tensor image;    // [3,S,S] normalised
  torch::Tensor density;  // [1,S,S]
  std::vector<Point> points;
  float box = 12;
};

std::vector<TrainTile> training_tiles(const Recipe& r, const std::string& split, const InputSpec& spec,
                                      const Progress& progress) {
  std::vector<TrainTile> out;
  for (size_t k = 0; k < r.kinds.size(); ++k) {
    auto tiles = kind_tiles(r, k, split, progress.sub(float(k) / r.kinds.size(), float(k + 1) / r.kinds.size()));
    for (auto& t : tiles) {
      if (t.points.empty()) continue;  // no exemplar can be drawn
      TrainTile tt;
      tt.image = prepare_image(spec, t.image);
      const int64_t S = tt.image.size(1);
      auto d = gaussian_density(t.points, S, S, r.kinds[k].sigma);
      tt.density = torch::from_blob(d.data(), {1, S, S}, torch::kFloat32).clone();
      tt.points = t.points;
      tt.box = r.kinds[k].box;
      out.push_back(std::move(tt));
    }
  }
  return out;
}

struct BenchItem {
  torch::Tensor image;        // [3,S,S] normalised
  std::vector<Box> boxes;
  Interest interest;
  torch::Tensor density;      // [1,S,S] of the points of interest
  torch::Tensor mask;         // [1,S/16,S/16] pseudo mask (training)
};

std::vector<BenchItem> benchmark_items(const Dataset& ds, const std::string& split, const Recipe& r,
                                       const InputSpec& spec, const Progress& progress) {
  std::vector<BenchItem> out;
  const auto idx = ds.indices(split);
  for (size_t n = 0; n < idx.size(); ++n) {
    progress.report(float(n) / idx.size(), "benchmark " + split);
    const auto& s = ds.samples[idx[n]];
    CC_CHECK(!s.boxes.empty(), CELLCOUNT_ERR_DATASET, "exemplar: benchmark image '" + s.image + "' has no exemplar boxes");
    BenchItem it;
    it.image = prepare_image(spec, image_to_tensor(io::read_image(ds.image_path(idx[n]))));
    it.boxes = s.boxes;
    it.interest = interest_of(s, s.boxes, ds.class_names.size(), it.image.size(2));
    double sigma = 2.0;
    for (const auto& k : r.kinds)
      if (size_t(it.interest.cls) < ds.class_names.size() && k.name == ds.class_names[it.interest.cls]) sigma = k.sigma;
    const int64_t H = it.image.size(1), W = it.image.size(2);
    auto d = gaussian_density(it.interest.points, H, W, sigma);
    it.density = torch::from_blob(d.data(), {1, H, W}, torch::kFloat32).clone();
    out.push_back(std::move(it));
  }
  return out;
}

// Single-kind tiles as segmentation items (exemplars drawn from their points with a fixed seed): the easy
// case, so that the segmenter also learns to keep every cell when the image holds one kind only.
std::vector<BenchItem> tiles_as_items(const std::vector<TrainTile>& tiles, int64_t n_ex, uint64_t seed) {
  std::vector<BenchItem> out;
  for (size_t i = 0; i < tiles.size(); ++i) {
    const auto& t = tiles[i];
    const int64_t S = t.image.size(1);
    BenchItem it;
    it.image = t.image;
    it.boxes = boxes_from_points(t.points, size_t(n_ex), t.box, S, S, seed + i);
    it.interest.multi = false;
    it.interest.points = t.points;
    it.density = t.density;
    out.push_back(std::move(it));
  }
  return out;
}

// ----------------------------------------------------------------------------------------------- requests

// Every train field, declared once (core/options.h): the train-run driver's common fields plus these.
Options train_options() {
  // init_from: an exemplar model whose counter starts stage 1 (recorded in provenance); crop: random square crops
  // of the single-kind tiles for the counter.
  Options o = density_train_options("exemplar");
  add_options(o, {
      Opt::path("recipe").help("datasets/recipes/*.json: the kinds, tiles and benchmark recipe").needed(),
      Opt::path("benchmark").help("the benchmark folder `cellcount synth --method exemplar` wrote").needed(),
      Opt::integer("counter_epochs", 60).range(0, 100000).help("epochs of the counter stage (0 only with init_from)"),
      Opt::integer("seg_epochs", 20).range(0, 100000).help("epochs of the segmenter stage (paper: 20)"),
      Opt::integer("exemplars", 3).range(1, 64).help("exemplar boxes per training image"),
      Opt::number("box_jitter", 0.2).range(0.0, 0.9).help("exemplar box side x U(1 - j, 1 + j) while training the counter").folded(),
      Opt::number("intensity_squash", 0.5).range(0.0, 1.0).help("probability of the counter's intensity augmentation").folded(),
      Opt::choice("pseudo_mask", "kmeans", {"kmeans", "dotbox", "similarity"})
          .help("pseudo masks: \"kmeans\" (the paper), or the ablations \"dotbox\", \"similarity\"")
          .folded(),
      // Option: the segmenter also trains on the single-kind tiles (measured worse: their K-means masks cut
      // cells away; see README).
      Opt::boolean("seg_single_kind", false).help("the segmenter also trains on the single-kind tiles").folded(),
      Opt::integer("k_min", 2).range(2, 32).help("smallest K of the K-means pseudo masks").folded(),
      Opt::integer("k_max", 6).range(2, 32).help("largest K of the K-means pseudo masks").folded(),
      Opt::number("delta", 0.0).range(-10.0, 10.0).help("similarity offset outside the mask (paper's delta)").folded(),
      Opt::number("mask_threshold", 0.6).range(0.0, 1.0).help("mask binarisation threshold, used as is when mask_threshold_grid is empty").folded(),
      // Choice: the binarisation threshold and the mask dilation are tuned on the val splits after
      // training (the paper fixes 0.6): the lowest two-kind val error among the grid whose single-kind
      // val relative error stays within single_kind_tolerance of the unmasked counter's (or <= 0.15).
      Opt::number_list("mask_threshold_grid", {0.3, 0.4, 0.5, 0.6}).range(0.0, 1.0).help("mask thresholds tried on the val splits").folded(),
      Opt::int_list("mask_dilate_grid", {0, 1}).range(0, 8).help("mask dilations tried on the val splits").folded(),
      Opt::number("single_kind_tolerance", 0.05).range(0.0, 1.0).help("allowed rise of the single-kind val relative error").folded(),
      Opt::boolean("init_segmenter", false).help("with init_from: the segmenter starts from that model too").folded(),
      Opt::number("similarity_threshold", 0.6).range(-1.0, 1.0).help("threshold of the similarity pseudo masks").folded(),
      Opt::boolean("mask_output", true).help("multiply the output density by the mask").folded(),
      Opt::object("architecture", ExemplarConfig{}.to_json()).help("network shape").folded(),
  });
  // Choice: from-scratch training needs a larger step than the paper's fine-tuning rate (AdamW 1e-5).
  set_default(o, "validate_every", 5);
  set_default(o, "eval_radius", 6.0);
  set_default(o, "optimizer", "adamw");
  set_default(o, "lr", 1e-3);
  set_default(o, "weight_decay", 1e-4);
  set_default(o, "batch_size", 8);
  set_default(o, "restart_epochs", 0.0);  // 0 = one cosine decay over each stage
  set_default(o, "restart_mult", 1.0);
  return o;
}

Options eval_options() {
  Options o = {
      Opt::choice("method", "exemplar", {"exemplar"}).folded(),
      Opt::choice("mask", "seg", {"seg", "none", "kmeans", "similarity"})
          .help("\"seg\" (seg-then-count), \"none\", \"kmeans\" (fixed k), \"similarity\""),
      Opt::integer("k", 3).range(1, 64).help("K of the kmeans mask").folded(),
      Opt::integer("exemplars", 3).range(1, 64).help("boxes drawn from the points when the dataset has no boxes.csv"),
      Opt::number("box_size", 0.0).range(0.0, 4096.0).help("side of those boxes (pixels); 0 = the dataset needs boxes.csv"),
      Opt::integer("seed", 0).range(0, INT64_MAX).help("seed of the drawn boxes and of K-means").folded(),
      Opt::boolean("mask_output", true).or_null().help("multiply the density by the mask (null = the model's)").folded(),
      Opt::integer("mask_dilate", 0).or_null().range(0, 8).help("mask dilation (null = the model's)").folded(),
      Opt::number("mask_threshold", 0.6).or_null().range(-1.0, 1.0)
          .help("mask threshold on the cosine mask (null = the model's; -1 keeps everything)")
          .folded(),
  };
  for (const char* k : {"mask_output", "mask_dilate", "mask_threshold"})
    for (auto& x : o)
      if (x.name == k) x.default_value = nullptr;
  Options all = evaluate_options();
  for (const char* k : {"radius", "grid"})  // measured by the benchmark's error, not by points
    all.erase(std::remove_if(all.begin(), all.end(), [&](const OptionSpec& x) { return x.name == k; }), all.end());
  set_default(all, "per_image", false);
  return add_options(all, o);
}

Options synth_options() {
  return {Opt::choice("method", "exemplar", {"exemplar"}).folded(),
          Opt::choice("kind", "multikind", {"multikind"}).help("two-kind benchmark images from a recipe"),
          Opt::path("recipe").help("datasets/recipes/*.json").needed(),
          Opt::path("out").help("new dataset folder (written whole or not at all)").needed(),
          Opt::boolean("overwrite", false).help("replace out when it is a dataset this tool wrote"),
          Opt::string_list("splits", {"train", "val", "test"}).help("splits to write"),
          Opt::integer("n", 0).range(0, 100000).help("images per split (0 = the recipe's)"),
          Opt::integer("threads", 0).range(0, 256).help("CPU threads (0 = one per core)").folded()};
}

// Batched single-kind training samples: dihedral transform, exemplars from the points, a random crop.
struct CounterBatch {
  torch::Tensor x, crops, target;
};

// Choice: intensity augmentation. A tile normalised inside a two-kind image is an affine squash of the
// same tile normalised alone (the image's percentiles come from both kinds): measured on the benchmark, the
// ADI half of a two-kind image counted 8..30 cells inside it and 57..75 alone (true ~83). With probability
// `p`, the normalised tile becomes b + a x, a ~ U(0.35, 1), b ~ U(0, 1 - a).
torch::Tensor squash_intensity(const torch::Tensor& img, double p, std::mt19937_64& rng) {
  if (uniform01(rng()) >= p) return img;
  const double a = 0.35 + 0.65 * uniform01(rng()), b = (1.0 - a) * uniform01(rng());
  return img * a + b;
}

CounterBatch counter_batch(const std::vector<TrainTile>& tiles, const std::vector<size_t>& batch, int64_t crop,
                           int64_t n_ex, double jitter, double squash, int64_t ex_size, std::mt19937_64& rng,
                           const torch::Device& device) {
  std::vector<torch::Tensor> xs, cs, ts;
  for (size_t i : batch) {
    const auto& t = tiles[i];
    const auto d = Dihedral::random(rng());
    const int64_t S = t.image.size(1);
    auto img = squash_intensity(d.apply(t.image), squash, rng), den = d.apply(t.density);
    std::vector<Point> pts;
    for (const auto& p : t.points) pts.push_back(d.apply(p, S, S));
    const double u = uniform01(rng());
    const float box = float(t.box * (1.0 - jitter + 2.0 * jitter * u));
    auto boxes = boxes_from_points(pts, size_t(n_ex), box, S, S, rng());
    while (int64_t(boxes.size()) < n_ex) boxes.push_back(boxes[boxes.size() % std::max<size_t>(1, boxes.size())]);
    cs.push_back(crop_boxes(img, as_arrays(boxes), ex_size));
    const int64_t c = std::min(crop, S);
    const int64_t y0 = int64_t(uniform_index(rng(), uint64_t(S - c + 1))), x0 = int64_t(uniform_index(rng(), uint64_t(S - c + 1)));
    xs.push_back(img.slice(1, y0, y0 + c).slice(2, x0, x0 + c));
    ts.push_back(den.slice(1, y0, y0 + c).slice(2, x0, x0 + c));
  }
  return {torch::stack(xs).to(device), torch::cat(cs).to(device), torch::stack(ts).to(device)};
}

// Counter MAE on whole tiles (no mask), exemplars drawn with a fixed seed. Like bench_error, it leaves the
// networks in eval mode; inside an epoch callback Trainer::fit puts the trained module back in train mode.
double counter_val_mae(ExemplarNet& net, const std::vector<TrainTile>& tiles, int64_t n_ex, const torch::Device& device) {
  torch::NoGradGuard ng;
  net->eval();
  double err = 0;
  for (size_t i = 0; i < tiles.size(); ++i) {
    const auto& t = tiles[i];
    const int64_t S = t.image.size(1);
    auto boxes = as_arrays(boxes_from_points(t.points, size_t(n_ex), t.box, S, S, 1000 + i));
    auto x = t.image.to(device);
    auto b = net->counter->exemplar_vectors(crop_boxes(x, boxes, net->config.exemplar_size));
    auto f = net->counter->features(x.unsqueeze(0));
    auto d = net->counter->density(f, net->counter->similarity(f, b.unsqueeze(0)));
    err += std::abs(d.sum().item<double>() / net->config.target_scale - double(t.points.size()));
  }
  return tiles.empty() ? 0.0 : err / double(tiles.size());
}

// Seg-then-count error on benchmark items (whole images, one tile each).
double bench_error(ExemplarNet& net, const std::vector<BenchItem>& items, MaskMode mode, const MaskSettings& ms,
                   const torch::Device& device) {
  torch::NoGradGuard ng;
  net->eval();
  double err = 0;
  for (const auto& it : items) {
    auto x = it.image.to(device);
    const auto boxes = as_arrays(it.boxes);
    auto [b, v] = exemplar_vectors(net, x, boxes);
    auto maps = run_tile(net, x.unsqueeze(0), b, v, mode, ms, boxes)[0].to(torch::kCPU);
    double yi, ye;
    err += benchmark_error(maps[0], it.interest, yi, ye);
  }
  return items.empty() ? 0.0 : err / double(items.size());
}

// Picks the mask threshold and dilation from the request's grids on validation data: the lowest two-kind
// error (bench) among the settings whose single-kind relative error (sum |y_hat - y| / sum y over `single`)
// is at most max(0.15, unmasked + single_kind_tolerance); the lowest single-kind error if none qualifies.
// Writes the choice into `ms` and returns the table it was chosen from.
nlohmann::json tune_mask(ExemplarNet& net, const std::vector<BenchItem>& bench, const std::vector<BenchItem>& single,
                         const nlohmann::json& req, MaskSettings& ms) {
  const auto thresholds = req["mask_threshold_grid"].get<std::vector<double>>();
  const auto dilations = req["mask_dilate_grid"].get<std::vector<int64_t>>();
  if (thresholds.empty()) return {{"rule", "fixed by the request"}};
  double total = 0;
  for (const auto& it : single) total += double(it.interest.points.size());
  total = std::max(total, 1.0);
  const auto device = torch::Device(torch::kCPU);
  const double none_rel = bench_error(net, single, MaskMode::kNone, ms, device) * double(single.size()) / total;
  const double limit = std::max(0.15, none_rel + req["single_kind_tolerance"].get<double>());
  nlohmann::json rows = nlohmann::json::array();
  double best = INFINITY, best_rel = INFINITY, fallback_rel = INFINITY;
  MaskSettings chosen = ms, fallback = ms;
  for (const int64_t dl : dilations) {
    for (const double th : thresholds) {
      MaskSettings m = ms;
      m.mask_threshold = th;
      m.dilate = dl;
      const double err = bench_error(net, bench, MaskMode::kSeg, m, device);
      const double rel = bench_error(net, single, MaskMode::kSeg, m, device) * double(single.size()) / total;
      rows.push_back({{"mask_threshold", th}, {"mask_dilate", dl}, {"val_error", err}, {"single_kind_rel_error", rel}});
      log_info("exemplar train: mask threshold " + std::to_string(th) + " dilate " + std::to_string(dl) +
               ": val error " + std::to_string(err) + ", single-kind relative error " + std::to_string(rel));
      if (rel <= limit && err < best) {
        best = err;
        best_rel = rel;
        chosen = m;
      }
      if (rel < fallback_rel) {
        fallback_rel = rel;
        fallback = m;
      }
    }
  }
  const bool qualified = std::isfinite(best);
  ms = qualified ? chosen : fallback;
  return {{"rule", "lowest two-kind val error with single-kind val relative error <= max(0.15, unmasked + tolerance)"},
          {"unmasked_single_kind_rel_error", none_rel}, {"limit", limit}, {"qualified", qualified},
          {"chosen", {{"mask_threshold", ms.mask_threshold}, {"mask_dilate", ms.dilate},
                      {"single_kind_rel_error", qualified ? best_rel : fallback_rel}}},
          {"grid", rows}};
}

nlohmann::json train(const nlohmann::json& req0, const Progress& progress) {
  TrainRun run("exemplar", train_options(), req0, {"counter.ckpt", "segmenter.ckpt"},
               {"counter_epochs", "seg_epochs", "validate_every"});
  nlohmann::json& req = run.request();
  const std::string out = run.out(), recipe_path = req["recipe"], bench_dir = req["benchmark"];
  CC_CHECK(req["counter_epochs"].get<int64_t>() > 0 || !req["init_from"].get<std::string>().empty(),
           CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar train: counter_epochs 0 needs init_from (it would ship an untrained counter)");
  {  // the tuning grids are checked before any training
    const auto th = req["mask_threshold_grid"].get<std::vector<double>>();
    const auto dl = req["mask_dilate_grid"].get<std::vector<int64_t>>();
    CC_CHECK(th.empty() || !dl.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar train: mask_dilate_grid must not be empty");
    for (double t : th)
      CC_CHECK(t >= 0 && t <= 1, CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar train: mask thresholds must be in [0, 1]");
    for (int64_t d : dl)
      CC_CHECK(d >= 0 && d <= 8, CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar train: mask dilations must be in 0..8");
  }
  CC_CHECK(req["intensity_squash"].get<double>() >= 0 && req["intensity_squash"].get<double>() <= 1,
           CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar train: intensity_squash must be in [0, 1]");
  const std::string pm = req["pseudo_mask"];
  CC_CHECK(pm == "kmeans" || pm == "dotbox" || pm == "similarity", CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar train: pseudo_mask must be kmeans, dotbox or similarity");
  const int64_t k_min = req["k_min"], k_max = req["k_max"], n_ex = req["exemplars"], crop = req["crop"];
  CC_CHECK(k_min >= 2 && k_max >= k_min && k_max <= 32 && n_ex >= 1 && crop >= 32 && crop % 16 == 0,
           CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar train: need 2 <= k_min <= k_max <= 32, exemplars >= 1, crop a multiple of 16");
  const auto device = resolve_device(req["device"]);
  const auto precision = resolve_precision(req["precision"], device);
  const auto spec = exemplar_input_spec();
  ExemplarConfig cfg = ExemplarConfig::from_json(req["architecture"]);
  cfg.in_channels = 3;
  MaskSettings ms;
  ms.mask_threshold = req["mask_threshold"];
  ms.delta = req["delta"];
  ms.similarity_threshold = req["similarity_threshold"];
  ms.mask_output = req["mask_output"];

  const Recipe recipe = load_recipe(recipe_path);
  auto train_tiles = training_tiles(recipe, "train", spec, progress.sub(0, 0.02));
  auto val_tiles = training_tiles(recipe, "val", spec, progress.sub(0.02, 0.03));
  CC_CHECK(!train_tiles.empty(), CELLCOUNT_ERR_DATASET, "exemplar train: no training tiles with cells");
  const auto bench = load_dataset(bench_dir);
  auto bench_train = benchmark_items(bench, "train", recipe, spec, progress.sub(0.03, 0.04));
  auto bench_val = benchmark_items(bench, "val", recipe, spec, progress.sub(0.04, 0.05));
  CC_CHECK(!bench_train.empty(), CELLCOUNT_ERR_DATASET, "exemplar train: the benchmark's train split is empty");
  if (req["seg_single_kind"].get<bool>()) {
    for (auto& it : tiles_as_items(train_tiles, n_ex, 5000)) bench_train.push_back(std::move(it));
    for (auto& it : tiles_as_items(val_tiles, n_ex, 9000)) bench_val.push_back(std::move(it));
  }
  log_info("exemplar train: " + std::to_string(train_tiles.size()) + " single-kind tiles, " +
           std::to_string(bench_train.size()) + " segmenter training items (two-kind images + single-kind tiles)");

  auto net = seeded(run.seed(), [&] { return ExemplarNet(cfg); });
  const std::string init_from = req["init_from"];
  nlohmann::json init_meta = nullptr;
  if (!init_from.empty()) {
    const auto init = read_init_model(init_from, "exemplar", cfg);
    auto other = seeded(run.seed(), [&] { return ExemplarNet(cfg); });
    load_weights(*other, init);
    copy_state(*net->counter, *other->counter);
    if (req["init_segmenter"].get<bool>()) copy_state(*net->segmenter, *other->segmenter);
    init_meta = init_provenance(init);
    // Provenance only: a source model without this record (hand-made, older) still starts the training.
    const nlohmann::json::json_pointer epochs_run("/training/counter/epochs_run");
    init_meta["counter_epochs"] = init.meta.contains(epochs_run) ? init.meta.at(epochs_run) : nlohmann::json();
    init_meta["segmenter_too"] = req["init_segmenter"].get<bool>();
    log_info("exemplar train: the counter starts from '" + init_from + "'");
  }
  net->to(device);
  const int64_t every = req["validate_every"];

  // Stage 1: the base counter on single-kind tiles. L2 to the Gaussian dot maps.
  // restart_epochs 0 = one cosine decay over each stage.
  auto stage_config = [&](int64_t epochs) {
    nlohmann::json r = req;
    if (r["restart_epochs"].get<double>() <= 0) r["restart_epochs"] = std::max<int64_t>(1, epochs);
    TrainConfig c = TrainConfig::from_json(r);
    c.epochs = epochs;
    return c;
  };
  TrainConfig tc = stage_config(req["counter_epochs"]);
  tc.checkpoint = run.checkpoint("counter.ckpt");
  const double jitter = req["box_jitter"], squash = req["intensity_squash"];
  double best_mae = INFINITY;
  int64_t best_epoch = 0;
  Counter best_counter(cfg);
  best_counter->to(device);
  copy_state(*best_counter, *net->counter);
  Trainer ct(tc, *net->counter);
  auto counter_report = ct.fit(
      train_tiles.size(),
      [&](const std::vector<size_t>& batch, std::mt19937_64& rng) {
        auto b = counter_batch(train_tiles, batch, crop, n_ex, jitter, squash, cfg.exemplar_size, rng, device);
        AutocastGuard amp(device, precision);
        auto f = net->counter->features(b.x);
        auto ev = net->counter->exemplar_vectors(b.crops).view({b.x.size(0), n_ex, -1});
        auto d = net->counter->density(f, net->counter->similarity(f, ev)).to(torch::kFloat32);
        return torch::mse_loss(d, b.target * cfg.target_scale);
      },
      progress.sub(0.05, 0.6), [&](const EpochStats& st) -> nlohmann::json {
        if (st.epoch % every != 0 && st.epoch != tc.epochs) return nullptr;
        const double mae = counter_val_mae(net, val_tiles.empty() ? train_tiles : val_tiles, n_ex, device);
        if (mae < best_mae) {
          best_mae = mae;
          best_epoch = st.epoch;
          copy_state(*best_counter, *net->counter);
        }
        log_info("exemplar train: counter epoch " + std::to_string(st.epoch) + " loss " + std::to_string(st.loss) +
                 " val MAE " + std::to_string(mae));
        return {{"val_mae", mae}};
      });
  if (best_epoch > 0) copy_state(*net->counter, *best_counter);
  net->counter->eval();
  for (auto& p : net->counter->parameters()) p.set_requires_grad(false);

  // Stage 2: pseudo masks for the two-kind training images (eq. 5: the K whose masked density is closest
  // to the ground truth of the kind of interest).
  std::map<int64_t, int64_t> k_histogram;
  double pseudo_err_none = 0, pseudo_err_best = 0;
  const int64_t seg_epochs = req["seg_epochs"];
  if (seg_epochs > 0) {  // no segmenter training (e.g. only re-tuning an init_from model): no masks needed
    torch::NoGradGuard ng;
    for (size_t i = 0; i < bench_train.size(); ++i) {
      progress.report(0.6f + 0.1f * float(i) / bench_train.size(), "pseudo masks");
      auto& it = bench_train[i];
      auto x = it.image.to(device);
      const auto boxes = as_arrays(it.boxes);
      auto f = net->counter->features(x.unsqueeze(0));
      auto b = net->counter->exemplar_vectors(crop_boxes(x, boxes, cfg.exemplar_size));
      auto s = net->counter->similarity(f, b.unsqueeze(0));
      const int64_t mh = f.size(2), mw = f.size(3);
      auto target = it.density.to(device).unsqueeze(0);
      auto err_of = [&](const torch::Tensor& m) {
        auto d = net->counter->density(f, apply_mask(s, m, ms.delta)) / cfg.target_scale;
        if (ms.mask_output) d = d * nearest_up(m, d.size(2), d.size(3));  // as inference applies it
        return (d - target).pow(2).sum().item<double>();
      };
      pseudo_err_none += err_of(torch::ones({1, 1, mh, mw}, s.options()));
      if (pm == "kmeans") {
        auto [pe, ex] = patch_embeddings(net->counter, x, boxes, cfg.exemplar_size);
        std::vector<double> errs;
        std::vector<torch::Tensor> masks;
        for (int64_t k = k_min; k <= k_max; ++k) {
          masks.push_back(cluster_mask(pe, ex, k, req["seed"].get<uint64_t>() + i).view({1, 1, mh, mw}).to(device));
          errs.push_back(err_of(masks.back()));
        }
        const size_t best = select_k(errs);
        ++k_histogram[k_min + int64_t(best)];
        pseudo_err_best += errs[best];
        it.mask = masks[best][0].cpu();
      } else if (pm == "dotbox") {
        float bw = 0, bh = 0;
        for (const auto& bx : it.boxes) {
          bw += (bx.x1 - bx.x0) / it.boxes.size();
          bh += (bx.y1 - bx.y0) / it.boxes.size();
        }
        it.mask = dot_box_mask(it.interest.points, bw, bh, mh, mw, kStride).unsqueeze(0);
        pseudo_err_best += err_of(it.mask.unsqueeze(0).to(device));
      } else {
        auto fb = F::normalize(f, F::NormalizeFuncOptions().dim(1));
        auto bn = F::normalize(b.mean(0, true), F::NormalizeFuncOptions().dim(1));
        it.mask = (torch::einsum("ndhw,nd->nhw", {fb, bn}) >= ms.similarity_threshold).to(torch::kFloat32).cpu();
        pseudo_err_best += err_of(it.mask.unsqueeze(0).to(device));
      }
    }
  }
  nlohmann::json khist = nlohmann::json::object();
  for (auto& [k, c] : k_histogram) khist[std::to_string(k)] = c;
  log_info("exemplar train: pseudo masks done; mean L2 density error no mask " +
           std::to_string(pseudo_err_none / bench_train.size()) + ", chosen masks " +
           std::to_string(pseudo_err_best / bench_train.size()));

  // Stage 3: the segmentation model, L2 between cos(P(I), v) and the pseudo mask (eq. 7).
  TrainConfig ts = stage_config(seg_epochs);
  ts.checkpoint = run.checkpoint("segmenter.ckpt");
  double best_seg = INFINITY;
  int64_t best_seg_epoch = 0;
  Segmenter best_seg_net(cfg);
  best_seg_net->to(device);
  copy_state(*best_seg_net, *net->segmenter);
  Trainer st(ts, *net->segmenter);
  auto seg_report = st.fit(
      bench_train.size(),
      [&](const std::vector<size_t>& batch, std::mt19937_64& rng) {
        std::vector<torch::Tensor> xs, cs, ms_;
        for (size_t i : batch) {
          const auto& it = bench_train[i];
          const auto d = Dihedral::random(rng());
          const int64_t H = it.image.size(1), W = it.image.size(2);
          auto img = d.apply(it.image);
          std::vector<std::array<float, 4>> boxes;
          for (const auto& bx : it.boxes) {
            auto tb = d.apply(bx, H, W);
            boxes.push_back({tb.x0, tb.y0, tb.x1, tb.y1});
          }
          while (int64_t(boxes.size()) < n_ex) boxes.push_back(boxes[boxes.size() % std::max<size_t>(1, boxes.size())]);
          boxes.resize(size_t(n_ex));
          xs.push_back(img);
          cs.push_back(crop_boxes(img, boxes, cfg.exemplar_size));
          ms_.push_back(d.apply(it.mask));
        }
        auto x = torch::stack(xs).to(device);
        auto crops = torch::cat(cs).to(device);
        AutocastGuard amp(device, precision);
        auto p = net->segmenter->features(x);
        auto v = net->segmenter->exemplar_vectors(crops).view({x.size(0), n_ex, -1});
        return torch::mse_loss(SegmenterImpl::mask(p, v), torch::stack(ms_).to(device));
      },
      progress.sub(0.7, 0.93), [&](const EpochStats& e) -> nlohmann::json {
        if (e.epoch % every != 0 && e.epoch != ts.epochs) return nullptr;
        const double err = bench_error(net, bench_val.empty() ? bench_train : bench_val, MaskMode::kSeg, ms, device);
        if (err < best_seg) {
          best_seg = err;
          best_seg_epoch = e.epoch;
          copy_state(*best_seg_net, *net->segmenter);
        }
        log_info("exemplar train: segmenter epoch " + std::to_string(e.epoch) + " loss " + std::to_string(e.loss) +
                 " val seg-then-count error " + std::to_string(err));
        return {{"val_error", err}};
      });
  if (best_seg_epoch > 0) copy_state(*net->segmenter, *best_seg_net);
  net->eval();
  net->to(torch::kCPU);

  // Mask threshold and dilation, tuned on the val splits (see train_options).
  const auto mask_tuning = tune_mask(net, bench_val.empty() ? bench_train : bench_val,
                                     tiles_as_items(val_tiles.empty() ? train_tiles : val_tiles, n_ex, 1000), req, ms);

  // Peak threshold tuned on the single-kind validation tiles (whole tiles, the model's density).
  const float md = req["peak_min_distance"];
  std::vector<torch::Tensor> maps;
  std::vector<std::vector<Point>> truth;
  {
    torch::NoGradGuard ng;
    const auto& tune = val_tiles.empty() ? train_tiles : val_tiles;
    for (size_t i = 0; i < tune.size(); ++i) {
      const auto& t = tune[i];
      const int64_t S = t.image.size(1);
      const auto boxes = as_arrays(boxes_from_points(t.points, size_t(n_ex), t.box, S, S, 1000 + i));
      auto [b, v] = exemplar_vectors(net, t.image, boxes);
      maps.push_back(run_tile(net, t.image.unsqueeze(0), b, v, MaskMode::kSeg, ms, boxes)[0][0]);
      truth.push_back(t.points);
    }
  }
  const float thr = tune_peak_threshold_on(maps, truth, md, req["eval_radius"].get<double>());

  nlohmann::json kinds = nlohmann::json::array();
  for (const auto& k : recipe.kinds) kinds.push_back({{"name", k.name}, {"box", k.box}, {"sigma", k.sigma}});
  nlohmann::json meta{
      {"architecture", cfg.to_json()},
      {"input", spec.to_json()},
      {"tiling", {{"tile_size", 512}, {"overlap", 96}}},
      {"thresholds",
       {{"mask_threshold", ms.mask_threshold}, {"delta", ms.delta}, {"similarity_threshold", ms.similarity_threshold},
        {"mask_output", ms.mask_output}, {"mask_dilate", ms.dilate}, {"peak_threshold", thr}, {"peak_min_distance", md},
        {"tuned_on", "peak_threshold: single-kind val tiles, max point F1"}, {"mask_tuning", mask_tuning}}},
      {"kmeans", {{"k_min", k_min}, {"k_max", k_max}, {"n_init", 3}, {"embedding", "counter backbone, pooled, L2-normalised"}}},
      {"classes", {"cell"}},
      {"eval_radius", req["eval_radius"]},
      {"kinds", kinds},
      {"provenance",
       {{"recipe", recipe.json}, {"train_tiles", train_tiles.size()}, {"val_tiles", val_tiles.size()},
        {"segmenter_train_items", bench_train.size()}, {"segmenter_val_items", bench_val.size()},
        {"counter_initialised_from", init_meta}}},
      {"training",
       {{"counter", {{"epochs_run", counter_report["epochs_run"]}, {"seconds", counter_report["seconds"]},
                     {"best_val_mae", best_mae}, {"best_epoch", best_epoch}, {"history", counter_report["history"]}}},
        {"pseudo_masks", {{"kind", pm}, {"k_histogram", khist},
                          {"mean_l2_no_mask", pseudo_err_none / bench_train.size()},
                          {"mean_l2_chosen", pseudo_err_best / bench_train.size()}}},
        {"segmenter", {{"epochs_run", seg_report["epochs_run"]}, {"seconds", seg_report["seconds"]},
                       {"best_val_error", best_seg}, {"best_epoch", best_seg_epoch}, {"history", seg_report["history"]}}}}}};
  run.save(meta, *net, device_name(device));
  return {{"out", out}, {"seconds", run.seconds()}, {"best_val_mae", best_mae}, {"best_seg_val_error", best_seg},
          {"k_histogram", khist}, {"peak_threshold", thr}};
}

nlohmann::json evaluate(const nlohmann::json& req0, const Progress& progress) {
  const nlohmann::json req = resolve_options("exemplar evaluate", eval_options(), req0);
  const std::string model_dir = req["model"], data_dir = req["dataset"];
  CC_CHECK(!model_dir.empty() && !data_dir.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar evaluate: \"model\" and \"dataset\" are required");
  const auto files = read_model(model_dir);
  CC_CHECK(files.meta.value("method", "") == "exemplar", CELLCOUNT_ERR_WRONG_METHOD, "exemplar evaluate: not an exemplar model");
  auto loaded = load_method(find_method("exemplar"), files);  // (under the generator lock, as every load)
  auto& method = static_cast<ExemplarMethod&>(*loaded);
  const MaskMode mode = parse_mode(req["mask"]);
  MaskSettings ms;
  const auto& th = files.meta.at("thresholds");
  ms.mask_threshold = th.value("mask_threshold", ms.mask_threshold);
  ms.delta = th.value("delta", ms.delta);
  ms.similarity_threshold = th.value("similarity_threshold", ms.similarity_threshold);
  ms.mask_output = req["mask_output"].is_boolean() ? req["mask_output"].get<bool>() : th.value("mask_output", true);
  ms.dilate = req["mask_dilate"].is_number_integer() ? req["mask_dilate"].get<int64_t>() : th.value("mask_dilate", int64_t(0));
  if (req["mask_threshold"].is_number()) ms.mask_threshold = req["mask_threshold"].get<double>();
  CC_CHECK(ms.dilate >= 0 && ms.dilate <= 8, CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar evaluate: mask_dilate must be in 0..8");
  ms.k = req["k"];
  CC_CHECK(ms.k >= 1 && ms.k <= 64, CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar evaluate: k must be in 1..64");
  ms.seed = req["seed"];
  const auto ds = load_dataset(data_dir, req["split_file"].get<std::string>());
  const std::string split = req["split"];
  auto idx = ds.indices(split);
  CC_CHECK(!idx.empty(), CELLCOUNT_ERR_DATASET, "exemplar evaluate: split \"" + split + "\" of '" + data_dir + "' is empty");
  const int64_t limit = req["limit"];
  if (limit > 0 && size_t(limit) < idx.size()) idx.resize(size_t(limit));
  PredictOptions opt;
  opt.device = resolve_device(req["device"]);
  opt.precision = resolve_precision(req["precision"], opt.device);
  opt.want_density = true;
  const double box_size = req["box_size"];
  const int64_t n_ex = req["exemplars"];
  bool multi = false;
  // The core's loop; the two-kind images are measured by the benchmark's error instead of |count - truth|.
  std::vector<std::vector<Box>> used_boxes;
  auto boxes_of = [&](const EvalItem& it) {
    const auto& s = *it.sample;
    if (!s.boxes.empty()) return s.boxes;
    CC_CHECK(box_size > 0 && s.has_points, CELLCOUNT_ERR_DATASET,
             "exemplar evaluate: '" + s.image + "' has no exemplar boxes (boxes.csv); give \"box_size\" to draw them from the points");
    return boxes_from_points(s.points, size_t(n_ex), float(box_size), it.image.size(2), it.image.size(1),
                             ms.seed * 1000003ULL + it.position);
  };
  auto counts = count_metric([&](const EvalItem& it, const Prediction& p, nlohmann::json& row) -> std::pair<double, double> {
    const auto& s = *it.sample;
    if (ds.class_names.size() >= 2 && s.has_points) {
      multi = true;
      const auto interest = interest_of(s, used_boxes.back(), ds.class_names.size(), it.image.size(2));
      double yi, ye;
      const double e = benchmark_error(p.density, interest, yi, ye);
      const double y = double(interest.points.size());
      row.update({{"truth", y}, {"interest", yi}, {"elsewhere", ye}, {"error", e}});
      return {y + e, y};  // |pred - truth| is the paper's error
    }
    CC_CHECK(s.count.has_value(), CELLCOUNT_ERR_DATASET, "exemplar evaluate: '" + s.image + "' has no count or points");
    return {p.count, *s.count};
  });
  auto r = run_evaluation(
      ds, idx, 1,
      [&](const EvalItem& it) {
        used_boxes.push_back(boxes_of(it));
        PredictInput in;
        in.image = it.image;
        in.exemplars = check_exemplars(used_boxes.back().data(), used_boxes.back().size(), it.image.size(1),
                                       it.image.size(2), true);
        return method.run(in, opt, mode, ms);
      },
      {counts.get()}, req["per_image"].get<bool>(), progress);
  r.update({{"model", model_dir}, {"method", "exemplar"}, {"dataset", data_dir}, {"split", split},
            {"mask", req["mask"]}, {"device", device_name(opt.device)},
            {"error", multi ? "|y - y_interest| + y_elsewhere (two-kind images)" : "|y - y_hat|"}});
  if (mode == MaskMode::kKMeans) r["k"] = ms.k;
  return r;
}

nlohmann::json synthesize(const nlohmann::json& req0, const Progress& progress) {
  const nlohmann::json req = resolve_options("exemplar synthesize", synth_options(), req0);
  CC_CHECK(req["kind"] == "multikind", CELLCOUNT_ERR_INVALID_ARGUMENT, "exemplar synthesize: kind must be \"multikind\"");
  const std::string final_out = req["out"], recipe_path = req["recipe"];
  CC_CHECK(!final_out.empty() && !recipe_path.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar synthesize: \"recipe\" and \"out\" are required (see datasets/recipes/)");
  const Recipe r = load_recipe(recipe_path);
  // Written whole or not at all (a cancel leaves nothing); overwrite replaces only a folder this tool wrote.
  StagedDir staged(final_out, req["overwrite"], "synthesis.json", "exemplar synthesize");
  const std::string out = staged.path();
  const bool overwrite = false;  // (a fresh temp folder)
  const auto splits = req["splits"].get<std::vector<std::string>>();
  const int64_t n_override = req["n"];
  fs::create_directories(fs::path(out) / "images");
  std::ofstream pts(fs::path(out) / "points.csv"), bx(fs::path(out) / "boxes.csv"), cnt(fs::path(out) / "counts.csv"),
      spl(fs::path(out) / "split.csv"), halves(fs::path(out) / "halves.csv");
  pts << "image,x,y,class\n";
  bx << "image,x0,y0,x1,y1\n";
  cnt << "image,count\n";
  spl << "image,split\n";
  halves << "image,interest_side,interest_kind,other_kind\n";
  nlohmann::json counts = nlohmann::json::object();
  for (size_t si = 0; si < splits.size(); ++si) {
    const auto& split = splits[si];
    const int64_t n = n_override > 0 ? n_override : (r.images.count(split) ? r.images.at(split) : 0);
    if (n <= 0) continue;
    const auto prog = progress.sub(float(si) / splits.size(), float(si + 1) / splits.size());
    std::vector<std::vector<Tile>> tiles;
    for (size_t k = 0; k < r.kinds.size(); ++k) tiles.push_back(kind_tiles(r, k, split, prog.sub(0, 0.5)));
    auto images = compose_benchmark(r, tiles, split, n);
    for (size_t i = 0; i < images.size(); ++i) {
      prog.report(0.5f + 0.5f * float(i) / images.size(), "writing " + split);
      const auto& im = images[i];
      char name[96];
      std::snprintf(name, sizeof name, "images/%s_%04zu.png", split.c_str(), i);
      io::write_image((fs::path(out) / name).string(), tensor_to_image(im.image.round()), 8, overwrite);
      int64_t y = 0;
      for (const auto& p : im.points) {
        pts << name << "," << p.x << "," << p.y << "," << r.kinds[p.cls].name << "\n";
        y += p.cls == im.interest_kind && ((p.x < r.size / 2.0f) == im.interest_left);
      }
      for (const auto& b : im.exemplars) bx << name << "," << b.x0 << "," << b.y0 << "," << b.x1 << "," << b.y1 << "\n";
      cnt << name << "," << y << "\n";
      spl << name << "," << split << "\n";
      halves << name << "," << (im.interest_left ? "left" : "right") << "," << r.kinds[im.interest_kind].name << ","
             << r.kinds[im.other_kind].name << "\n";
    }
    counts[split] = images.size();
  }
  std::ofstream(fs::path(out) / "recipe.json") << r.json.dump(2) << "\n";
  for (auto* f : {&pts, &bx, &cnt, &spl, &halves}) f->close();
  CC_CHECK(pts.good() && bx.good() && cnt.good() && spl.good() && halves.good(), CELLCOUNT_ERR_IO,
           "exemplar synthesize: error writing the CSV files in '" + out + "'");
  nlohmann::json record = req;
  record.erase("overwrite");
  staged.commit(nlohmann::json{{"request", record}, {"library_version", CELLCOUNT_VERSION_STRING}}.dump(2));
  return {{"out", final_out}, {"kind", "multikind"}, {"images", counts}, {"seed", r.seed}};
}

// The method's own prediction options (beside the generic params of the C ABI).
Options predict_options() {
  return {Opt::number("mask_threshold", 0.6)
              .range(-1.0, 1.0)
              .help("segmentation mask cut-off on the cosine mask: pixels at least this are counted (-1 = all; "
                    "the model's tuned value by default)")};
}

}  // namespace
}  // namespace cellcount::exemplar

// The method's factory, called by the registration list that CMake generates from method.cmake.
namespace cellcount {
MethodSpec method_spec_exemplar() {
  using namespace exemplar;
  MethodSpec s("exemplar", "Count like exemplars",
               "Seg-then-count: exemplar-based segmentation from pseudo-labelled masks, then a class-agnostic counter (Xu et al., 2023)");
  s.needs_exemplars = true;
  s.load = [](const ModelFiles& f) { return std::make_unique<ExemplarMethod>(f); };
  s.train = train;
  s.evaluate = evaluate;
  s.synthesize = synthesize;
  s.options = [](const std::string& kind) {
    if (kind == "train") return train_options();
    if (kind == "evaluate") return eval_options();
    if (kind == "synthesize") return synth_options();
    if (kind == "predict") return predict_options();
    return Options{};
  };
  return s;
}
}  // namespace cellcount
