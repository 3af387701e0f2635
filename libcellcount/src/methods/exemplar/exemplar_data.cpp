// exemplar data: interest_of, benchmark_error, training_tiles, benchmark_items, tiles_as_items.
#include "methods/exemplar/exemplar_data.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/density_map.h"
#include "core/error.h"
#include "core/image_tensor.h"
#include "io/image_file.h"
#include "methods/exemplar/exemplar_predict.h"

namespace cellcount::exemplar {

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

}  // namespace cellcount::exemplar
