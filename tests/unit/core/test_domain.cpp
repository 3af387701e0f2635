// Out-of-domain statistics and warnings (core/domain, issue 24): the statistics of hand-made images and
// predictions, the fitted section's rules, each warning's trigger and its absence inside the bounds.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "core/domain.h"
#include "core/error.h"

namespace cellcount {
namespace {

Prediction prediction(double count, size_t points, float score = 0.01f) {
  Prediction p;
  p.count = count;
  for (size_t i = 0; i < points; ++i) {
    Point q;
    q.x = float(i);
    q.score = score;
    p.points.push_back(q);
  }
  return p;
}

std::set<std::string> codes(const nlohmann::json& w) {
  std::set<std::string> out;
  for (const auto& x : w) out.insert(x.at("code").get<std::string>());
  return out;
}

TEST(Domain, StatisticsOfAnImage) {
  // Dark background (0) with a bright square (100) on a quarter: percentile-normalised mean ~0.25.
  auto raw = torch::zeros({1, 100, 100});
  raw.slice(1, 0, 50).slice(2, 0, 50).fill_(100.0);
  InputSpec spec;
  const auto s = domain_stats(raw, spec, std::nullopt, prediction(20, 16, 0.05f), 1e4);
  ASSERT_EQ(s.channel_mean.size(), 1u);
  EXPECT_NEAR(s.channel_mean[0], 0.25, 0.01);
  EXPECT_DOUBLE_EQ(s.cells_per_10k, 20.0);
  EXPECT_FLOAT_EQ(float(s.peak_max), 0.05f);
  EXPECT_DOUBLE_EQ(s.disagreement, 0.2);
  // A caller's range is the normalisation: [0, 200] halves the mean.
  const auto r = domain_stats(raw, spec, std::make_pair(0.0, 200.0), prediction(20, 16), 1e4);
  EXPECT_NEAR(r.channel_mean[0], 0.125, 0.01);
  // The inverted image (bright background) is the polarity the statistics tell apart.
  const auto inv = domain_stats(100.0 - raw, spec, std::nullopt, prediction(20, 16), 1e4);
  EXPECT_NEAR(inv.channel_mean[0], 0.75, 0.01);
  // RGB to a 1-channel model follows its rule (blue: the third channel).
  auto rgb = torch::zeros({3, 100, 100});
  rgb[2].fill_(1.0);
  rgb.slice(1, 0, 10)[2].fill_(0.0);
  spec.rgb_rule = "blue";
  const auto b = domain_stats(rgb, spec, std::nullopt, prediction(0, 0), 1e4);
  ASSERT_EQ(b.channel_mean.size(), 1u);
  EXPECT_NEAR(b.channel_mean[0], 0.9, 0.01);
  EXPECT_DOUBLE_EQ(b.disagreement, 0.0);
}

TEST(Domain, FittedSectionWarnsOutsideItsBoundsOnly) {
  std::vector<DomainStats> train;
  for (int i = 0; i < 10; ++i) {
    DomainStats s;
    s.channel_mean = {0.10 + 0.01 * i};  // 0.10 .. 0.19
    s.cells_per_10k = 10.0 + i;           // 10 .. 19
    s.peak_max = 0.02;
    s.count = 100;
    s.points = 90 + i;
    s.disagreement = (s.count - s.points) / s.count;  // up to 0.10
    train.push_back(s);
  }
  const auto d = fit_domain(train);
  EXPECT_NEAR(d["channel_mean"][0][0].get<double>(), 0.10 - 0.095, 1e-9);  // margin 0.05 + 0.5 * 0.09
  EXPECT_NEAR(d["channel_mean"][0][1].get<double>(), 0.19 + 0.095, 1e-9);
  EXPECT_NEAR(d["cells_per_10k"][0].get<double>(), 5.0, 1e-9);
  EXPECT_NEAR(d["cells_per_10k"][1].get<double>(), 38.0, 1e-9);
  EXPECT_NEAR(d["peak_max"].get<double>(), 0.04, 1e-9);
  EXPECT_NEAR(d["count_points_tolerance"].get<double>(), 0.3, 1e-9);  // floor above 1.5 x 0.10

  for (const auto& s : train) EXPECT_TRUE(domain_warnings(d, s).empty());
  DomainStats s = train[0];
  s.channel_mean = {0.7};  // an inverted image
  EXPECT_EQ(codes(domain_warnings(d, s)), std::set<std::string>{"intensity_out_of_domain"});
  s = train[0];
  s.cells_per_10k = 93;
  EXPECT_EQ(codes(domain_warnings(d, s)), std::set<std::string>{"cell_density_out_of_domain"});
  s.cells_per_10k = 1;
  EXPECT_EQ(codes(domain_warnings(d, s)), std::set<std::string>{"cell_density_out_of_domain"});
  s = train[0];
  s.peak_max = 0.05;
  EXPECT_EQ(codes(domain_warnings(d, s)), std::set<std::string>{"density_saturated"});
  s = train[0];
  s.count = 249.9;
  s.points = 1;
  s.disagreement = (249.9 - 1) / 249.9;
  const auto w = domain_warnings(d, s);
  EXPECT_EQ(codes(w), std::set<std::string>{"count_points_disagree"});
  EXPECT_NE(w[0]["message"].get<std::string>().find("249.9"), std::string::npos) << w.dump();
  // Fewer than 10 cells either way: one point more or less is not judged.
  s.count = 5;
  s.points = 1;
  s.disagreement = 0.8;
  EXPECT_TRUE(domain_warnings(d, s).empty());
}

TEST(Domain, CountOnlyAndCellSizeZoom) {
  auto raw = torch::zeros({1, 100, 100});
  InputSpec spec;
  // Count only (dcl localize false): no points were looked for, so 50 cells and no point do not disagree (they
  // warned count_points_disagree on every such count).
  auto p = prediction(50, 0);
  p.located = false;
  auto s = domain_stats(raw, spec, std::nullopt, p, 1e4);
  EXPECT_DOUBLE_EQ(s.disagreement, 0.0);
  EXPECT_TRUE(domain_warnings(nullptr, s).empty());
  p.located = true;
  EXPECT_EQ(codes(domain_warnings(nullptr, domain_stats(raw, spec, std::nullopt, p, 1e4))),
            std::set<std::string>{"count_points_disagree"});
  // A cell-size zoom of 2 (the image enlarged twice for the network): the density per pixel the network saw.
  p.cell_zoom = 2.0;
  EXPECT_DOUBLE_EQ(domain_stats(raw, spec, std::nullopt, p, 1e4).cells_per_10k, 50.0 / 4.0);
}

TEST(Domain, ModelWithoutASectionIsCheckedForCountAndPointsAlone) {
  DomainStats s;
  s.channel_mean = {5.0};
  s.cells_per_10k = 1e6;
  s.peak_max = 1e6;
  s.count = 100;
  s.points = 60;
  s.disagreement = 0.4;
  EXPECT_TRUE(domain_warnings(nullptr, s).empty());  // 0.4 <= the library's 0.5
  s.points = 40;
  s.disagreement = 0.6;
  EXPECT_EQ(codes(domain_warnings(nullptr, s)), std::set<std::string>{"count_points_disagree"});
}

TEST(Domain, MalformedSectionIsAModelFormatError) {
  const DomainStats s;
  for (const char* bad : {R"({"channel_mean": [[1, 0]], "cells_per_10k": [0, 1], "peak_max": 1, "count_points_tolerance": 0.5})",
                          R"({"channel_mean": [[0, 1]], "cells_per_10k": [0, 1], "peak_max": -1, "count_points_tolerance": 0.5})",
                          R"({"channel_mean": [[0, 1]], "peak_max": 1, "count_points_tolerance": 0.5})",
                          R"({"channel_mean": 3, "cells_per_10k": [0, 1], "peak_max": 1, "count_points_tolerance": 0.5})"}) {
    try {
      domain_warnings(nlohmann::json::parse(bad), s);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), CELLCOUNT_ERR_MODEL_FORMAT) << bad;
      EXPECT_NE(std::string(e.what()).find("domain"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace cellcount
