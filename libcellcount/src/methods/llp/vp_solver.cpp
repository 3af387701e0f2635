#include "methods/llp/vp_solver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <string>

#include "core/error.h"

namespace cellcount::llp {

Transport solve_transport(const double* c, int64_t n, int64_t K, const double* proportions) {
  CC_CHECK(K >= 1, CELLCOUNT_ERR_INVALID_ARGUMENT, "VP loss: at least one class is needed, got K = " + std::to_string(K));
  CC_CHECK(n >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT, "VP loss: negative number of detections");
  double ysum = 0;
  for (int64_t k = 0; k < K; ++k) {
    CC_CHECK(std::isfinite(proportions[k]) && proportions[k] >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "VP loss: proportion of class " + std::to_string(k) + " must be finite and >= 0");
    ysum += proportions[k];
  }
  CC_CHECK(ysum > 0, CELLCOUNT_ERR_INVALID_ARGUMENT, "VP loss: the proportions are all zero");
  Transport out;
  if (n == 0) return out;
  for (int64_t i = 0; i < n * K; ++i)
    CC_CHECK(std::isfinite(c[i]), CELLCOUNT_ERR_INVALID_ARGUMENT, "VP loss: a cost is not finite");
  const size_t N = size_t(n), k_ = size_t(K);
  // Capacities N * Y_k summing to N exactly (the rounding residue goes to the largest class).
  std::vector<double> cap(k_);
  double csum = 0;
  size_t kmax = 0;
  for (size_t k = 0; k < k_; ++k) {
    cap[k] = double(n) * proportions[k] / ysum;
    csum += cap[k];
    if (cap[k] > cap[kmax]) kmax = k;
  }
  cap[kmax] += double(n) - csum;
  if (cap[kmax] < 0) cap[kmax] = 0;
  std::vector<double> x(N * k_, 0.0);  // scaled plan: rows sum to 1
  using Entry = std::pair<double, uint32_t>;
  std::vector<std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>>> heaps(k_ * k_);
  auto gain_mass = [&](size_t j, size_t k, double amount) {
    double& v = x[j * k_ + k];
    if (v == 0.0)
      for (size_t l = 0; l < k_; ++l)
        if (l != k) heaps[k * k_ + l].push({c[j * k_ + l] - c[j * k_ + k], uint32_t(j)});
    v += amount;
  };
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> w(k_ * k_), dist(k_);
  std::vector<uint32_t> via(k_ * k_);
  std::vector<int64_t> pred(k_);
  std::vector<size_t> path;
  for (size_t i = 0; i < N; ++i) {
    double rem = 1.0;
    while (rem > 0) {
      // Edge weights of the collapsed residual graph.
      for (size_t k = 0; k < k_; ++k)
        for (size_t l = 0; l < k_; ++l) {
          if (k == l) continue;
          auto& h = heaps[k * k_ + l];
          while (!h.empty() && x[size_t(h.top().second) * k_ + k] == 0.0) h.pop();  // lazy deletion
          w[k * k_ + l] = h.empty() ? inf : h.top().first;
          via[k * k_ + l] = h.empty() ? 0 : h.top().second;
        }
      // Bellman-Ford from the new detection (its edges to the classes cost c_ik).
      for (size_t k = 0; k < k_; ++k) {
        dist[k] = c[i * k_ + k];
        pred[k] = -1;
      }
      for (size_t round = 0; round + 1 < k_; ++round) {
        bool changed = false;
        for (size_t k = 0; k < k_; ++k)
          for (size_t l = 0; l < k_; ++l)
            if (k != l && w[k * k_ + l] < inf && dist[k] + w[k * k_ + l] < dist[l] - 1e-13 * (1 + std::fabs(dist[l]))) {
              dist[l] = dist[k] + w[k * k_ + l];
              pred[l] = int64_t(k);
              changed = true;
            }
        if (!changed) break;
      }
      int64_t t = -1;
      for (size_t k = 0; k < k_; ++k)
        if (cap[k] > 0 && (t < 0 || dist[k] < dist[size_t(t)])) t = int64_t(k);
      if (t < 0) break;  // all capacity used: only a rounding residue of this row is left (< 1e-12)
      path.clear();
      for (int64_t v = t; v >= 0; v = pred[size_t(v)]) {
        path.push_back(size_t(v));
        CC_CHECK(path.size() <= k_, CELLCOUNT_ERR_INTERNAL, "VP loss: shortest-path tree has a cycle");
      }
      std::reverse(path.begin(), path.end());  // path[0] takes the new detection, path.back() == t
      double delta = std::min(rem, cap[size_t(t)]);
      for (size_t a = 0; a + 1 < path.size(); ++a) {
        const size_t k = path[a], l = path[a + 1];
        delta = std::min(delta, x[size_t(via[k * k_ + l]) * k_ + k]);
      }
      // Apply: exact subtraction of the minimum leaves exact zeros (no tolerance needed).
      for (size_t a = path.size() - 1; a >= 1; --a) {
        const size_t k = path[a - 1], l = path[a];
        const size_t j = via[k * k_ + l];
        double& v = x[j * k_ + k];
        v = (v == delta) ? 0.0 : v - delta;
        gain_mass(j, l, delta);
      }
      gain_mass(i, path[0], delta);
      cap[size_t(t)] = (cap[size_t(t)] == delta) ? 0.0 : cap[size_t(t)] - delta;
      rem = (rem == delta) ? 0.0 : rem - delta;
      ++out.augmentations;
      if (rem < 1e-12 && cap[size_t(t)] == 0) {
        bool any = false;
        for (double v : cap) any = any || v > 0;
        if (!any) break;
      }
    }
  }
  out.plan.resize(N * k_);
  double cost = 0;
  for (size_t q = 0; q < N * k_; ++q) {
    out.plan[q] = x[q] / double(n);
    cost += out.plan[q] * c[q];
  }
  out.cost = cost;
  return out;
}

}  // namespace cellcount::llp
