// selftest: the fixture method of the ABI, binding and plugin tests (not one of the four methods, and
// never shipped as a counting model). A real, tiny fully convolutional density counter
// (conv3x3 1->8, conv3x3 8->8, conv1x1 8->1, softplus output; count = sum of the map) trained with the core
// trainer on Gaussian dot maps, so the tests exercise load, tiling, peaks, cancel and training for real.
#include <filesystem>

#include "core/dataset.h"
#include "core/density_map.h"
#include "core/device.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/method.h"
#include "core/peaks.h"
#include "core/tiling.h"
#include "core/train.h"
#include "core/train_run.h"
#include "io/image_file.h"

namespace cellcount {
namespace {

struct SelftestNetImpl : torch::nn::Module {
  explicit SelftestNetImpl(int64_t width = 8)
      : c1(torch::nn::Conv2dOptions(1, width, 3).padding(1)),
        c2(torch::nn::Conv2dOptions(width, width, 3).padding(1)),
        c3(torch::nn::Conv2dOptions(width, 1, 1)) {
    register_module("c1", c1);
    register_module("c2", c2);
    register_module("c3", c3);
    torch::nn::init::constant_(c3->bias, -4.0);  // softplus(-4) ~ 0.018: starts near an empty map
  }
  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu(c1(x));
    x = torch::relu(c2(x));
    return torch::nn::functional::softplus(c3(x));  // non-negative, never a dead output
  }
  torch::nn::Conv2d c1, c2, c3;
};
TORCH_MODULE(SelftestNet);

class SelftestMethod : public Method {
 public:
  explicit SelftestMethod(const ModelFiles& f) : meta_(f.meta), net_(meta_.at("architecture").value("width", 8)) {
    spec_ = InputSpec::from_json(meta_.at("input"));
    // Read by predict: checked here, so that a model without them is refused at load.
    CC_CHECK(meta_.contains("thresholds") && meta_["thresholds"].is_object(), CELLCOUNT_ERR_MODEL_FORMAT,
             "'" + f.dir + "/model.json' has no \"thresholds\" object");
    load_weights(*net_, f);
    net_->eval();
  }
  nlohmann::json info() const override {
    nlohmann::json j = meta_;
    j["device"] = device_name(device_);
    return j;
  }
  Prediction predict(const PredictInput& in, const PredictOptions& o) override {
    if (o.device != device_) {
      net_->to(o.device);
      device_ = o.device;
    }
    const auto x = spec_.prepare(in.image, o.normalization_range);
    // One rule for every method (core resolve_tiling): the caller's, else model.json's tiling.
    const auto [tile, overlap] = resolve_tiling(o.tile_size, o.tile_overlap, meta_.at("tiling"));
    auto density = run_tiled(
        x, tile, overlap, spec_.align,
        [&](const torch::Tensor& t) { return net_->forward(t.to(o.device)).to(torch::kCPU); }, o.progress)[0];
    const auto& th = meta_.at("thresholds");
    Prediction p = density_prediction(
        density, in.region, std::isnan(o.peak_threshold) ? th.value("peak_threshold", 0.015f) : o.peak_threshold,
        std::isnan(o.peak_min_distance) ? th.value("peak_min_distance", 3.0f) : o.peak_min_distance, o.want_density);
    p.precision = torch::kFloat32;  // the fixture network computes in fp32 whatever precision is asked
    return p;
  }

 private:
  nlohmann::json meta_;
  SelftestNet net_;
  InputSpec spec_;
  torch::Device device_ = torch::kCPU;
};

// Every train field, declared once (core/options.h): the common ones of the train-run driver plus these.
Options train_options() {
  Options o = common_train_options("selftest");
  add_options(o, {
                     Opt::path("dataset").help("dataset folder with points.csv").needed(),
                     Opt::path("split_file").help("split.csv to use (\"\" = the dataset's own, else all images train)"),
                     Opt::integer("width", 8).range(1, 256).help("channels of the two hidden convolutions"),
                     Opt::number("sigma", 2.0).range(0.1, 100.0).help("Gaussian of the target density maps (pixels)"),
                     Opt::integer("epochs", 30).range(1, 100000).help("training epochs"),
                 });
  set_default(o, "lr", 1e-2);
  set_default(o, "batch_size", 2);
  set_default(o, "restart_epochs", 30.0);
  set_default(o, "device", "cpu");
  return o;
}

nlohmann::json train(const nlohmann::json& request, const Progress& progress) {
  TrainRun run("selftest", train_options(), request, {"model.ckpt"}, {"epochs"});
  const auto& req = run.request();
  const auto device = resolve_device(req["device"]);
  auto ds = load_dataset(req["dataset"], req["split_file"]);
  auto idx = ds.indices(ds.split_source.empty() ? "all" : "train");
  InputSpec spec;
  spec.channels = 1;
  spec.rgb_rule = "grey";
  spec.align = 1;
  const double sigma = req["sigma"];
  // Images and targets prepared once.
  std::vector<torch::Tensor> xs, ys;
  for (size_t i : idx) {
    const auto& s = ds.samples[i];
    CC_CHECK(s.has_points, CELLCOUNT_ERR_DATASET, "train: image '" + s.image + "' has no points");
    auto x = spec.prepare(image_to_tensor(io::read_image(ds.image_path(i))));
    auto d = gaussian_density(s.points, x.size(1), x.size(2), sigma);
    xs.push_back(x);
    ys.push_back(torch::from_blob(d.data(), {1, x.size(1), x.size(2)}, torch::kFloat32).clone());
  }
  auto net = seeded(run.seed(), [&] { return SelftestNet(req["width"].get<int64_t>()); });
  net->to(device);
  auto report = Trainer(run.stage_config("model", req["epochs"]), *net).fit(
      xs.size(),
      [&](const std::vector<size_t>& batch, std::mt19937_64& rng) {
        torch::Tensor loss = torch::zeros({}, torch::TensorOptions().device(device));
        for (size_t b : batch) {
          const auto t = Dihedral::random(rng());
          auto x = t.apply(xs[b]).unsqueeze(0).to(device), y = t.apply(ys[b]).unsqueeze(0).to(device);
          // Scaled MSE (density values are small); plus the count error so sums are calibrated.
          auto pred = net->forward(x);
          loss = loss + 1000.0 * torch::mse_loss(pred, y) + 0.01 * (pred.sum() - y.sum()).abs();
        }
        return loss / double(batch.size());
      },
      progress);
  net->to(torch::kCPU);
  net->eval();
  // Peak threshold tuned on the validation split (the training split when there is none).
  auto tune_idx = ds.indices("val");
  if (tune_idx.empty()) tune_idx = idx;
  std::vector<torch::Tensor> maps;
  std::vector<std::vector<Point>> truth;
  {
    torch::NoGradGuard ng;
    for (size_t i : tune_idx) {
      auto x = spec.prepare(image_to_tensor(io::read_image(ds.image_path(i))));
      maps.push_back(net->forward(x.unsqueeze(0))[0][0]);
      truth.push_back(ds.samples[i].points);
    }
  }
  const float min_distance = 3.0f;
  const float threshold = tune_peak_threshold_on(maps, truth, min_distance, 4.0,
                                                 {0.001f, 0.002f, 0.003f, 0.005f, 0.007f, 0.01f, 0.015f, 0.02f, 0.03f});
  nlohmann::json meta{{"architecture", {{"width", req["width"]}}},
                      {"input", spec.to_json()},
                      {"tiling", {{"tile_size", 256}, {"overlap", 16}}},
                      {"thresholds", {{"peak_threshold", threshold}, {"peak_min_distance", min_distance}, {"tuned_on", tune_idx.size()}}},
                      {"classes", {"cell"}},
                      {"sigma", sigma},
                      {"eval_radius", 4.0},
                      {"provenance", {{"dataset_split", ds.split_source}, {"train_images", xs.size()}}},
                      {"training", report}};
  run.save(meta, *net, device_name(device));
  return {{"out", run.out()}, {"epochs_run", report["epochs_run"]}, {"seconds", report["seconds"]},
          {"final_loss", report["history"].empty() ? 0.0 : report["history"].back()["loss"].get<double>()}};
}

}  // namespace
}  // namespace cellcount

// The method's factory, called by the registration list that CMake generates from method.cmake.
namespace cellcount {
MethodSpec method_spec_selftest() {
  MethodSpec s("selftest", "Self-test density network (fixture)",
               "Tiny density counter used by the ABI, binding and plugin tests; not a counting method.");
  s.fixture = true;
  s.load = [](const ModelFiles& f) { return std::make_unique<SelftestMethod>(f); };
  s.train = train;
  s.options = [](const std::string& kind) { return kind == "train" ? train_options() : Options{}; };
  return s;
}
}  // namespace cellcount
