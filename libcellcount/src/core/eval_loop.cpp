#include "core/eval_loop.h"

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/image_tensor.h"
#include "core/metrics.h"
#include "io/image_file.h"

namespace cellcount {

namespace {

class CountMetric : public EvalMetric {
 public:
  explicit CountMetric(CountCompare compare) : compare_(std::move(compare)) {}
  void add(const EvalItem& item, const Prediction& p, nlohmann::json& row) override {
    auto [pred, truth] = compare_ ? compare_(item, p, row) : std::make_pair(p.count, item.truth);
    pred_.push_back(pred);
    truth_.push_back(truth);
  }
  void report(nlohmann::json& r) const override {
    const auto m = count_metrics(pred_, truth_);
    r.update({{"mae", m.mae}, {"rmse", m.rmse}, {"nae", m.nae}, {"sre", m.sre}, {"mre", m.mre},
              {"rounded_accuracy", m.accuracy}});
  }

 private:
  CountCompare compare_;
  std::vector<double> pred_, truth_;
};

class PointMetric : public EvalMetric {
 public:
  explicit PointMetric(double radius) : radius_(radius) {}
  void add(const EvalItem& item, const Prediction& p, nlohmann::json& row) override {
    if (!item.has_points) return;
    const auto m = match_points(p.points, item.points, radius_);
    tp_ += m.tp;
    fp_ += m.fp;
    fn_ += m.fn;
    ++items_;
    row["f1"] = m.f1;
  }
  void report(nlohmann::json& r) const override {
    if (items_ == 0) return;
    const double P = tp_ + fp_ ? double(tp_) / double(tp_ + fp_) : 1.0, R = tp_ + fn_ ? double(tp_) / double(tp_ + fn_) : 1.0;
    r["points"] = {{"radius", radius_}, {"precision", P}, {"recall", R}, {"f1", P + R > 0 ? 2 * P * R / (P + R) : 0.0},
                   {"images", items_}};
  }

 private:
  double radius_;
  size_t tp_ = 0, fp_ = 0, fn_ = 0, items_ = 0;
};

class ClassMetric : public EvalMetric {
 public:
  ClassMetric(std::vector<std::string> classes, double radius) : classes_(std::move(classes)), radius_(radius) {
    CC_CHECK(!classes_.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, "class metric: no classes");
    abs_err_.assign(classes_.size(), 0.0);
    right_.assign(classes_.size(), 0);
    matched_.assign(classes_.size(), 0);
  }
  void add(const EvalItem& item, const Prediction& p, nlohmann::json& row) override {
    if (!item.has_points) return;
    const size_t K = classes_.size();
    std::vector<double> truth(K, 0.0), pred(K, 0.0);
    for (const auto& q : item.points)
      if (q.cls >= 0 && size_t(q.cls) < K) truth[size_t(q.cls)] += 1;
    for (size_t k = 0; k < K; ++k) pred[k] = k < p.class_counts.size() ? p.class_counts[k] : 0.0;
    for (size_t k = 0; k < K; ++k) abs_err_[k] += std::fabs(pred[k] - truth[k]);
    const auto m = match_points(p.points, item.points, radius_);
    for (const auto& [i, j] : m.pairs) {
      const int32_t t = item.points[j].cls;
      if (t < 0 || size_t(t) >= K) continue;
      ++matched_[size_t(t)];
      right_[size_t(t)] += p.points[i].cls == t;
    }
    auto props = [](const std::vector<double>& c) {
      double s = 0;
      for (double v : c) s += v;
      std::vector<double> out(c.size(), s > 0 ? 0.0 : 1.0 / double(c.size()));
      if (s > 0)
        for (size_t k = 0; k < c.size(); ++k) out[k] = c[k] / s;
      return out;
    };
    pred_props_.push_back(props(pred));
    truth_props_.push_back(props(truth));
    row["class_counts"] = pred;
    row["class_truth"] = truth;
    ++items_;
  }
  void report(nlohmann::json& r) const override {
    if (items_ == 0) return;
    nlohmann::json per_class = nlohmann::json::object();
    double acc_sum = 0;
    size_t right_all = 0, matched_all = 0, with_matches = 0;
    for (size_t k = 0; k < classes_.size(); ++k) {
      const double acc = matched_[k] ? double(right_[k]) / double(matched_[k]) : NAN;
      per_class[classes_[k]] = {{"count_mae", abs_err_[k] / double(items_)},
                                {"instance_accuracy", matched_[k] ? nlohmann::json(acc) : nlohmann::json()},
                                {"matched", matched_[k]}};
      if (matched_[k]) {
        acc_sum += acc;
        ++with_matches;
      }
      right_all += right_[k];
      matched_all += matched_[k];
    }
    r["classes"] = {
        {"radius", radius_},
        {"per_class", per_class},
        // Average over classes (the paper's "average accuracy"), and over all matched cells.
        {"average_instance_accuracy", with_matches ? nlohmann::json(acc_sum / double(with_matches)) : nlohmann::json()},
        {"overall_instance_accuracy", matched_all ? nlohmann::json(double(right_all) / double(matched_all)) : nlohmann::json()},
        {"proportion_mae_pp", proportion_mae(pred_props_, truth_props_)},
        {"images", items_}};
  }

 private:
  std::vector<std::string> classes_;
  double radius_;
  std::vector<double> abs_err_;
  std::vector<size_t> right_, matched_;
  std::vector<std::vector<double>> pred_props_, truth_props_;
  size_t items_ = 0;
};

}  // namespace

std::unique_ptr<EvalMetric> count_metric(CountCompare compare) { return std::make_unique<CountMetric>(std::move(compare)); }
std::unique_ptr<EvalMetric> point_metric(double radius) { return std::make_unique<PointMetric>(radius); }
std::unique_ptr<EvalMetric> class_metric(std::vector<std::string> classes, double radius) {
  return std::make_unique<ClassMetric>(std::move(classes), radius);
}

nlohmann::json run_evaluation(const Dataset& ds, const std::vector<size_t>& idx, int64_t grid,
                              const std::function<Prediction(const EvalItem&)>& predict,
                              const std::vector<EvalMetric*>& metrics, bool per_image, const Progress& progress) {
  CC_CHECK(grid >= 1 && grid <= 16, CELLCOUNT_ERR_INVALID_ARGUMENT, "evaluate: grid must be in 1..16");
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json rows = nlohmann::json::array();
  size_t position = 0;
  for (size_t k = 0; k < idx.size(); ++k) {
    const auto& s = ds.samples[idx[k]];
    progress.report(float(k) / float(idx.size()), "image " + std::to_string(k + 1) + "/" + std::to_string(idx.size()));
    CC_CHECK(s.count.has_value() || s.has_points, CELLCOUNT_ERR_DATASET,
             "evaluate: image '" + s.image + "' has no count or points");
    CC_CHECK(grid == 1 || s.has_points, CELLCOUNT_ERR_DATASET,
             "evaluate: grid " + std::to_string(grid) + " needs points for '" + s.image + "'");
    Image im;
    try {
      im = io::read_image(ds.image_path(idx[k]));
    } catch (const Error& e) {
      fail(CELLCOUNT_ERR_DATASET, std::string("evaluate: ") + e.what());
    }
    check_points_inside(s, im.height, im.width, ds.root);
    const auto full = image_to_tensor(im);
    // The paper's protocol for some sets: each image cut into grid x grid patches, each patch one test item.
    for (int64_t gy = 0; gy < grid; ++gy)
      for (int64_t gx = 0; gx < grid; ++gx) {
        const int64_t y0 = im.height * gy / grid, y1 = im.height * (gy + 1) / grid;
        const int64_t x0 = im.width * gx / grid, x1 = im.width * (gx + 1) / grid;
        EvalItem item;
        item.index = idx[k];
        item.sample = &s;
        item.position = position++;
        item.grid = grid;
        item.patch_x = gx;
        item.patch_y = gy;
        item.has_points = s.has_points;
        for (const auto& q : s.points)
          if (q.x >= x0 - 0.5f && q.x < x1 - 0.5f && q.y >= y0 - 0.5f && q.y < y1 - 0.5f)
            item.points.push_back(Point{q.x - x0, q.y - y0, q.cls, q.score});
        item.truth = grid == 1 ? s.count.value_or(double(s.points.size())) : double(item.points.size());
        item.image = grid == 1 ? full : full.slice(1, y0, y1).slice(2, x0, x1).contiguous();
        const Prediction p = predict(item);
        nlohmann::json row{{"image", s.image}, {"truth", item.truth}, {"count", p.count}};
        if (grid > 1) row["patch"] = {gx, gy};
        for (auto* m : metrics) m->add(item, p, row);
        rows.push_back(row);
      }
  }
  nlohmann::json r{{"n", position}, {"grid", grid}};
  for (auto* m : metrics) m->report(r);
  r["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (per_image) r["per_image"] = rows;
  progress.report(1.0f, "evaluation done");
  return r;
}

}  // namespace cellcount
