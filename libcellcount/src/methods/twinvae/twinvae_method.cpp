// twinvae: count cells in microfluidic chamber frames with the Twin-VAE of paper 003 (Stallmann, Kenneweg,
// Hammer), trained on the paper's synthetic frames and on natural frames of which only a few are labelled, with
// transfer between modalities (CODE-FACTS section 4, METHODS.md section 4).
// Inference: any chamber image (at least 32x32) is made grey and resized to 128x128 (as the paper's data);
// count = the regressor's output on mu of the natural reader (not rounded; floored at 0); no points; the
// reconstruction is the natural-to-synthetic translation (natural reader -> shared core -> synthetic writer)
// resized back to the input's size, in the input's value range.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <ATen/CPUGeneratorImpl.h>

#include "core/csv.h"
#include "core/image_tensor.h"
#include "io/image_file.h"
#include "core/dataset.h"
#include "core/device.h"
#include "core/error.h"
#include "core/eval_loop.h"
#include "core/evaluate.h"
#include "core/method.h"
#include "core/model_io.h"
#include "core/options.h"
#include "methods/twinvae/twinvae_data.h"
#include "methods/twinvae/twinvae_net.h"
#include "methods/twinvae/twinvae_train.h"

namespace cellcount::twinvae {
namespace {

namespace fs = std::filesystem;

class TwinVaeMethod : public ModelMethod {
 public:
  explicit TwinVaeMethod(const ModelFiles& f) : ModelMethod(f.meta) {
    CC_CHECK(spec_.channels == 1, CELLCOUNT_ERR_MODEL_FORMAT, "'" + f.dir + "/model.json': a twinvae model reads one channel");
    load_weights(*net_, f);
    net_->eval();
  }
  // The network input of a raw image (grey, normalised, 128x128).
  torch::Tensor input(const torch::Tensor& raw, const IntensityRange& range = std::nullopt) const {
    CC_CHECK(raw.dim() == 3 && raw.size(1) >= kMinSide && raw.size(2) >= kMinSide, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "twinvae: the chamber image is " + std::to_string(raw.size(2)) + "x" + std::to_string(raw.size(1)) +
                 "; the model needs at least " + std::to_string(kMinSide) + "x" + std::to_string(kMinSide) +
                 " (every image is resized to 128x128)");
    return to_network_input(spec_.prepare(raw, range), 1.0);
  }
  Prediction predict(const PredictInput& in, const PredictOptions& o) override {
    CC_CHECK(!in.region.defined(), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "twinvae counts a whole chamber frame: give the chamber's image (cropped) instead of a region mask");
    move_to(*net_, o.device);
    const int64_t h = in.image.size(1), w = in.image.size(2);
    auto x = input(in.image, o.normalization_range).unsqueeze(0).to(o.device);
    torch::NoGradGuard ng;
    o.progress.report(0.0f, "twinvae");
    auto out = net_->forward(x, Domain::natural, false, false);
    Prediction p;
    // Choice: the regressor's value as it is (affine in z, unbounded), floored at 0; counts above 30 are outside
    // the training range (1..30) and are extrapolated, not clamped.
    p.count = std::max(0.0, out.count.to(torch::kCPU)[0].item<double>());
    p.class_counts = {p.count};
    auto rec = net_->decode(out.mu, Domain::synthetic).to(torch::kCPU)[0];  // natural -> synthetic translation
    p.reconstruction = from_network_size(rec, h, w) / spec_.normalization.scale;
    p.precision = torch::kFloat32;  // the network computes in fp32 whatever precision is asked
    o.progress.report(1.0f, "twinvae");
    return p;
  }
  TwinVae& net() { return net_; }
  const InputSpec& spec() const { return spec_; }

 private:
  TwinVae net_;
};

// --- The classical baseline of the paper (watershed.py's idea): threshold + watershed. ---
// Background = the per-pixel median of the evaluated frames (the chamber does not move between frames: an
// empty-chamber estimate); foreground = |frame - background| (each normalised by its mean, against uneven
// exposure; 3x3 smoothed) above Otsu's threshold, small gaps closed, holes filled; the count is the number of
// watershed markers: maxima of the foreground's distance transform at least `min_distance` apart (a
// marker-based watershed gives one region per marker, so the regions need not be flooded to be counted).
double watershed_count(const torch::Tensor& img128 /*[128,128] in [0,1]*/, const torch::Tensor& bg128, double min_distance) {
  namespace F = torch::nn::functional;
  auto x = (img128 / img128.mean().clamp_min(1e-6) - bg128 / bg128.mean().clamp_min(1e-6)).abs().unsqueeze(0).unsqueeze(0);
  auto dev = F::avg_pool2d(F::pad(x, F::PadFuncOptions({1, 1, 1, 1}).mode(torch::kReplicate)), F::AvgPool2dFuncOptions(3).stride(1))[0][0].contiguous();
  // Otsu on 64 bins.
  const float mx = std::max(1e-6f, dev.max().item<float>());
  auto hist = torch::histc(dev, 64, 0, mx);
  auto hp = hist.accessor<float, 1>();
  double total = 0, sum_all = 0;
  for (int i = 0; i < 64; ++i) total += hp[i], sum_all += i * hp[i];
  double wb = 0, sb = 0, best = -1;
  int th = 0;
  for (int i = 0; i < 64; ++i) {
    wb += hp[i];
    if (wb == 0 || wb == total) continue;
    sb += i * hp[i];
    const double mb = sb / wb, mf = (sum_all - sb) / (total - wb), between = wb * (total - wb) * (mb - mf) * (mb - mf);
    if (between > best) best = between, th = i;
  }
  auto fg = (dev > (th + 1) * mx / 64.0f).to(torch::kFloat32);
  fg = F::max_pool2d(fg.unsqueeze(0).unsqueeze(0), F::MaxPool2dFuncOptions(3).stride(1).padding(1));  // close small gaps
  fg = -F::max_pool2d(-fg, F::MaxPool2dFuncOptions(3).stride(1).padding(1));
  // Fill holes: background reachable from the border stays background.
  const int S = int(kSide);
  auto f = fg[0][0].contiguous();
  auto fa = f.accessor<float, 2>();
  std::vector<int> outside(S * S, 0), stack;
  for (int i = 0; i < S; ++i)
    for (int p : {i, (S - 1) * S + i, i * S, i * S + S - 1})
      if (fa[p / S][p % S] == 0 && !outside[p]) outside[p] = 1, stack.push_back(p);
  while (!stack.empty()) {
    const int p = stack.back();
    stack.pop_back();
    const int y = p / S, xx = p % S;
    const int nb[4][2] = {{y - 1, xx}, {y + 1, xx}, {y, xx - 1}, {y, xx + 1}};
    for (const auto& q : nb)
      if (q[0] >= 0 && q[0] < S && q[1] >= 0 && q[1] < S && fa[q[0]][q[1]] == 0 && !outside[q[0] * S + q[1]])
        outside[q[0] * S + q[1]] = 1, stack.push_back(q[0] * S + q[1]);
  }
  // Chamfer distance transform (3-4) of the filled foreground.
  std::vector<double> d(S * S);
  for (int p = 0; p < S * S; ++p) d[p] = outside[p] ? 0 : 1e9;
  for (int pass = 0; pass < 2; ++pass)
    for (int k = 0; k < S * S; ++k) {
      const int p = pass == 0 ? k : S * S - 1 - k, y = p / S, xx = p % S, s = pass == 0 ? -1 : 1;
      if (d[p] == 0) continue;
      auto at = [&](int yy, int xq) { return (yy < 0 || yy >= S || xq < 0 || xq >= S) ? 0.0 : d[yy * S + xq]; };
      d[p] = std::min({d[p], at(y + s, xx) + 3, at(y, xx + s) + 3, at(y + s, xx - 1) + 4, at(y + s, xx + 1) + 4});
    }
  auto dt = torch::from_blob(d.data(), {1, 1, S, S}, torch::kFloat64).to(torch::kFloat32) / 3.0f;
  const int64_t k = 2 * int64_t(min_distance) + 1;
  auto peaks = (dt == F::max_pool2d(dt, F::MaxPool2dFuncOptions(k).stride(1).padding(k / 2))) & (dt >= 2.0f);
  // Plateaus give several equal maxima: count connected peak pixels once.
  auto pk = peaks[0][0].to(torch::kUInt8).contiguous();
  auto pa = pk.accessor<uint8_t, 2>();
  int count = 0;
  std::vector<int> seen(S * S, 0);
  for (int p = 0; p < S * S; ++p) {
    if (!pa[p / S][p % S] || seen[p]) continue;
    ++count;
    stack = {p};
    seen[p] = 1;
    while (!stack.empty()) {
      const int q = stack.back();
      stack.pop_back();
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int y = q / S + dy, xx = q % S + dx;
          if (y >= 0 && y < S && xx >= 0 && xx < S && pa[y][xx] && !seen[y * S + xx]) seen[y * S + xx] = 1, stack.push_back(y * S + xx);
        }
    }
  }
  return count;
}

Options eval_options() {
  Options all = evaluate_options();
  for (const char* k : {"radius", "grid"})  // counts only
    all.erase(std::remove_if(all.begin(), all.end(), [&](const OptionSpec& x) { return x.name == k; }), all.end());
  set_default(all, "per_image", false);
  return add_options(all, {
      Opt::choice("protocol", "both", {"both", "clean", "authors"})
          .help("clean: z = mu on clean frames; authors: sampled z on augmented frames (upstream's test); both"),
      Opt::choice("domain", "natural", {"natural", "synthetic"})
          .help("which frames of a dataset with frames.csv to score, and with which reader"),
      Opt::integer("seed", 1).range(0, INT64_MAX).help("seed of the authors' protocol (augmentation and z)").folded(),
      Opt::number("noise", 0.0025).range(0.0, 1.0).help("noise sigma of the authors' protocol").folded(),
      Opt::boolean("baseline", false).help("also score the classical baseline (threshold + watershed against the median frame) on the same frames"),
      Opt::number("baseline_min_distance", 4.0).range(1.0, 32.0).help("watershed markers at least this far apart (pixels of the 128 frame)").folded(),
  });
}

nlohmann::json evaluate(const nlohmann::json& req0, const Progress& progress) {
  const nlohmann::json req = resolve_options("twinvae evaluate", eval_options(), req0);
  const std::string model_dir = req["model"], data_dir = req["dataset"];
  const auto files = read_model(model_dir);
  CC_CHECK(files.meta.value("method", "") == "twinvae", CELLCOUNT_ERR_WRONG_METHOD, "twinvae evaluate: '" + model_dir + "' is not a twinvae model");
  const auto& spec = find_method("twinvae");
  auto loaded = load_method(spec, files);
  auto& method = static_cast<TwinVaeMethod&>(*loaded);
  const auto ds = load_dataset(data_dir, req["split_file"].get<std::string>());
  const std::string split = req["split"], domain = req["domain"];
  // Frames of the asked domain (frames.csv; without it every frame is natural).
  std::map<std::string, std::string> dom;
  const auto frames = (fs::path(data_dir) / "frames.csv").string();
  if (fs::exists(frames)) {
    const auto t = read_csv(frames);
    const int ci = t.column("image"), cd = t.column("domain");
    CC_CHECK(ci >= 0 && cd >= 0, CELLCOUNT_ERR_DATASET, "'" + frames + "' needs the columns image,domain,split");
    for (const auto& r : t.rows) dom[r[ci]] = r[cd];
  }
  std::vector<size_t> idx;
  for (size_t i : ds.indices(split)) {
    auto it = dom.find(ds.samples[i].image);
    if ((it == dom.end() ? std::string("natural") : it->second) == domain) idx.push_back(i);
  }
  CC_CHECK(!idx.empty(), CELLCOUNT_ERR_DATASET, "twinvae evaluate: no " + domain + " frames in split \"" + split + "\" of '" + data_dir + "'");
  const int64_t limit = req["limit"];
  if (limit > 0 && size_t(limit) < idx.size()) idx.resize(size_t(limit));
  const Domain d = parse_domain(domain);
  PredictOptions opt;
  opt.device = resolve_device(req["device"]);
  auto& net = method.net();
  net->to(opt.device);
  auto rounded = [](const EvalItem& it, const Prediction& p, nlohmann::json&) {
    return std::pair<double, double>{std::round(p.count), it.truth};  // the paper rounds before every metric
  };
  nlohmann::json report{{"model", model_dir}, {"method", "twinvae"}, {"dataset", data_dir}, {"split", split}, {"domain", domain},
                        {"rounded", true}};
  std::vector<std::string> protocols;
  if (req["protocol"] != "authors") protocols.push_back("clean");
  if (req["protocol"] != "clean") protocols.push_back("authors");
  if (req["baseline"].get<bool>()) protocols.push_back("baseline");
  // The baseline's background: the per-pixel median of the evaluated frames.
  torch::Tensor background;
  if (req["baseline"].get<bool>()) {
    std::vector<torch::Tensor> all;
    for (size_t i : idx) all.push_back(method.input(image_to_tensor(io::read_image(ds.image_path(i))))[0]);
    background = std::get<0>(torch::stack(all).median(0));
  }
  std::mt19937_64 rng(req["seed"].get<uint64_t>());
  at::Generator gen = at::detail::createCPUGenerator(req["seed"].get<uint64_t>() + 1);
  for (size_t k = 0; k < protocols.size(); ++k) {
    const auto& proto = protocols[k];
    auto metric = count_metric(rounded);
    auto r = run_evaluation(
        ds, idx, 1,
        [&](const EvalItem& it) {
          torch::NoGradGuard ng;
          net->eval();
          auto x = method.input(it.image);  // [1,128,128] in [0,1]
          Prediction p;
          if (proto == "baseline") {
            p.count = watershed_count(x[0], background, req["baseline_min_distance"].get<double>());
          } else if (proto == "clean") {
            p.count = std::max(0.0, net->forward(x.unsqueeze(0).to(opt.device), d, false, false).count[0].item<double>());
          } else {  // the authors': augmented frame, sampled z (upstream's test loop)
            auto u8 = (x * 255.0).round().clamp(0, 255).to(torch::kUInt8);
            auto xa = augment(u8, req["noise"].get<double>(), rng, gen).to(opt.device);
            p.count = std::max(0.0, net->forward(xa, d, true, false, gen).count[0].item<double>());
          }
          p.class_counts = {p.count};
          return p;
        },
        {metric.get()}, req["per_image"].get<bool>(), progress.sub(float(k) / protocols.size(), float(k + 1) / protocols.size()));
    report[proto] = r;
  }
  report["n"] = idx.size();
  return report;
}

}  // namespace
}  // namespace cellcount::twinvae

// The method's factory, called by the registration list that CMake generates from method.cmake.
namespace cellcount {
MethodSpec method_spec_twinvae() {
  using namespace twinvae;
  MethodSpec s("twinvae", "Count cells in chamber",
               "Twin-VAE: a count per chamber frame from a VAE trained on synthetic and natural frames, with "
               "transfer between bright-field and phase-contrast (Stallmann, Kenneweg, Hammer)");
  s.load = [](const ModelFiles& f) { return std::make_unique<TwinVaeMethod>(f); };
  s.train = train;
  s.evaluate = evaluate;
  s.synthesize = synthesize;
  s.options = [](const std::string& kind) {
    if (kind == "train") return train_options();
    if (kind == "evaluate") return eval_options();
    if (kind == "synthesize") return synth_options();
    return Options{};
  };
  return s;
}
}  // namespace cellcount
