#include "methods/exemplar/masks.h"

#include <cmath>
#include <limits>

#include "core/dataset.h"
#include "core/error.h"

namespace cellcount::exemplar {

namespace {
// Squared distances [n,k] between rows of x [n,d] and c [k,d], computed exactly (no |a|^2+|b|^2-2ab
// cancellation): small n and k here.
torch::Tensor sq_dist(const torch::Tensor& x, const torch::Tensor& c) {
  return (x.unsqueeze(1) - c.unsqueeze(0)).pow(2).sum(2);
}
}  // namespace

torch::Tensor kmeanspp_init(const torch::Tensor& x, int64_t k, std::mt19937_64& rng) {
  const int64_t n = x.size(0);
  std::vector<int64_t> chosen{int64_t(uniform_index(rng(), uint64_t(n)))};
  auto d2 = sq_dist(x, x.index({torch::tensor(chosen)})).select(1, 0).to(torch::kFloat64).cpu();
  while (int64_t(chosen.size()) < k) {
    const double total = d2.sum().item<double>();
    int64_t pick = 0;
    if (total <= 0) {  // all remaining points coincide with centres: take the first not chosen
      while (std::find(chosen.begin(), chosen.end(), pick) != chosen.end()) ++pick;
    } else {
      const double r = uniform01(rng()) * total;
      auto acc = d2.cumsum(0);
      const double* a = acc.data_ptr<double>();
      pick = n - 1;
      for (int64_t i = 0; i < n; ++i)
        if (a[i] > r) {
          pick = i;
          break;
        }
    }
    chosen.push_back(pick);
    d2 = torch::minimum(d2, sq_dist(x, x[pick].unsqueeze(0)).select(1, 0).to(torch::kFloat64).cpu());
  }
  return x.index({torch::tensor(chosen)}).clone();
}

KMeansResult lloyd(const torch::Tensor& x, torch::Tensor centers, int64_t max_iter) {
  const int64_t k = centers.size(0);
  KMeansResult r;
  torch::Tensor labels;
  for (r.iterations = 1; r.iterations <= max_iter; ++r.iterations) {
    auto nl = std::get<1>(sq_dist(x, centers).min(1));  // first index on ties
    const bool same = labels.defined() && torch::equal(nl, labels);
    labels = nl;
    if (same) break;
    auto sums = torch::zeros_like(centers).index_add_(0, labels, x);
    auto counts = torch::zeros({k}, x.options()).index_add_(0, labels, torch::ones({x.size(0)}, x.options()));
    auto nonempty = (counts > 0).unsqueeze(1);
    centers = torch::where(nonempty, sums / counts.clamp_min(1).unsqueeze(1), centers);
  }
  r.iterations = std::min(r.iterations, max_iter);
  r.labels = labels;
  r.centers = centers;
  r.inertia = sq_dist(x, centers).gather(1, labels.unsqueeze(1)).sum().item<double>();
  return r;
}

KMeansResult kmeans(const torch::Tensor& x, int64_t k, uint64_t seed, int64_t n_init, int64_t max_iter) {
  CC_CHECK(x.dim() == 2 && k >= 1 && k <= x.size(0) && n_init >= 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "kmeans: x must be [n,d] with 1 <= k <= n");
  torch::NoGradGuard ng;
  auto xf = x.to(torch::kFloat32).contiguous();
  std::mt19937_64 rng(seed);
  KMeansResult best;
  best.inertia = std::numeric_limits<double>::infinity();
  for (int64_t t = 0; t < n_init; ++t) {
    auto r = lloyd(xf, kmeanspp_init(xf, k, rng), max_iter);
    if (r.inertia < best.inertia) best = r;
  }
  return best;
}

std::vector<std::array<float, 4>> patch_boxes(int64_t map_h, int64_t map_w, int64_t stride, float box_w, float box_h,
                                              int64_t image_h, int64_t image_w) {
  std::vector<std::array<float, 4>> out;
  out.reserve(size_t(map_h * map_w));
  for (int64_t i = 0; i < map_h; ++i)
    for (int64_t j = 0; j < map_w; ++j) {
      const float cx = float(j * stride) + 0.5f * float(stride), cy = float(i * stride) + 0.5f * float(stride);
      // Clipped to the image (a patch at the border is the part of the box inside).
      out.push_back({std::clamp(cx - box_w / 2, 0.f, float(image_w - 1)), std::clamp(cy - box_h / 2, 0.f, float(image_h - 1)),
                     std::clamp(cx + box_w / 2, 1.f, float(image_w)), std::clamp(cy + box_h / 2, 1.f, float(image_h))});
    }
  return out;
}

torch::Tensor cluster_mask(const torch::Tensor& patches, const torch::Tensor& exemplar, int64_t k, uint64_t seed) {
  auto x = torch::cat({patches.to(torch::kFloat32), exemplar.to(torch::kFloat32).view({1, -1})}, 0);
  auto r = kmeans(x, std::min<int64_t>(k, x.size(0)), seed);
  const int64_t n = patches.size(0);
  return (r.labels.slice(0, 0, n) == r.labels[n]).to(torch::kFloat32);
}

torch::Tensor apply_mask(const torch::Tensor& s, const torch::Tensor& m, double delta) {
  return torch::where(m.to(s.device()) > 0.5, s, torch::full_like(s, delta));
}

size_t select_k(const std::vector<double>& errors) {
  CC_CHECK(!errors.empty(), CELLCOUNT_ERR_INTERNAL, "select_k: no candidates");
  size_t best = 0;
  for (size_t i = 1; i < errors.size(); ++i)
    if (errors[i] < errors[best]) best = i;
  return best;
}

torch::Tensor dot_box_mask(const std::vector<Point>& points, float box_w, float box_h, int64_t map_h, int64_t map_w,
                           int64_t stride) {
  auto m = torch::zeros({map_h, map_w});
  auto a = m.accessor<float, 2>();
  for (const auto& p : points)
    for (int64_t i = 0; i < map_h; ++i)
      for (int64_t j = 0; j < map_w; ++j) {
        const float cx = float(j * stride) + 0.5f * float(stride), cy = float(i * stride) + 0.5f * float(stride);
        if (std::abs(cx - p.x) <= box_w / 2 && std::abs(cy - p.y) <= box_h / 2) a[i][j] = 1.f;
      }
  return m;
}

}  // namespace cellcount::exemplar
