#include "core/domain.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/eval_loop.h"
#include "core/image_tensor.h"

namespace cellcount {

namespace {

constexpr int64_t kMaxSamplePixels = int64_t(1) << 18;
constexpr double kDefaultTolerance = 0.5;  // count/points, for models without a "domain" section
constexpr double kMinCells = 10;           // below, count/points is not judged
constexpr double kMeanMargin = 0.05, kMeanMarginOfRange = 0.5;
constexpr double kDensityFactor = 2.0, kPeakFactor = 2.0;
constexpr double kToleranceFloor = 0.3, kToleranceFactor = 1.5;

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, std::fabs(v) >= 10 ? "%.1f" : std::fabs(v) >= 1 ? "%.2f" : "%.3g", v);
  return b;
}

nlohmann::json warning(const std::string& code, const std::string& message, double value, nlohmann::json limit) {
  return {{"code", code}, {"message", message}, {"value", value}, {"limit", std::move(limit)}};
}

// [lo, hi] of a section entry; CELLCOUNT_ERR_MODEL_FORMAT when malformed.
std::pair<double, double> bounds(const nlohmann::json& b, const std::string& what) {
  CC_CHECK(b.is_array() && b.size() == 2 && b[0].is_number() && b[1].is_number() && b[0].get<double>() <= b[1].get<double>(),
           CELLCOUNT_ERR_MODEL_FORMAT, "model.json \"domain\": \"" + what + "\" must be [low, high], got " + b.dump());
  return {b[0].get<double>(), b[1].get<double>()};
}

double positive(const nlohmann::json& d, const std::string& key) {
  const auto& v = d.at(key);
  CC_CHECK(v.is_number() && v.get<double>() > 0, CELLCOUNT_ERR_MODEL_FORMAT,
           "model.json \"domain\": \"" + key + "\" must be a number > 0, got " + v.dump());
  return v.get<double>();
}

double max_of(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::max_element(v.begin(), v.end()); }
double min_of(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()); }

}  // namespace

nlohmann::json DomainStats::to_json() const {
  return {{"channel_mean", channel_mean}, {"cells_per_10k", cells_per_10k}, {"peak_max", peak_max},
          {"count", count}, {"points", points}, {"disagreement", disagreement}};
}

DomainStats domain_stats(const torch::Tensor& raw, const InputSpec& spec, const IntensityRange& range,
                         const Prediction& p, double counted_pixels) {
  DomainStats s;
  // A regular subsample (every k-th row and column), converted to the network's channels and normalised with the
  // image's percentiles of that subsample (normalize's own rule; despiking left out: a mean barely moves).
  const int64_t h = raw.size(1), w = raw.size(2);
  const int64_t k = std::max<int64_t>(1, int64_t(std::ceil(std::sqrt(double(h * w) / double(kMaxSamplePixels)))));
  torch::Tensor sub = raw.slice(1, 0, h, k).slice(2, 0, w, k).to(torch::kFloat32);
  sub = spec.convert_channels_of(sub);  // the channel rule of prepare, without its size check
  const auto& n = spec.normalization;
  torch::Tensor x;
  if (n.mode == "fixed") {
    x = (sub - n.offset) * n.scale;
  } else {
    const auto [lo, hi] = range ? *range : normalization_percentiles(sub, n);
    x = hi - lo > 1e-12 ? (sub - lo) / (hi - lo) : torch::zeros_like(sub);
  }
  // Clamped so that a few extreme pixels cannot carry the mean (the network sees them, but the question is
  // what the bulk of the image looks like).
  const auto means = x.clamp(-1.0, 2.0).mean({1, 2});
  for (int64_t c = 0; c < means.size(0); ++c) s.channel_mean.push_back(means[c].item<double>());
  s.count = p.count;
  s.points = double(p.points.size());
  // Per pixel at the method's cell-size zoom (1 without one): for a model with a cell size, the density of cells
  // as the network saw them.
  const double seen_pixels = counted_pixels * p.cell_zoom * p.cell_zoom;
  s.cells_per_10k = seen_pixels > 0 ? p.count / seen_pixels * 1e4 : 0.0;
  for (const auto& q : p.points) s.peak_max = std::max(s.peak_max, double(q.score));
  const double m = std::max(std::fabs(s.count), s.points);
  s.disagreement = m > 0 && p.located ? std::fabs(s.count - s.points) / m : 0.0;
  return s;
}

nlohmann::json domain_warnings(const nlohmann::json& domain, const DomainStats& s) {
  nlohmann::json out = nlohmann::json::array();
  double tolerance = kDefaultTolerance;
  try {
    if (domain.is_object()) {
      const auto& cm = domain.at("channel_mean");
      CC_CHECK(cm.is_array(), CELLCOUNT_ERR_MODEL_FORMAT, "model.json \"domain\": \"channel_mean\" must be a list");
      std::string outside;  // the channels outside their bounds, one warning for all of them
      double value = 0;
      nlohmann::json limit;
      for (size_t c = 0; c < cm.size(); ++c) {
        const auto [lo, hi] = bounds(cm[c], "channel_mean");  // every entry checked (at load, s has none)
        if (c >= s.channel_mean.size()) continue;
        const double v = s.channel_mean[c];
        if (v >= lo && v <= hi) continue;
        if (outside.empty()) {
          value = v;
          limit = {lo, hi};
        }
        outside += (outside.empty() ? "" : "; ") + num(v) +
                   (s.channel_mean.size() > 1 ? " in channel " + std::to_string(c + 1) : std::string()) +
                   " (model: " + num(lo) + " to " + num(hi) + ")";
      }
      if (!outside.empty())
        out.push_back(warning("intensity_out_of_domain",
                              "the image does not look like this model's training images: mean intensity after "
                              "normalisation " + outside +
                                  " (another stain, modality or polarity?); check the points, or use a model trained "
                                  "on such images",
                              value, limit));
      const auto [dlo, dhi] = bounds(domain.at("cells_per_10k"), "cells_per_10k");
      if ((s.cells_per_10k < dlo || s.cells_per_10k > dhi) && s.count >= 1)
        out.push_back(warning("cell_density_out_of_domain",
                              "the count per 10,000 pixels, " + num(s.cells_per_10k) +
                                  ", is outside this model's range " + num(dlo) + " to " + num(dhi) +
                                  " (cells of another size or kind?); check the points, or use a model for these cells",
                              s.cells_per_10k, {dlo, dhi}));
      const double peak = positive(domain, "peak_max");
      if (s.peak_max > peak)
        out.push_back(warning("density_saturated",
                              "the strongest detected peak, " + num(s.peak_max) + ", is above the model's limit " +
                                  num(peak) + ": the density saturates and the count is unreliable",
                              s.peak_max, peak));
      tolerance = positive(domain, "count_points_tolerance");
    }
  } catch (const nlohmann::json::exception& e) {
    fail(CELLCOUNT_ERR_MODEL_FORMAT, std::string("model.json \"domain\" is malformed: ") + e.what());
  }
  if (std::max(std::fabs(s.count), s.points) >= kMinCells && s.disagreement > tolerance)
    out.push_back(warning("count_points_disagree",
                          "the count (" + num(s.count) + ") and the detected cells (" + std::to_string(int64_t(s.points)) +
                              (s.points == 1 ? " point" : " points") + ") differ by " +
                              std::to_string(int(std::lround(100 * s.disagreement))) + " %, more than this model's " +
                              std::to_string(int(std::lround(100 * tolerance))) +
                              " %: the image may be unlike the model's training images; check the points",
                          s.disagreement, tolerance));
  return out;
}

nlohmann::json prediction_warnings(const nlohmann::json& domain, const DomainStats& s, const Prediction& p) {
  auto out = domain_warnings(domain, s);
  for (const auto& n : p.notes) out.push_back(n);
  return out;
}

nlohmann::json fit_domain(const std::vector<DomainStats>& train) {
  CC_CHECK(!train.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, "fit_domain: no items");
  const size_t channels = train[0].channel_mean.size();
  nlohmann::json cm = nlohmann::json::array();
  for (size_t c = 0; c < channels; ++c) {
    std::vector<double> v;
    for (const auto& s : train) v.push_back(s.channel_mean.at(c));
    const double lo = min_of(v), hi = max_of(v), margin = kMeanMargin + kMeanMarginOfRange * (hi - lo);
    cm.push_back({lo - margin, hi + margin});
  }
  std::vector<double> dens, peak, dis;
  for (const auto& s : train) {
    dens.push_back(s.cells_per_10k);
    peak.push_back(s.peak_max);
    if (std::max(std::fabs(s.count), s.points) >= kMinCells) dis.push_back(s.disagreement);
  }
  return {{"channel_mean", cm},
          {"cells_per_10k", {min_of(dens) / kDensityFactor, max_of(dens) * kDensityFactor}},
          {"peak_max", std::max(1e-12, max_of(peak) * kPeakFactor)},
          {"count_points_tolerance", std::max(kToleranceFloor, kToleranceFactor * max_of(dis))},
          {"n_train", train.size()},
          {"rule", "fitted on the train split: channel means min/max widened by 0.05 + 50 % of their range; cells per "
                   "10k pixels min/2 to max*2; peak max*2; count/points tolerance max(0.3, 1.5 * max) over items "
                   "with >= 10 cells"}};
}

namespace {

class DomainMetric : public EvalMetric {
 public:
  DomainMetric(const InputSpec& spec, nlohmann::json domain) : spec_(spec), domain_(std::move(domain)) {}
  void add(const EvalItem& item, const Prediction& p, nlohmann::json& row) override {
    const auto s = domain_stats(item.image, spec_, std::nullopt, p, double(item.image.size(1) * item.image.size(2)));
    const auto w = prediction_warnings(domain_, s, p);
    nlohmann::json codes = nlohmann::json::array();
    for (const auto& x : w) {
      codes.push_back(x["code"]);
      by_code_[x["code"].get<std::string>()] = by_code_.value(x["code"].get<std::string>(), 0) + 1;
    }
    warned_ += w.empty() ? 0 : 1;
    row["domain"] = s.to_json();
    if (const auto d = p.diameter_json(); !d.is_null()) row["diameter"] = d;
    row["warnings"] = codes;
    stats_.push_back(s);
  }
  void report(nlohmann::json& r) const override {
    r["domain"] = {{"n", stats_.size()}, {"warned", warned_}, {"by_code", by_code_},
                   {"fitted", stats_.empty() ? nlohmann::json() : fit_domain(stats_)}};
  }

 private:
  InputSpec spec_;
  nlohmann::json domain_;
  std::vector<DomainStats> stats_;
  size_t warned_ = 0;
  nlohmann::json by_code_ = nlohmann::json::object();
};

}  // namespace

std::unique_ptr<EvalMetric> domain_metric(const InputSpec& spec, nlohmann::json domain) {
  return std::make_unique<DomainMetric>(spec, std::move(domain));
}

}  // namespace cellcount
