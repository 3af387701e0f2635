// exemplar evaluate and synthesize: their options and requests.
#include "methods/exemplar/exemplar_eval.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/dataset.h"
#include "core/device.h"
#include "core/domain.h"
#include "core/error.h"
#include "core/limits.h"
#include "core/metrics.h"
#include "core/eval_loop.h"
#include "core/evaluate.h"
#include "core/image_tensor.h"
#include "core/method.h"
#include "core/staged_dir.h"
#include "io/image_file.h"
#include "methods/exemplar/exemplar_data.h"
#include "methods/exemplar/exemplar_predict.h"
#include "core/kinds.h"

namespace fs = std::filesystem;

namespace cellcount::exemplar {

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
  for (const char* k : {"grid"})  // the benchmark's images are whole items
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
          Opt::integer("threads", 0).range(0, kMaxThreads).help("CPU threads (0 = one per core)").folded()};
}

namespace {

// Point detection against the points of interest (two-kind images) or every point (single kind): precision,
// recall, F1 of one-to-one matches within the radius, over all items and over the items whose count is within
// 10 % of the truth (issue 24's bar: the points are judged where the count is right).
class InterestPointMetric : public EvalMetric {
 public:
  InterestPointMetric(double radius, std::function<std::vector<Point>(const EvalItem&)> truth_of)
      : radius_(radius), truth_of_(std::move(truth_of)) {}
  void add(const EvalItem& item, const Prediction& p, nlohmann::json& row) override {
    if (!item.has_points) return;
    const auto truth = truth_of_(item);
    const auto m = match_points(p.points, truth, radius_);
    all_.add(m);
    const double y = double(truth.size());
    if (std::abs(p.count - y) <= 0.1 * y) within_.add(m);
    row.update({{"points", p.points.size()}, {"point_f1", m.f1}});
  }
  void report(nlohmann::json& r) const override {
    r["points"] = all_.json();
    r["points"]["radius"] = radius_;
    r["points"]["count_within_10pct"] = within_.json();
  }

 private:
  struct Sum {
    size_t tp = 0, fp = 0, fn = 0, images = 0;
    void add(const MatchResult& m) { tp += m.tp, fp += m.fp, fn += m.fn, ++images; }
    nlohmann::json json() const {
      if (images == 0) return {{"images", 0}, {"precision", nullptr}, {"recall", nullptr}, {"f1", nullptr}};
      const double P = tp + fp ? double(tp) / double(tp + fp) : 1.0, R = tp + fn ? double(tp) / double(tp + fn) : 1.0;
      return {{"images", images}, {"precision", P}, {"recall", R}, {"f1", P + R > 0 ? 2 * P * R / (P + R) : 0.0}};
    }
  };
  double radius_;
  std::function<std::vector<Point>(const EvalItem&)> truth_of_;
  Sum all_, within_;
};

}  // namespace

nlohmann::json evaluate(const nlohmann::json& req0, const Progress& progress) {
  const nlohmann::json req = resolve_options("exemplar evaluate", eval_options(), req0);
  auto e = open_evaluation(req, "exemplar evaluate", "exemplar");
  const auto& files = e.files;
  const auto& ds = e.ds;
  auto& method = static_cast<ExemplarMethod&>(*e.method);
  const MaskMode mode = parse_mode(req["mask"]);
  MaskSettings ms;
  const auto& th = files.meta.at("thresholds");
  ms.mask_threshold = th.value("mask_threshold", ms.mask_threshold);
  ms.delta = th.value("delta", ms.delta);
  ms.similarity_threshold = th.value("similarity_threshold", ms.similarity_threshold);
  ms.mask_output = req["mask_output"].is_boolean() ? req["mask_output"].get<bool>() : th.value("mask_output", true);
  ms.dilate = req["mask_dilate"].is_number_integer() ? req["mask_dilate"].get<int64_t>() : th.value("mask_dilate", int64_t(0));
  if (req["mask_threshold"].is_number()) ms.mask_threshold = req["mask_threshold"].get<double>();
  ms.k = req["k"];  // (ranges checked by resolve_options)
  ms.seed = req["seed"];
  PredictOptions opt = e.opt;
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
  double radius = req["radius"];
  if (radius <= 0) radius = files.meta.value("eval_radius", 6.0);
  InterestPointMetric points(radius, [&](const EvalItem& it) {
    if (ds.class_names.size() >= 2)
      return interest_of(*it.sample, used_boxes.back(), ds.class_names.size(), it.image.size(2)).points;
    return it.points;
  });
  // The out-of-domain statistics and warnings of every item (core/domain), as every method's evaluate.
  auto domain = domain_metric(InputSpec::from_json(files.meta.value("input", nlohmann::json::object())),
                              files.meta.value("domain", nlohmann::json()));
  auto r = run_evaluation(
      ds, e.idx, 1,
      [&](const EvalItem& it) {
        used_boxes.push_back(boxes_of(it));
        PredictInput in;
        in.image = it.image;
        in.exemplars = check_exemplars(used_boxes.back().data(), used_boxes.back().size(), it.image.size(1),
                                       it.image.size(2), true);
        return method.run(in, opt, mode, ms);
      },
      {counts.get(), &points, domain.get()}, req["per_image"].get<bool>(), progress);
  r.update({{"model", req["model"]}, {"method", "exemplar"}, {"dataset", req["dataset"]}, {"split", e.split},
            {"mask", req["mask"]}, {"device", device_name(opt.device)},
            {"error", multi ? "|y - y_interest| + y_elsewhere (two-kind images)" : "|y - y_hat|"}});
  if (mode == MaskMode::kKMeans) r["k"] = ms.k;
  return r;
}

nlohmann::json synthesize(const nlohmann::json& req0, const Progress& progress) {
  const nlohmann::json req = resolve_options("exemplar synthesize", synth_options(), req0);
  const std::string final_out = req["out"], recipe_path = req["recipe"];  // (both required: resolve_options)
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

}  // namespace cellcount::exemplar
