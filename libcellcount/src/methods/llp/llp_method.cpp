// llp: detect and classify cells, trained from per-image class proportions (paper 002: Vertex Proportion
// loss + Deep Sparse Detector). Options, training (reconstruction first, then the classifier from
// proportions), prediction, evaluation, and the factory.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "core/csv.h"
#include "core/dataset.h"
#include "core/device.h"
#include "core/error.h"
#include "core/eval_loop.h"
#include "core/evaluate.h"
#include "core/image_tensor.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/method.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/options.h"
#include "core/peaks.h"
#include "core/train.h"
#include "core/train_run.h"
#include "io/image_file.h"
#include "methods/llp/llp_loss.h"
#include "methods/llp/llp_net.h"
#include "methods/llp/llp_synth.h"
#include "methods/llp/vp_solver.h"

namespace fs = std::filesystem;

namespace cellcount::llp {
namespace {

// The exact solver's speed (the figures: N = 500, K = 3 about 0.5 ms; N = 5000, K = 5 20-27 ms on
// one core). Random VP-CE costs of softmax predictions, Y drawn on the simplex, fixed seed.
nlohmann::json solver_bench(const nlohmann::json& req) {
  const auto sizes = req["sizes"];
  const int64_t repeat = req["repeat"];
  nlohmann::json rows = nlohmann::json::array();
  std::mt19937_64 rng(req["seed"].get<uint64_t>());
  for (const auto& nk : sizes) {
    CC_CHECK(nk.is_array() && nk.size() == 2 && nk[0].is_number_integer() && nk[1].is_number_integer(),
             CELLCOUNT_ERR_INVALID_ARGUMENT, "llp solver_bench: \"sizes\" must be [[N, K], ...]");
    const int64_t N = nk[0], K = nk[1];
    CC_CHECK(N >= 0 && N <= 1000000 && K >= 1 && K <= 64, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "llp solver_bench: N must be in 0..1000000 and K in 1..64");
    std::vector<double> ms;
    int64_t aug = 0;
    for (int64_t r = 0; r <= repeat; ++r) {
      std::vector<double> c(static_cast<size_t>(N * K)), y(static_cast<size_t>(K));
      std::exponential_distribution<double> e(1.0);
      double s = 0;
      for (auto& v : y) s += (v = e(rng));
      for (auto& v : y) v /= s;
      std::normal_distribution<double> g(0.0, 2.0);
      for (int64_t i = 0; i < N; ++i) {
        double m = -1e300, z = 0;
        std::vector<double> l(static_cast<size_t>(K));
        for (auto& v : l) m = std::max(m, v = g(rng));
        for (auto v : l) z += std::exp(v - m);
        for (int64_t k = 0; k < K; ++k) c[size_t(i * K + k)] = -(l[size_t(k)] - m - std::log(z));  // -log softmax
      }
      const auto t0 = std::chrono::steady_clock::now();
      const auto t = solve_transport(c.data(), N, K, y.data());
      const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) ms.push_back(dt);  // r == 0 warms up
      aug = t.augmentations;
    }
    std::sort(ms.begin(), ms.end());
    rows.push_back({{"n", N}, {"k", K}, {"ms_median", ms[ms.size() / 2]}, {"ms_min", ms.front()},
                    {"repeats", repeat}, {"augmentations", aug}});
  }
  return {{"solver", "successive shortest paths on the class nodes (exact)"}, {"threads", 1}, {"bench", rows}};
}

// ---------------------------------------------------------------------------------------------- input

// The image as the network takes it ([1,H,W] float). Holograms: grey, then contrast against the mean
// intensity, x / mean(x) - 1 (background about 0, cells sparse after T). Identity preset: the core's
// percentile normalisation (background about 0 for fluorescence).
torch::Tensor prepare_input(const torch::Tensor& raw, const InputSpec& spec, const Optics& optics,
                            const IntensityRange& range = std::nullopt) {
  auto x = spec.prepare(raw, range);
  if (!optics.identity()) {
    const double m = x.mean().item<double>();
    CC_CHECK(m > 0, CELLCOUNT_ERR_INVALID_ARGUMENT, "llp: a hologram's mean intensity must be positive");
    x = x / m - 1.0;
  }
  return x;
}

InputSpec input_spec(const Optics& optics) {
  InputSpec s;
  s.channels = 1;
  s.rgb_rule = "grey";
  s.align = 1;
  s.min_side = 16;
  if (!optics.identity()) {
    s.normalization.mode = "fixed";  // raw intensities; the contrast is taken in prepare_input
    s.normalization.scale = 1.0;
    s.normalization.offset = 0.0;
  }
  return s;
}

struct Detection {
  std::vector<Point> points;   // cls set by the classifier (0 before)
  torch::Tensor embeddings;    // [N, 2d] float CPU
};

// Detection at inference: LocalSoftMax heatmap, the core's peak finder (threshold + NMS at min_distance).
Detection detect(DsdNet& net, const torch::Tensor& x, double threshold, double min_distance, torch::Tensor* heat_out = nullptr) {
  torch::NoGradGuard ng;
  auto e = net->encode(x.unsqueeze(0));
  auto heat = e.heat[0][0].to(torch::kCPU, torch::kFloat32).contiguous();
  if (heat_out) *heat_out = heat;
  Detection d;
  d.points = find_peaks(heat.data_ptr<float>(), heat.size(0), heat.size(1), float(threshold), float(min_distance));
  std::vector<std::pair<int64_t, int64_t>> yx;
  for (const auto& p : d.points) yx.push_back({int64_t(std::lround(p.y)), int64_t(std::lround(p.x))});
  d.embeddings = net->embeddings_at(e, 0, yx).to(torch::kCPU, torch::kFloat32);
  return d;
}

// ---------------------------------------------------------------------------------------------- the model

class LlpMethod : public ModelMethod {
 public:
  explicit LlpMethod(const ModelFiles& f)
      : ModelMethod(f.meta), cfg_(DsdConfig::from_json(meta_.at("architecture"))), net_(cfg_) {
    CC_CHECK(meta_.contains("thresholds") && meta_["thresholds"].is_object() && meta_["thresholds"].contains("detect_threshold"),
             CELLCOUNT_ERR_MODEL_FORMAT, "'" + f.dir + "/model.json' has no \"thresholds\" with \"detect_threshold\"");
    CC_CHECK(meta_.contains("classes") && meta_["classes"].is_array() && int64_t(meta_["classes"].size()) == cfg_.classes,
             CELLCOUNT_ERR_MODEL_FORMAT, "'" + f.dir + "/model.json': \"classes\" must list architecture.classes names");
    load_weights(*net_, f);
    net_->eval();
  }
  Prediction predict(const PredictInput& in, const PredictOptions& o) override {
    move_to(*net_, o.device);
    double thr = meta_.at("thresholds").at("detect_threshold").get<double>();
    if (o.method_options.contains("detect_threshold") && o.method_options["detect_threshold"].is_number())
      thr = o.method_options["detect_threshold"].get<double>();
    if (!std::isnan(o.peak_threshold)) thr = o.peak_threshold;  // the generic parameter wins when given
    const double md = peak_settings(o).second;
    o.progress.report(0.0f, "detecting");
    auto x = prepare_input(in.image, spec_, cfg_.optics, o.normalization_range).to(o.device);
    auto d = detect(net_, x, thr, md);
    Prediction p = classify_detections(d, in.region);
    p.precision = torch::kFloat32;  // the detector and classifier compute in fp32 whatever precision is asked
    return p;
  }
  Prediction classify_detections(Detection d, const torch::Tensor& region) {
    Prediction p;
    p.class_counts.assign(size_t(cfg_.classes), 0.0);
    if (!d.points.empty()) {
      torch::NoGradGuard ng;
      auto prob = torch::softmax(net_->classify(d.embeddings.to(device_)), 1).to(torch::kCPU);
      auto arg = prob.argmax(1);
      for (size_t i = 0; i < d.points.size(); ++i) d.points[i].cls = int32_t(arg[int64_t(i)].item<int64_t>());
    }
    p.points = points_in_region(d.points, region);
    for (const auto& q : p.points) p.class_counts[size_t(q.cls)] += 1;
    p.count = double(p.points.size());
    return p;
  }
  DsdNet& net() { return net_; }
  const DsdConfig& cfg() const { return cfg_; }
  const InputSpec& spec() const { return spec_; }
  const nlohmann::json& meta() const { return meta_; }

 private:
  DsdConfig cfg_;
  DsdNet net_;
};

// ---------------------------------------------------------------------------------------------- options

Options train_options() {
  Options o = common_train_options("llp");
  add_options(o, {
      Opt::path("dataset").help("dataset folder with images and proportions.csv (points.csv optional: evaluation only)").needed(),
      Opt::path("split_file").help("split.csv to use (\"\" = the dataset's own, else 80/20 by seed)"),
      Opt::choice("preset", "hologram", {"hologram", "identity"})
          .help("hologram: lensless images through the wide angular spectrum T; identity: fluorescence / bright-field (T = 1)"),
      Opt::number("z_um", 1650.0).range(-1e6, 1e6).help("hologram focal depth (um)").folded(),
      Opt::number("wavelength_um", 0.340).range(0.01, 100.0).help("hologram wavelength (um)").folded(),
      Opt::number("pixel_um", 1.837).range(0.01, 1000.0).help("pixel size (um)").folded(),
      Opt::string_list("classes", {}).help("class names of the model ([] = the dataset's); a class in proportions.csv outside them is an error"),
      Opt::integer("width", 8).range(1, 512).help("complex channels of the encoder and reconstruction head"),
      Opt::integer("features", 8).range(1, 512).help("d: complex feature maps of the sparse encoding (embedding = 2d reals)"),
      Opt::integer("window", 7).range(3, 63).help("m: LocalSoftMax window (odd, pixels)").folded(),
      Opt::number("lambda", 1.0).range(1e-6, 1e6).help("lambda of LocalSoftMax(lambda ||A||^2)").folded(),
      Opt::integer("hidden", 32).range(0, 4096).help("classifier hidden units (0: one linear layer)").folded(),
      Opt::int_list("scales", {1}).range(1, 63)
          .help("embedding: A at the detection (1, the paper's) and A averaged over s x s around it for each further odd s ([]: no A, the other parts only)"),
      Opt::int_list("image_scales", {}).range(1, 63)
          .help("embedding (our addition, [] = the paper's): |T(x)|^2 averaged over s x s around the detection, per odd s"),
      Opt::int_list("texture_scales", {}).range(3, 63)
          .help("embedding (our addition, [] = off): local s.d. of |T(x)|^2 and its mean deviation from the 3 x 3 mean, over s x s, per odd s >= 3"),
      Opt::int_list("field_scales", {}).range(1, 63)
          .help("embedding (our addition, [] = off): real and imaginary parts of T(x) averaged over s x s, per odd s"),
      Opt::integer("embed_snap", 0).range(0, 31)
          .help("embedding (our addition, 0 = at the detection): taken at the peak of |T(x)|^2 averaged over 5 x 5 within this many pixels"),
      Opt::path("init_from").help("an llp model whose detector (encoder and reconstruction head, same architecture) this training starts from; the classifier is trained anew"),
      Opt::integer("recon_epochs", 10).range(0, 100000).help("stage 1: self-supervised reconstruction epochs"),
      Opt::number("train_threshold", 0.0).range(0.0, 1.0).help("heatmap threshold of the sparse mask while training the reconstruction").folded(),
      Opt::integer("nms", 5).range(1, 63).help("NMS window of the training mask (odd, pixels)").folded(),
      Opt::number("sparsity", 0.001).range(0.0, 1e3).help("weight of the L1 penalty on A (background features to 0)").folded(),
      Opt::number("detect_threshold", 0.2).range(0.0, 1.0).help("heatmap threshold of a detection when it is not tuned"),
      Opt::boolean("tune_threshold", true).help("tune detect_threshold on the val images' points when they have some (localisation only)"),
      Opt::number("peak_min_distance", 3.0).range(0.0, 1000.0).help("NMS distance of detections (pixels)").folded(),
      Opt::number("eval_radius", 4.0).range(0.1, 1000.0).help("match radius of detection metrics (pixels)"),
      Opt::choice("loss", "vp_ce", {"vp_ce", "vp_l2", "kl", "mse", "supervised"})
          .help("stage 2 classifier loss: VP-CE, VP-L2, bag KL-div or MSE from proportions; supervised = per-cell classes from points (ceiling)"),
      Opt::choice("bag", "auto", {"auto", "image", "donor"})
          .help("what one proportion label covers: image, donor (donors.csv: image,donor), auto = donor when donors.csv exists"),
      Opt::integer("warmup_kl_epochs", 0).range(0, 100000)
          .help("VP losses: first train the classifier this many epochs with the bag KL-div (the paper initialises instance-level LLP methods so)"),
      Opt::integer("cls_epochs", 60).range(0, 100000).help("stage 2: classifier epochs (over bags)"),
      Opt::number("cls_lr", 0.003).range(1e-8, 10.0).help("classifier learning rate"),
      Opt::integer("cls_batch", 8).range(1, 100000).help("bags per classifier step"),
      Opt::boolean("proportions_from_points", false)
          .help("make each image's proportions from the classes of its points (bags from annotated images; the classifier still sees only the proportions)"),
      Opt::number("proportion_tolerance", 0.02).range(0.0, 1.0)
          .help("|sum of an image's fractions - 1| above this is an error; below it they are renormalised (warning)"),
      Opt::string_list("compare_losses", {})
          .help("also train classifiers with these losses on the same embeddings and record their test metrics (model.json metrics.loss_comparison)"),
  });
  set_default(o, "lr", 3e-3);
  set_default(o, "batch_size", 4);
  set_default(o, "schedule", "constant");
  set_default(o, "device", "cpu");
  return o;
}

Options predict_options() {
  return {Opt::number("detect_threshold", 0.2)
              .range(0.0, 1.0)
              .help("LocalSoftMax heatmap threshold of a detection (the model's tuned value by default)")};
}

// ---------------------------------------------------------------------------------------------- data

// image -> donor from donors.csv (empty when the dataset has none).
std::map<std::string, std::string> read_donors(const std::string& dir) {
  std::map<std::string, std::string> m;
  const auto f = fs::path(dir) / "donors.csv";
  if (!fs::exists(f)) return m;
  auto t = read_csv(f.string());
  const int ci = t.column("image"), cd = t.column("donor");
  CC_CHECK(ci >= 0 && cd >= 0, CELLCOUNT_ERR_DATASET, f.string() + ": needs columns image,donor");
  for (const auto& r : t.rows) m[r[size_t(ci)]] = r[size_t(cd)];
  return m;
}

// Dataset class id -> model class id, by name. A dataset class the model lacks is CELLCOUNT_ERR_DATASET.
std::vector<int32_t> class_map(const std::vector<std::string>& ds_names, const std::vector<std::string>& model_names,
                               const std::string& dir) {
  std::vector<int32_t> m;
  for (const auto& n : ds_names) {
    auto it = std::find(model_names.begin(), model_names.end(), n);
    CC_CHECK(it != model_names.end(), CELLCOUNT_ERR_DATASET,
             "llp: class '" + n + "' of '" + dir + "' (proportions.csv / points.csv) is not one of the model's classes [" +
                 [&] { std::string s; for (const auto& x : model_names) s += (s.empty() ? "" : ", ") + x; return s; }() + "]");
    m.push_back(int32_t(it - model_names.begin()));
  }
  return m;
}

// Per-class proportion MAE (percentage points), per image and, with donors, per donor (all of a donor's
// cells pooled), plus the counts of the predicted classes. Hard assignment (argmax), as the paper.
class ProportionMetric : public EvalMetric {
 public:
  ProportionMetric(std::vector<std::string> classes, std::map<std::string, std::string> donors)
      : classes_(std::move(classes)), donors_(std::move(donors)) {}
  void add(const EvalItem& item, const Prediction& p, nlohmann::json&) override {
    if (!item.has_points) return;
    const size_t K = classes_.size();
    std::vector<double> t(K, 0.0), q(K, 0.0);
    for (const auto& x : item.points) if (x.cls >= 0 && size_t(x.cls) < K) t[size_t(x.cls)] += 1;
    for (size_t k = 0; k < K && k < p.class_counts.size(); ++k) q[k] = p.class_counts[k];
    per_image_.push_back({q, t});
    auto it = donors_.find(item.sample->image);
    if (it != donors_.end()) {
      auto& d = per_donor_[it->second];
      d.first.resize(K, 0.0);
      d.second.resize(K, 0.0);
      for (size_t k = 0; k < K; ++k) d.first[k] += q[k], d.second[k] += t[k];
    }
  }
  static nlohmann::json per_class_mae(const std::vector<std::pair<std::vector<double>, std::vector<double>>>& rows,
                                      const std::vector<std::string>& names) {
    const size_t K = names.size();
    std::vector<double> err(K, 0.0);
    size_t n = 0;
    for (const auto& [q, t] : rows) {
      double sq = 0, st = 0;
      for (size_t k = 0; k < K; ++k) sq += q[k], st += t[k];
      if (st <= 0) continue;
      for (size_t k = 0; k < K; ++k) err[k] += std::fabs((sq > 0 ? q[k] / sq : 1.0 / double(K)) - t[k] / st);
      ++n;
    }
    nlohmann::json j = nlohmann::json::object();
    double mean = 0;
    for (size_t k = 0; k < K; ++k) {
      j[names[k]] = n ? 100.0 * err[k] / double(n) : 0.0;
      mean += n ? 100.0 * err[k] / double(n) / double(K) : 0.0;
    }
    return {{"per_class_pp", j}, {"mean_pp", mean}, {"n", n}};
  }
  void report(nlohmann::json& r) const override {
    r["proportions"]["per_image"] = per_class_mae(per_image_, classes_);
    if (!per_donor_.empty()) {
      std::vector<std::pair<std::vector<double>, std::vector<double>>> rows;
      for (const auto& [k, v] : per_donor_) rows.push_back(v);
      r["proportions"]["per_donor"] = per_class_mae(rows, classes_);
    }
  }

 private:
  std::vector<std::string> classes_;
  std::map<std::string, std::string> donors_;
  std::vector<std::pair<std::vector<double>, std::vector<double>>> per_image_;
  std::map<std::string, std::pair<std::vector<double>, std::vector<double>>> per_donor_;
};

// The figures of one classifier on precomputed detections of `idx` (dataset class ids remapped to the model's).
nlohmann::json score(const Dataset& ds, const std::vector<size_t>& idx, const std::vector<int32_t>& cmap,
                     const std::vector<std::string>& classes, const std::map<std::string, std::string>& donors,
                     double radius, const std::function<Prediction(const EvalItem&)>& predict, bool per_image = false,
                     const Progress& progress = Progress()) {
  Dataset mapped = ds;  // truth classes in the model's ids
  for (auto& s : mapped.samples)
    for (auto& p : s.points) p.cls = (p.cls >= 0 && size_t(p.cls) < cmap.size()) ? cmap[size_t(p.cls)] : -1;
  auto pm = point_metric(radius);
  auto cm = class_metric(classes, radius);
  ProportionMetric prop(classes, donors);
  return run_evaluation(mapped, idx, 1, predict, {pm.get(), cm.get(), &prop}, per_image, progress);
}

// A short summary row of a report (the acceptance table).
nlohmann::json summary(const nlohmann::json& r, const std::vector<std::string>& classes) {
  nlohmann::json row;
  if (r.contains("points")) {
    row["precision"] = r["points"]["precision"];
    row["recall"] = r["points"]["recall"];
    row["f1"] = r["points"]["f1"];
  }
  if (r.contains("classes")) {
    const auto& c = r["classes"];
    for (const auto& k : classes)
      row["accuracy_" + k] = c["per_class"].contains(k) ? c["per_class"][k]["instance_accuracy"] : nlohmann::json();
    row["average_accuracy"] = c["average_instance_accuracy"];
  }
  if (r.contains("proportions")) row["proportions"] = r["proportions"];
  return row;
}

// ---------------------------------------------------------------------------------------------- training

struct Bag {
  std::vector<size_t> images;  // positions in the training list
  std::vector<double> y;       // proportions (model ids)
};

nlohmann::json train(const nlohmann::json& request, const Progress& progress) {
  TrainRun run("llp", train_options(), request, {"detector.ckpt", "classifier.ckpt"},
               {"recon_epochs", "cls_epochs", "threads", "compare_losses"});
  const auto& req = run.request();
  const auto device = resolve_device(req["device"]);
  const std::string data_dir = req["dataset"];
  auto ds = load_dataset(data_dir, req["split_file"]);
  run.split_if_unsplit(ds);
  std::vector<std::string> classes = req["classes"].get<std::vector<std::string>>();
  if (classes.empty()) classes = ds.class_names;
  const auto cmap = class_map(ds.class_names, classes, data_dir);
  const int64_t K = int64_t(classes.size());
  const BagLoss loss_kind = parse_bag_loss(req["loss"]);
  for (const auto& name : req["compare_losses"].get<std::vector<std::string>>()) parse_bag_loss(name);  // before any work
  DsdConfig cfg;
  cfg.optics = Optics::from_json({{"preset", req["preset"]}, {"z_um", req["z_um"]}, {"wavelength_um", req["wavelength_um"]},
                                  {"pixel_um", req["pixel_um"]}});
  cfg.width = req["width"];
  cfg.features = req["features"];
  cfg.window = req["window"];
  cfg.lambda = req["lambda"];
  cfg.hidden = req["hidden"];
  cfg.scales = req["scales"].get<std::vector<int64_t>>();
  cfg.image_scales = req["image_scales"].get<std::vector<int64_t>>();
  cfg.texture_scales = req["texture_scales"].get<std::vector<int64_t>>();
  cfg.field_scales = req["field_scales"].get<std::vector<int64_t>>();
  cfg.embed_snap = req["embed_snap"];
  cfg.classes = K;
  cfg = DsdConfig::from_json(cfg.to_json());  // range checks (odd window)
  const int64_t nms = req["nms"];
  CC_CHECK(nms % 2 == 1, CELLCOUNT_ERR_INVALID_ARGUMENT, "llp train: nms must be odd");
  const auto spec = input_spec(cfg.optics);
  const auto train_idx = ds.indices("train");
  CC_CHECK(!train_idx.empty(), CELLCOUNT_ERR_DATASET, "llp train: the train split of '" + data_dir + "' is empty");
  const double tol = req["proportion_tolerance"];
  // Bags and their proportions, checked before any work.
  auto donors = read_donors(data_dir);
  std::string bag_mode = req["bag"];
  if (bag_mode == "auto") bag_mode = donors.empty() ? "image" : "donor";
  CC_CHECK(bag_mode != "donor" || !donors.empty(), CELLCOUNT_ERR_DATASET,
           "llp train: bag \"donor\" needs donors.csv (image,donor) in '" + data_dir + "'");
  std::vector<std::vector<double>> props(train_idx.size());
  const bool from_points = req["proportions_from_points"];
  for (size_t t = 0; t < train_idx.size(); ++t) {
    const auto& s = ds.samples[train_idx[t]];
    if (loss_kind == BagLoss::supervised) continue;
    if (from_points) {
      CC_CHECK(s.has_points && !s.points.empty(), CELLCOUNT_ERR_DATASET,
               "llp train: proportions_from_points: image '" + s.image + "' has no points");
      props[t].assign(size_t(K), 0.0);
      for (const auto& q : s.points) props[t][size_t(cmap[size_t(q.cls)])] += 1.0 / double(s.points.size());
      continue;
    }
    CC_CHECK(!s.proportions.empty(), CELLCOUNT_ERR_DATASET,
             "llp train: image '" + s.image + "' has no row in proportions.csv (every training image needs its class proportions)");
    std::vector<std::pair<int32_t, double>> given;
    for (const auto& [k, v] : s.proportions) given.push_back({cmap[size_t(k)], v});
    props[t] = checked_proportions(given, K, tol, data_dir + "/proportions.csv, image '" + s.image + "'");
  }
  std::vector<Bag> bags;
  {
    std::map<std::string, Bag> by;
    for (size_t t = 0; t < train_idx.size(); ++t) {
      const auto& s = ds.samples[train_idx[t]];
      std::string key = s.image;
      if (bag_mode == "donor") {
        auto it = donors.find(s.image);
        CC_CHECK(it != donors.end(), CELLCOUNT_ERR_DATASET, "llp train: image '" + s.image + "' is not in donors.csv");
        key = it->second;
      }
      auto& b = by[key];
      if (!b.images.empty() && loss_kind != BagLoss::supervised) {
        double diff = 0;
        for (int64_t k = 0; k < K; ++k) diff += std::fabs(b.y[size_t(k)] - props[t][size_t(k)]);
        CC_CHECK(diff < 1e-3, CELLCOUNT_ERR_DATASET,
                 "llp train: donor '" + key + "' has images with different proportions (" + s.image + "); use bag \"image\"");
      }
      if (b.images.empty()) b.y = props[t];
      b.images.push_back(t);
    }
    for (auto& [k, b] : by) bags.push_back(b);
  }
  // Images, prepared once.
  auto load = [&](size_t i) {
    auto raw = image_to_tensor(io::read_image(ds.image_path(i)));
    check_points_inside(ds.samples[i], raw.size(1), raw.size(2), data_dir);
    return prepare_input(raw, spec, cfg.optics);
  };
  std::vector<torch::Tensor> xs;
  for (size_t t = 0; t < train_idx.size(); ++t) {
    progress.report(0.02f * float(t) / float(train_idx.size()), "reading images");
    xs.push_back(load(train_idx[t]));
  }
  auto net = seeded(run.seed(), [&] { return DsdNet(cfg); });
  nlohmann::json init_prov;
  if (!req["init_from"].get<std::string>().empty()) {
    const std::string from = req["init_from"];
    // The detector (encoder and reconstruction head) must match; the classifier may differ (it is retrained).
    const auto init = read_model_of_method(from, "llp");
    auto theirs = DsdConfig::from_json(init.meta.at("architecture"));
    auto detector = [](DsdConfig c) {
      auto j = c.to_json();
      for (const char* k : {"hidden", "classes", "scales", "image_scales", "texture_scales", "field_scales", "embed_snap"}) j.erase(k);
      return j;
    };
    check_same_architecture(from, "llp", detector(theirs), detector(cfg));
    DsdNet src(theirs);
    load_weights(*src, init);
    copy_state(*net->enc, *src->enc);
    copy_state(*net->dec, *src->dec);
    init_prov = init_provenance(init);
  }
  net->to(device);
  // Stage 1: reconstruction (self-supervised): ||x - T^-1(R(M_A . A))||^2 + sparsity |A|_1.
  TrainConfig tc = TrainConfig::from_json(req);
  tc.epochs = req["recon_epochs"];
  tc.checkpoint = run.checkpoint("detector.ckpt");
  const double train_thr = req["train_threshold"], sparsity = req["sparsity"];
  nlohmann::json recon_report = nlohmann::json::object();
  if (tc.epochs > 0) {
    Trainer trainer(tc, *net);
    recon_report = trainer.fit(
        xs.size(),
        [&](const std::vector<size_t>& batch, std::mt19937_64& rng) {
          std::vector<torch::Tensor> group;
          for (size_t b : batch) group.push_back(Dihedral::random(rng()).apply(xs[b]));
          bool same = true;
          for (const auto& g : group) same = same && g.sizes() == group[0].sizes();
          std::vector<torch::Tensor> parts = same ? std::vector<torch::Tensor>{torch::stack(group)} : std::vector<torch::Tensor>{};
          if (!same) for (const auto& g : group) parts.push_back(g.unsqueeze(0));
          torch::Tensor loss = torch::zeros({}, torch::TensorOptions().device(device));
          for (const auto& x0 : parts) {
            auto x = x0.to(device);
            auto e = net->encode(x);
            auto mask = DsdNetImpl::sparse_mask(e.heat, train_thr, nms);
            auto rec = net->reconstruct(e, mask);
            auto target = torch::complex(x, torch::zeros_like(x));
            loss = loss + (rec - target).abs().pow(2).mean() * double(x.size(0)) +
                   sparsity * (e.re.abs() + e.im.abs()).mean() * double(x.size(0));
          }
          return loss / double(batch.size());
        },
        progress.sub(0.02f, 0.7f));
  }
  net->eval();
  // Detection threshold: tuned on the val images' points when there are some (localisation only; the
  // classifier never sees a point), else the declared value.
  const double min_distance = req["peak_min_distance"], radius = req["eval_radius"];
  double threshold = req["detect_threshold"];
  std::string tuned_on = "not tuned (request's detect_threshold)";
  {
    std::vector<size_t> val;
    for (size_t i : ds.indices("val")) if (ds.samples[i].has_points) val.push_back(i);
    if (req["tune_threshold"].get<bool>() && !val.empty()) {
      if (val.size() > 100) val.resize(100);
      std::vector<torch::Tensor> maps;
      std::vector<std::vector<Point>> truth;
      for (size_t i : val) {
        torch::Tensor heat;
        detect(net, load(i).to(device), 1.0, min_distance, &heat);
        maps.push_back(heat);
        truth.push_back(ds.samples[i].points);
      }
      std::vector<float> grid;
      for (float v = 0.03f; v < 0.95f; v *= 1.15f) grid.push_back(v);
      threshold = tune_peak_threshold_on(maps, truth, float(min_distance), radius, grid);
      tuned_on = "point F1 of " + std::to_string(val.size()) + " val images (localisation only)";
    }
  }
  progress.report(0.72f, "embedding the detections");
  // Stage 2: the classifier from proportions, on the embeddings of the fixed encoder.
  std::vector<Detection> dets;
  for (size_t t = 0; t < xs.size(); ++t) dets.push_back(detect(net, xs[t].to(device), threshold, min_distance));
  {
    std::vector<torch::Tensor> all;
    for (const auto& d : dets) if (d.embeddings.size(0) > 0) all.push_back(d.embeddings);
    if (!all.empty()) {
      auto e = torch::cat(all, 0);
      net->emb_mean.copy_(e.mean(0).to(device));
      net->emb_std.copy_((e.std(0) + 1e-6).to(device));
    }
  }
  // Per-cell labels for the supervised ceiling: the class of the true point each detection matches.
  std::vector<std::vector<int64_t>> labels(dets.size());
  const auto compare = req["compare_losses"].get<std::vector<std::string>>();
  if (loss_kind == BagLoss::supervised || std::count(compare.begin(), compare.end(), "supervised") > 0) {
    for (size_t t = 0; t < dets.size(); ++t) {
      const auto& s = ds.samples[train_idx[t]];
      CC_CHECK(s.has_points, CELLCOUNT_ERR_DATASET, "llp train: loss \"supervised\" needs points.csv classes; '" + s.image + "' has none");
      labels[t].assign(dets[t].points.size(), -1);
      const auto m = match_points(dets[t].points, s.points, radius);
      for (const auto& [pi, ti] : m.pairs) labels[t][pi] = cmap[size_t(s.points[ti].cls)];
    }
  }
  auto train_classifier_impl = [&](const nlohmann::json& rq, torch::nn::Sequential& cls, BagLoss kind,
                                   const std::string& ckpt, const Progress& pr) {
    TrainConfig c2 = TrainConfig::from_json(rq);
    c2.epochs = rq["cls_epochs"];
    c2.lr = rq["cls_lr"];
    c2.batch_size = rq["cls_batch"];
    c2.checkpoint = ckpt;
    Trainer tr(c2, *cls);
    return tr.fit(
        bags.size(),
        [&](const std::vector<size_t>& batch, std::mt19937_64&) {
          torch::Tensor loss;
          int64_t used = 0;
          for (size_t b : batch) {
            std::vector<torch::Tensor> emb;
            std::vector<int64_t> lab;
            for (size_t t : bags[b].images) {
              if (kind == BagLoss::supervised) {
                std::vector<int64_t> keep;
                for (size_t q = 0; q < labels[t].size(); ++q)
                  if (labels[t][q] >= 0) keep.push_back(int64_t(q)), lab.push_back(labels[t][q]);
                emb.push_back(dets[t].embeddings.index_select(0, torch::tensor(keep, torch::kLong)));
              } else {
                emb.push_back(dets[t].embeddings);
              }
            }
            auto e = torch::cat(emb, 0).to(device);
            auto logits = cls->forward((e - net->emb_mean) / net->emb_std);
            auto l = bag_loss(logits, bags[b].y.empty() ? std::vector<double>(size_t(K), 1.0 / double(K)) : bags[b].y, kind, lab);
            if (!l.defined()) continue;  // a bag without detections: skipped
            loss = loss.defined() ? loss + l : l;
            ++used;
          }
          if (!loss.defined()) {  // no bag of this batch had a detection: a zero loss that still has a graph
            auto z = torch::zeros({}, torch::TensorOptions().device(device));
            for (auto& p : cls->parameters()) z = z + 0.0 * p.sum();
            return z;
          }
          return loss / double(used);
        },
        pr);
  };
  auto train_classifier = [&](torch::nn::Sequential& cls, BagLoss kind, const std::string& ckpt, const Progress& pr) -> nlohmann::json {
    const int64_t warm = req["warmup_kl_epochs"];
    nlohmann::json warm_report;
    if (warm > 0 && (kind == BagLoss::vp_ce || kind == BagLoss::vp_l2)) {
      auto sub = req;
      sub["warmup_kl_epochs"] = 0;
      sub["cls_epochs"] = warm;
      // (no checkpoint: the warm-up is cheap and reruns on resume before the main stage loads its checkpoint)
      warm_report = train_classifier_impl(sub, cls, BagLoss::kl, "", pr.sub(0.0f, 0.3f));
    }
    auto r = train_classifier_impl(req, cls, kind, ckpt, warm_report.is_null() ? pr : pr.sub(0.3f, 1.0f));
    if (!warm_report.is_null()) r["warmup_kl"] = warm_report;
    return r;
  };
  nlohmann::json cls_report = nlohmann::json::object();
  if (K >= 2) {
    cls_report = train_classifier(net->cls, loss_kind, run.checkpoint("classifier.ckpt"), progress.sub(0.72f, 0.85f));
  } else {
    cls_report = {{"skipped", "one class: every detection is that class"}};
  }
  net->to(torch::kCPU);
  net->eval();
  // Figures on the test split when it has points (the simulator's): the shipped classifier and, on the same
  // detections, classifiers trained with each loss of compare_losses.
  nlohmann::json metrics = nlohmann::json::object(), comparison = nlohmann::json::array();
  std::vector<size_t> test;
  for (size_t i : ds.indices("test")) if (ds.samples[i].has_points) test.push_back(i);
  if (!test.empty()) {
    progress.report(0.86f, "scoring the test split");
    std::map<size_t, Detection> tdet;
    for (size_t i : test) tdet[i] = detect(net, load(i), threshold, min_distance);
    // Mean normalised entropy of the predicted class probabilities (the paper's collapse indicator).
    auto predict_with = [&](torch::nn::Sequential& cls, std::shared_ptr<std::pair<double, size_t>> ent) {
      return [&, ent, cls](const EvalItem& it) mutable {
        Prediction p;
        p.class_counts.assign(size_t(K), 0.0);
        auto d = tdet.at(it.index);
        if (!d.points.empty()) {
          torch::NoGradGuard ng;
          auto prob = torch::softmax(cls->forward((d.embeddings - net->emb_mean) / net->emb_std), 1);
          auto arg = prob.argmax(1);
          for (size_t q = 0; q < d.points.size(); ++q) d.points[q].cls = int32_t(arg[int64_t(q)].item<int64_t>());
          if (K > 1) ent->first += (-(prob * prob.clamp_min(1e-12).log()).sum(1) / std::log(double(K))).sum().item<double>();
          ent->second += d.points.size();
        }
        for (const auto& q : d.points) p.class_counts[size_t(q.cls)] += 1;
        p.points = d.points;
        p.count = double(p.points.size());
        return p;
      };
    };
    auto ent = std::make_shared<std::pair<double, size_t>>(0.0, 0);
    auto r = score(ds, test, cmap, classes, donors, radius, predict_with(net->cls, ent));
    metrics["test"] = summary(r, classes);
    metrics["test"]["mean_entropy"] = ent->second ? ent->first / double(ent->second) : 0.0;
    metrics["test"]["images"] = test.size();
    metrics["test"]["radius"] = radius;
    for (const auto& name : req["compare_losses"].get<std::vector<std::string>>()) {
      const BagLoss k = parse_bag_loss(name);
      auto cls = seeded(run.seed() + 1, [&] {
        return make_classifier(cfg);
      });
      net->to(device);
      cls->to(device);
      auto rep = K >= 2 ? train_classifier(cls, k, "", Progress()) : nlohmann::json::object();
      net->to(torch::kCPU);
      cls->to(torch::kCPU);
      auto e2 = std::make_shared<std::pair<double, size_t>>(0.0, 0);
      auto r2 = score(ds, test, cmap, classes, donors, radius, predict_with(cls, e2));
      auto row = summary(r2, classes);
      row["loss"] = name;
      row["mean_entropy"] = e2->second ? e2->first / double(e2->second) : 0.0;
      const int64_t ep = rep.value("epochs_run", int64_t(0));
      row["classifier_seconds"] = rep.value("seconds", 0.0);
      row["seconds_per_epoch"] = ep > 0 ? rep.value("seconds", 0.0) / double(ep) : 0.0;
      comparison.push_back(row);
      log_info("llp: " + name + " " + row.dump());
    }
  }
  nlohmann::json meta{{"architecture", cfg.to_json()},
                      {"input", spec.to_json()},
                      {"tiling", {{"tile_size", 4096}, {"overlap", 0}}},
                      {"thresholds", {{"detect_threshold", threshold}, {"peak_min_distance", min_distance}, {"tuned_on", tuned_on}}},
                      {"classes", classes},
                      {"eval_radius", radius},
                      {"training",
                       {{"reconstruction", recon_report},
                        {"classifier", cls_report},
                        {"loss", bag_loss_name(loss_kind)},
                        {"bag", bag_mode},
                        {"proportions_from_points", from_points},
                        {"bags", bags.size()},
                        {"train_images", xs.size()},
                        {"train_threshold", train_thr},
                        {"nms", nms},
                        {"sparsity", sparsity}}},
                      {"metrics", metrics},
                      {"provenance", {{"dataset_split", ds.split_source}}}};
  if (!init_prov.is_null()) meta["provenance"]["initialised_from"] = init_prov;
  if (!comparison.empty()) meta["metrics"]["loss_comparison"] = comparison;
  const int64_t cep = cls_report.value("epochs_run", int64_t(0));
  if (cep > 0) meta["training"]["classifier_seconds_per_epoch"] = cls_report.value("seconds", 0.0) / double(cep);
  run.save(meta, *net, device_name(device));
  return {{"out", run.out()}, {"metrics", meta["metrics"]}, {"seconds", run.seconds()}, {"detect_threshold", threshold}};
}

// ---------------------------------------------------------------------------------------------- evaluation

Options eval_options() {
  Options o = evaluate_options();
  for (const char* k : {"grid"})
    o.erase(std::remove_if(o.begin(), o.end(), [&](const OptionSpec& x) { return x.name == k; }), o.end());
  add_options(o, {
      Opt::choice("method", "llp", {"llp"}).folded(),
      Opt::choice("kind", "model", {"model", "solver_bench", "solve"})
          .help("model: detection, class and proportion metrics of \"model\" on \"dataset\"; solver_bench: time the exact "
                "VP solver on random bags (no model); solve: one transport LP (\"costs\", \"proportions\")"),
      Opt::number("detect_threshold", 0.2).or_null().range(0.0, 1.0).help("heatmap threshold (null = the model's)").folded(),
      Opt::any("sizes", nlohmann::json::array({{500, 3}, {5000, 5}})).help("solver_bench: bags to time, [[N, K], ...]").folded(),
      Opt::integer("repeat", 20).range(1, 10000).help("solver_bench: timed solves per size (after one warm-up)").folded(),
      Opt::integer("seed", 0).range(0, INT64_MAX).help("solver_bench: seed of the random bags").folded(),
      Opt::any("costs", nlohmann::json::array()).help("solve: N x K costs").folded(),
      Opt::any("proportions", nlohmann::json::array()).help("solve: K proportions").folded(),
  });
  for (auto& x : o) {
    if (x.name == "detect_threshold") x.default_value = nullptr;
    if (x.name == "model" || x.name == "dataset") x.required = false;  // not for solver_bench / solve (checked below)
  }
  return o;
}

nlohmann::json solve_request(const nlohmann::json& req) {
  const auto& c = req["costs"];
  const auto& y = req["proportions"];
  CC_CHECK(c.is_array() && y.is_array() && !y.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "llp solve: \"costs\" (N x K) and \"proportions\" (K) are required");
  const int64_t N = int64_t(c.size()), K = int64_t(y.size());
  std::vector<double> cost, prop;
  for (const auto& row : c) {
    CC_CHECK(row.is_array() && int64_t(row.size()) == K, CELLCOUNT_ERR_INVALID_ARGUMENT, "llp solve: every cost row needs K numbers");
    for (const auto& v : row) {
      CC_CHECK(v.is_number(), CELLCOUNT_ERR_INVALID_ARGUMENT, "llp solve: a cost is not a number");
      cost.push_back(v.get<double>());
    }
  }
  for (const auto& v : y) {
    CC_CHECK(v.is_number(), CELLCOUNT_ERR_INVALID_ARGUMENT, "llp solve: a proportion is not a number");
    prop.push_back(v.get<double>());
  }
  const auto t = solve_transport(cost.data(), N, K, prop.data());
  return {{"cost", t.cost}, {"plan", t.plan}, {"n", N}, {"k", K}};
}

nlohmann::json evaluate(const nlohmann::json& req0, const Progress& progress) {
  const auto req = resolve_options("llp evaluate", eval_options(), req0);
  if (req["kind"] == "solver_bench") return solver_bench(req);
  if (req["kind"] == "solve") return solve_request(req);
  const std::string model_dir = req["model"], data_dir = req["dataset"];
  CC_CHECK(!model_dir.empty() && !data_dir.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "llp evaluate: \"model\" and \"dataset\" are required");
  const auto files = read_model(model_dir);
  CC_CHECK(files.meta.value("method", "") == "llp", CELLCOUNT_ERR_WRONG_METHOD, "llp evaluate: '" + model_dir + "' is not an llp model");
  const auto& spec = find_method("llp");
  auto loaded = load_method(spec, files);
  auto& m = static_cast<LlpMethod&>(*loaded);
  const auto ds = load_dataset(data_dir, req["split_file"].get<std::string>());
  const std::string split = req["split"];
  auto idx = ds.indices(split);
  CC_CHECK(!idx.empty(), CELLCOUNT_ERR_DATASET, "llp evaluate: split \"" + split + "\" of '" + data_dir + "' is empty");
  const int64_t limit = req["limit"];
  if (limit > 0 && size_t(limit) < idx.size()) idx.resize(size_t(limit));
  const auto classes = files.meta["classes"].get<std::vector<std::string>>();
  const auto cmap = class_map(ds.class_names, classes, data_dir);
  const double radius = req["radius"].get<double>() > 0 ? req["radius"].get<double>() : files.meta.value("eval_radius", 4.0);
  PredictOptions opt;
  opt.device = resolve_device(req["device"]);
  opt.precision = resolve_precision(req["precision"], opt.device);
  opt.want_density = false;
  if (req["detect_threshold"].is_number()) opt.method_options["detect_threshold"] = req["detect_threshold"];
  auto r = score(ds, idx, cmap, classes, read_donors(data_dir), radius,
                 [&](const EvalItem& it) { return predict_image(m, spec, it.image, {}, {}, opt); },
                 req["per_image"].get<bool>(), progress);
  r["summary"] = summary(r, classes);
  r["model"] = model_dir;
  r["detect_threshold"] = req["detect_threshold"].is_number() ? req["detect_threshold"].get<double>()
                                                               : files.meta["thresholds"]["detect_threshold"].get<double>();
  return r;
}

}  // namespace
}  // namespace cellcount::llp

namespace cellcount {
MethodSpec method_spec_llp() {
  using namespace llp;
  MethodSpec s("llp", "Detect and classify cells",
               "Deep Sparse Detector trained from class proportions with the Vertex Proportion loss (Pacheco et al., 2024)");
  s.load = [](const ModelFiles& f) { return std::make_unique<LlpMethod>(f); };
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
