#include "core/evaluate.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "core/csv.h"
#include "core/dataset.h"
#include "core/device.h"
#include "core/domain.h"
#include "core/error.h"
#include "core/eval_loop.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/staged_dir.h"
#include "core/synth.h"
#include "io/image_file.h"

namespace fs = std::filesystem;

namespace cellcount {

std::vector<Box> check_exemplars(const Box* boxes, size_t n, int64_t height, int64_t width, bool needs) {
  if (!needs) {
    CC_CHECK(n == 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "this model does not take exemplar boxes, got " + std::to_string(n) + " (pass none)");
    return {};
  }
  CC_CHECK(n >= 1 && boxes != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "this model counts like exemplars: draw at least one box around a cell of the kind to count");
  CC_CHECK(n <= kMaxExemplars, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "got " + std::to_string(n) + " exemplar boxes; the limit is " + std::to_string(kMaxExemplars) +
               " (a few boxes around typical cells are enough)");
  std::vector<Box> out;
  for (size_t i = 0; i < n; ++i) {
    Box b = boxes[i];
    const std::string name = "exemplar box " + std::to_string(i + 1) + " (" + std::to_string(b.x0) + ", " +
                             std::to_string(b.y0) + ", " + std::to_string(b.x1) + ", " + std::to_string(b.y1) + ")";
    CC_CHECK(std::isfinite(b.x0) && std::isfinite(b.y0) && std::isfinite(b.x1) && std::isfinite(b.y1),
             CELLCOUNT_ERR_INVALID_ARGUMENT, name + " has a non-finite coordinate");
    CC_CHECK(b.x1 > b.x0 && b.y1 > b.y0, CELLCOUNT_ERR_INVALID_ARGUMENT,
             name + " is empty or inverted: expected x0 < x1 and y0 < y1");
    CC_CHECK(b.x1 > 0 && b.y1 > 0 && b.x0 < width && b.y0 < height, CELLCOUNT_ERR_INVALID_ARGUMENT,
             name + " lies wholly outside the " + std::to_string(width) + " x " + std::to_string(height) + " image");
    Box c{std::max(0.f, b.x0), std::max(0.f, b.y0), std::min(float(width), b.x1), std::min(float(height), b.y1)};
    if (c.x0 != b.x0 || c.y0 != b.y0 || c.x1 != b.x1 || c.y1 != b.y1) log_warn(name + " was clipped to the image");
    out.push_back(c);
  }
  return out;
}

Prediction predict_image(Method& method, const MethodSpec& spec, const torch::Tensor& image,
                         const std::vector<Box>& exemplars, const torch::Tensor& region, const PredictOptions& options) {
  PredictInput in;
  in.image = image;
  in.exemplars = check_exemplars(exemplars.data(), exemplars.size(), image.size(1), image.size(2), spec.needs_exemplars);
  if (region.defined()) {
    CC_CHECK(region.dim() == 2 && region.size(0) == image.size(1) && region.size(1) == image.size(2),
             CELLCOUNT_ERR_INVALID_ARGUMENT,
             "region mask: expected the image's size " + std::to_string(image.size(2)) + " x " +
                 std::to_string(image.size(1)) + ", got " + std::to_string(region.size(-1)) + " x " +
                 std::to_string(region.size(0)));
    in.region = region.to(torch::kBool);
  }
  // The tiling is checked here for every method (a bad overlap is refused before any work); the method
  // resolves it itself (resolve_tiling), so that a tile left to the library (0) reaches it as 0: dcl then
  // sizes its tiles from a memory budget (issue 25).
  const auto info = method.info();
  resolve_tiling(options.tile_size, options.tile_overlap, info.contains("tiling") ? info["tiling"] : nlohmann::json());
  torch::NoGradGuard no_grad;
  Prediction p = method.predict(in, options);
  // Choice: a count that is not finite is refused, never returned with OK (one pixel of 3.4e38 gave NaN).
  bool finite = std::isfinite(p.count);
  for (double c : p.class_counts) finite = finite && std::isfinite(c);
  for (const auto& q : p.points) finite = finite && std::isfinite(q.x) && std::isfinite(q.y);
  CC_CHECK(finite, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "predict: the model's output is not finite for this image (count " + std::to_string(p.count) +
               "); its pixel values are too extreme for this model");
  return p;
}

Options evaluate_options() {
  return {
      Opt::string("method", "").help("the model's method (read from model.json when empty)").folded(),
      Opt::path("model").help("model folder").needed(),
      Opt::path("dataset").help("dataset folder (images + points.csv / counts.csv)").needed(),
      Opt::choice("split", "test", {"train", "val", "test", "all"}).help("which split to evaluate"),
      Opt::path("split_file").help("split.csv to use (\"\" = the dataset's own; see datasets/splits/)"),
      Opt::number("radius", 0.0).range(0.0, 1000.0).help("point-matching radius in pixels (0 = the model's eval_radius)"),
      Opt::integer("grid", 0).range(0, 16).help("cut each image into grid x grid test items (0 = the model's eval_grid)"),
      Opt::string("device", "auto").help("\"auto\", \"cpu\", \"cuda\" or \"cuda:N\""),
      Opt::choice("precision", "fp32", {"fp32", "bf16", "fp16"}).help("inference precision").folded(),
      Opt::integer("limit", 0).range(0, 100000000).help("evaluate only the first n items (0 = all)").folded(),
      Opt::boolean("per_image", true).help("include one row per image in the report"),
      Opt::integer("threads", 0).range(0, kMaxThreads).help("CPU threads (0 = one per core)").folded(),
      Opt::object("options", nlohmann::json::object())
          .help("the method's own prediction options, as in a count (e.g. {\"diameter\": 19} for dcl-general)"),
  };
}

nlohmann::json evaluate_defaults() { return option_defaults(evaluate_options()); }

EvalSetup open_evaluation(const nlohmann::json& req, const std::string& who, const std::string& method,
                          const Dataset* dataset) {
  EvalSetup e;
  const std::string model_dir = req["model"], data_dir = req["dataset"];
  e.files = read_model(model_dir);
  const std::string id = e.files.meta["method"].get<std::string>();
  CC_CHECK(method.empty() || id == method, CELLCOUNT_ERR_WRONG_METHOD,
           who + ": '" + model_dir + "' is a " + id + " model, not " + method);
  e.spec = &find_method(id);
  e.method = load_method(*e.spec, e.files);
  e.ds = dataset ? *dataset : load_dataset(data_dir, req["split_file"].get<std::string>());
  e.split = req["split"].get<std::string>();
  e.idx = e.ds.indices(e.split);
  CC_CHECK(!e.idx.empty(), CELLCOUNT_ERR_DATASET,
           who + ": split \"" + e.split + "\" of '" + data_dir + "' is empty" +
               (e.ds.split_source.empty() ? " (no split.csv; pass \"split\": \"all\" or a split_file)" : ""));
  const int64_t limit = req["limit"];
  if (limit > 0 && size_t(limit) < e.idx.size()) e.idx.resize(size_t(limit));
  e.opt.device = resolve_device(req["device"]);
  e.opt.precision = resolve_precision(req["precision"], e.opt.device);
  if (req.contains("options")) e.opt.method_options = req["options"];
  return e;
}

nlohmann::json evaluate_counts(const nlohmann::json& req0, const Progress& progress, const Dataset* dataset) {
  const nlohmann::json req = resolve_options("evaluate", evaluate_options(), req0);
  auto e = open_evaluation(req, "evaluate", "", dataset);
  const auto& files = e.files;
  const auto& spec = *e.spec;
  auto& method = e.method;
  const auto& opt = e.opt;
  double radius = req["radius"];
  if (radius <= 0) radius = files.meta.value("eval_radius", 5.0);
  int64_t grid = req["grid"];
  if (grid <= 0) grid = files.meta.value("eval_grid", 1);

  auto counts = count_metric();
  auto points = point_metric(radius);
  // The out-of-domain statistics and warnings of every item (core/domain): on the model's own val split they
  // show the section's false alarms; on train, "domain.fitted" is the section fitted on those items.
  auto domain = domain_metric(InputSpec::from_json(files.meta.value("input", nlohmann::json::object())),
                              files.meta.value("domain", nlohmann::json()));
  std::vector<EvalMetric*> metrics{counts.get(), points.get(), domain.get()};
  // Models with classes (llp) are also measured per class.
  std::unique_ptr<EvalMetric> classes;
  const auto names = files.meta.value("classes", nlohmann::json::array());
  if (names.is_array() && names.size() >= 2) {
    classes = class_metric(names.get<std::vector<std::string>>(), radius);
    metrics.push_back(classes.get());
  }
  auto r = run_evaluation(
      e.ds, e.idx, grid,
      [&](const EvalItem& it) { return predict_image(*method, spec, it.image, it.sample->boxes, {}, opt); }, metrics,
      req["per_image"].get<bool>(), progress);
  r.update({{"model", req["model"]}, {"method", spec.id}, {"dataset", req["dataset"]}, {"split", e.split},
            {"device", device_name(opt.device)}});
  return r;
}

Options synthesize_options() {
  return {
      Opt::string("method", "").help("a method with its own synthesizer (\"\" = the core's cell renderer)").folded(),
      Opt::choice("kind", "cells", {"cells"}).help("what to render"),
      Opt::path("out").help("new dataset folder (written whole or not at all)").needed(),
      Opt::integer("n", 20).range(1, 100000).help("number of images"),
      Opt::integer("width", 256).range(8, 16384).help("image width"),
      Opt::integer("height", 256).range(8, 16384).help("image height"),
      Opt::integer("seed", 0).range(0, INT64_MAX).help("seed of the renderer and the split"),
      Opt::integer("min_cells", 20).range(0, 100000).help("fewest cells per image"),
      Opt::integer("max_cells", 150).range(0, 100000).help("most cells per image"),
      Opt::number("radius_min", 3.5).range(0.5, 1000.0).help("smallest cell radius (pixels)").folded(),
      Opt::number("radius_max", 7.0).range(0.5, 1000.0).help("largest cell radius (pixels)").folded(),
      Opt::number("blur_sigma", 1.0).range(0.0, 100.0).help("optical blur (pixels)").folded(),
      Opt::number("noise_sigma", 0.03).range(0.0, 10.0).help("Gaussian camera noise").folded(),
      Opt::number("background", 0.08).range(0.0, 1.0).help("background level").folded(),
      Opt::number("poisson_scale", 200.0).range(0.0, 1e9).help("photon scale of the shot noise (0 = none)").folded(),
      Opt::number_list("split", {0.5, 0.4, 0.1}).range(0.0, 1e6).help("[train, test, val] as fractions or image counts").folded(),
      Opt::boolean("overwrite", false).help("replace out when it is a dataset this tool wrote"),
      Opt::integer("threads", 0).range(0, kMaxThreads).help("CPU threads (0 = one per core)").folded(),
  };
}

nlohmann::json synthesize_defaults() { return option_defaults(synthesize_options()); }

nlohmann::json synthesize_cells(const nlohmann::json& req0, const Progress& progress) {
  const nlohmann::json req = resolve_options("synthesize", synthesize_options(), req0);
  CC_CHECK(req["kind"] == "cells", CELLCOUNT_ERR_INVALID_ARGUMENT,
           "synthesize: kind \"" + req["kind"].get<std::string>() + "\" is not known here (the core renders \"cells\")");
  const std::string final_out = req["out"];
  CC_CHECK(!final_out.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, "synthesize: \"out\" folder is required");
  const int64_t n = req["n"];
  CC_CHECK(n >= 1 && n <= 100000, CELLCOUNT_ERR_INVALID_ARGUMENT, "synthesize: n must be in 1..100000");
  SynthCellsParams p;
  p.width = req["width"];
  p.height = req["height"];
  p.min_cells = req["min_cells"];
  p.max_cells = req["max_cells"];
  p.radius_min = req["radius_min"];
  p.radius_max = req["radius_max"];
  p.blur_sigma = req["blur_sigma"];
  p.noise_sigma = req["noise_sigma"];
  p.background = req["background"];
  p.poisson_scale = req["poisson_scale"];
  CC_CHECK(p.width >= 8 && p.height >= 8 && p.min_cells >= 0 && p.max_cells >= p.min_cells && p.radius_min > 0 &&
               p.radius_max >= p.radius_min,
           CELLCOUNT_ERR_INVALID_ARGUMENT, "synthesize: bad size, cell count range or radius range");
  const auto split = req["split"].get<std::vector<double>>();
  CC_CHECK(split.size() == 3, CELLCOUNT_ERR_INVALID_ARGUMENT, "synthesize: split must be [train, test, val]");
  const uint64_t seed = req["seed"];
  // Written whole or not at all (a cancel leaves nothing); overwrite replaces only a folder this tool wrote.
  StagedDir staged(final_out, req["overwrite"], "synthesis.json", "synthesize");
  const std::string out = staged.path();
  const bool overwrite = false;  // (a fresh temp folder)
  fs::create_directories(fs::path(out) / "images");
  Dataset ds;
  ds.root = out;
  std::ofstream pts(fs::path(out) / "points.csv"), cnt(fs::path(out) / "counts.csv");
  pts << "image,x,y\n";
  cnt << "image,count\n";
  for (int64_t i = 0; i < n; ++i) {
    progress.report(float(i) / n, "image " + std::to_string(i + 1) + "/" + std::to_string(n));
    auto s = render_cells(p, seed * 7919ULL + uint64_t(i));
    char name[64];
    std::snprintf(name, sizeof name, "images/cells_%05lld.png", static_cast<long long>(i));
    Image im = s.image;
    for (auto& v : im.data) v *= 255.0f;
    io::write_image((fs::path(out) / name).string(), im, 8, overwrite);
    for (const auto& q : s.points) pts << name << "," << q.x << "," << q.y << "\n";
    cnt << name << "," << s.points.size() << "\n";
    Sample smp;
    smp.image = name;
    ds.samples.push_back(smp);
  }
  assign_split(ds, split[0], split[1], split[2], seed);
  write_split(ds, (fs::path(out) / "split.csv").string(), true);
  pts.close();
  cnt.close();
  CC_CHECK(pts.good() && cnt.good(), CELLCOUNT_ERR_IO, "synthesize: error writing the CSV files in '" + out + "'");
  nlohmann::json record = req;
  record.erase("overwrite");
  staged.commit(nlohmann::json{{"request", record}, {"library_version", CELLCOUNT_VERSION_STRING}}.dump(2));
  progress.report(1.0f, "synthesis done");
  return {{"out", final_out}, {"n", n}, {"kind", "cells"}, {"seed", seed}};
}

}  // namespace cellcount
