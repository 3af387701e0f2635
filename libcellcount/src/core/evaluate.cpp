#include "core/evaluate.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "core/csv.h"
#include "core/dataset.h"
#include "core/device.h"
#include "core/error.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/metrics.h"
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
  PredictOptions opt = options;
  const auto info = method.info();
  std::tie(opt.tile_size, opt.tile_overlap) =
      resolve_tiling(options.tile_size, options.tile_overlap, info.contains("tiling") ? info["tiling"] : nlohmann::json());
  torch::NoGradGuard no_grad;
  Prediction p = method.predict(in, opt);
  // Choice: a count that is not finite is refused, never returned with OK (one pixel of 3.4e38 gave NaN).
  bool finite = std::isfinite(p.count);
  for (double c : p.class_counts) finite = finite && std::isfinite(c);
  for (const auto& q : p.points) finite = finite && std::isfinite(q.x) && std::isfinite(q.y);
  CC_CHECK(finite, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "predict: the model's output is not finite for this image (count " + std::to_string(p.count) +
               "); its pixel values are too extreme for this model");
  return p;
}

nlohmann::json evaluate_defaults() {
  return {{"method", ""},  {"model", ""},       {"dataset", ""},       {"split", "test"},
          {"split_file", ""}, {"radius", 0.0},   {"grid", 0},           {"device", "auto"},
          {"precision", "fp32"}, {"limit", 0},   {"per_image", true},   {"threads", 0}};
}

nlohmann::json evaluate_counts(const nlohmann::json& req0, const Progress& progress) {
  nlohmann::json req = evaluate_defaults();
  check_request_fields(req0, req);
  req.update(req0);
  const std::string model_dir = req["model"], data_dir = req["dataset"];
  CC_CHECK(!model_dir.empty() && !data_dir.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "evaluate: \"model\" and \"dataset\" are required");
  const auto files = read_model(model_dir);
  const auto& spec = find_method(files.meta["method"].get<std::string>());
  auto method = load_method(spec, files);
  const auto ds = load_dataset(data_dir, req["split_file"].get<std::string>());
  const std::string split = req["split"];
  auto idx = ds.indices(split);
  CC_CHECK(!idx.empty(), CELLCOUNT_ERR_DATASET,
           "evaluate: split \"" + split + "\" of '" + data_dir + "' is empty" +
               (ds.split_source.empty() ? " (no split.csv; pass \"split\": \"all\" or a split_file)" : ""));
  const int64_t limit = req["limit"];
  if (limit > 0 && size_t(limit) < idx.size()) idx.resize(size_t(limit));
  double radius = req["radius"];
  if (radius <= 0) radius = files.meta.value("eval_radius", 5.0);

  PredictOptions opt;
  opt.device = resolve_device(req["device"]);
  opt.precision = resolve_precision(req["precision"], opt.device);
  std::vector<double> pred, truth;
  std::vector<Point> dummy;
  size_t tp = 0, fp = 0, fn = 0, with_points = 0;
  nlohmann::json per_image = nlohmann::json::array();
  const auto t0 = std::chrono::steady_clock::now();
  int64_t grid = req["grid"];
  if (grid <= 0) grid = files.meta.value("eval_grid", 1);
  CC_CHECK(grid >= 1 && grid <= 16, CELLCOUNT_ERR_INVALID_ARGUMENT, "evaluate: grid must be in 1..16");
  for (size_t k = 0; k < idx.size(); ++k) {
    const auto& s = ds.samples[idx[k]];
    progress.report(float(k) / idx.size(), "image " + std::to_string(k + 1) + "/" + std::to_string(idx.size()));
    CC_CHECK(s.count.has_value(), CELLCOUNT_ERR_DATASET, "evaluate: image '" + s.image + "' has no count or points");
    CC_CHECK(grid == 1 || s.has_points, CELLCOUNT_ERR_DATASET,
             "evaluate: grid " + std::to_string(grid) + " needs points for '" + s.image + "'");
    Image im;
    try {
      im = io::read_image(ds.image_path(idx[k]));
    } catch (const Error& e) {
      fail(CELLCOUNT_ERR_DATASET, std::string("evaluate: ") + e.what());
    }
    check_points_inside(s, im.height, im.width, data_dir);
    const auto full = image_to_tensor(im);
    // The paper's protocol for some sets: each image cut into grid x grid patches, each patch one test item.
    for (int64_t gy = 0; gy < grid; ++gy)
      for (int64_t gx = 0; gx < grid; ++gx) {
        const int64_t y0 = im.height * gy / grid, y1 = im.height * (gy + 1) / grid;
        const int64_t x0 = im.width * gx / grid, x1 = im.width * (gx + 1) / grid;
        std::vector<Point> gt;
        for (const auto& q : s.points)
          if (q.x >= x0 - 0.5f && q.x < x1 - 0.5f && q.y >= y0 - 0.5f && q.y < y1 - 0.5f)
            gt.push_back(Point{q.x - x0, q.y - y0, q.cls, q.score});
        const double t = grid == 1 ? *s.count : double(gt.size());
        auto p = predict_image(*method, spec, full.slice(1, y0, y1).slice(2, x0, x1).contiguous(), s.boxes, {}, opt);
        pred.push_back(p.count);
        truth.push_back(t);
        nlohmann::json row{{"image", s.image}, {"truth", t}, {"count", p.count}};
        if (grid > 1) row["patch"] = {gx, gy};
        if (s.has_points) {
          auto m = match_points(p.points, gt, radius);
          tp += m.tp;
          fp += m.fp;
          fn += m.fn;
          ++with_points;
          row["f1"] = m.f1;
        }
        per_image.push_back(row);
      }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto cm = count_metrics(pred, truth);
  nlohmann::json r{{"model", model_dir}, {"method", spec.id}, {"dataset", data_dir}, {"split", split},
                   {"n", cm.n},          {"mae", cm.mae},     {"rmse", cm.rmse},     {"nae", cm.nae},
                   {"sre", cm.sre},      {"seconds", secs},   {"device", device_name(opt.device)},
                   {"grid", grid}};
  if (with_points > 0) {
    const double P = tp + fp ? double(tp) / (tp + fp) : 1.0, R = tp + fn ? double(tp) / (tp + fn) : 1.0;
    r["points"] = {{"radius", radius}, {"precision", P}, {"recall", R}, {"f1", P + R > 0 ? 2 * P * R / (P + R) : 0.0},
                   {"images", with_points}};
  }
  if (req["per_image"].get<bool>()) r["per_image"] = per_image;
  progress.report(1.0f, "evaluation done");
  return r;
}

nlohmann::json synthesize_defaults() {
  return {{"method", ""},      {"kind", "cells"}, {"out", ""},       {"n", 20},          {"width", 256},
          {"height", 256},     {"seed", 0},       {"min_cells", 20}, {"max_cells", 150}, {"radius_min", 3.5},
          {"radius_max", 7.0}, {"blur_sigma", 1.0}, {"noise_sigma", 0.03}, {"background", 0.08},
          {"poisson_scale", 200.0},
          {"split", {0.5, 0.4, 0.1}},           {"overwrite", false}, {"threads", 0}};
}

nlohmann::json synthesize_cells(const nlohmann::json& req0, const Progress& progress) {
  nlohmann::json req = synthesize_defaults();
  check_request_fields(req0, req);
  req.update(req0);
  CC_CHECK(req["kind"] == "cells", CELLCOUNT_ERR_INVALID_ARGUMENT,
           "synthesize: kind \"" + req["kind"].get<std::string>() + "\" is not known here (the core renders \"cells\")");
  const std::string out = req["out"];
  CC_CHECK(!out.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, "synthesize: \"out\" folder is required");
  const bool overwrite = req["overwrite"];
  CC_CHECK(overwrite || !fs::exists(out) || fs::is_empty(out), CELLCOUNT_ERR_IO,
           "synthesize: '" + out + "' exists and is not empty; pass \"overwrite\": true");
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
  progress.report(1.0f, "synthesis done");
  return {{"out", out}, {"n", n}, {"kind", "cells"}, {"seed", seed}};
}

}  // namespace cellcount
