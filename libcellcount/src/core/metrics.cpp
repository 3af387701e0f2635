#include "core/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core/error.h"

namespace cellcount {
namespace {

constexpr int kNil = -1;
constexpr int kInf = std::numeric_limits<int>::max();

// Hopcroft-Karp on a bipartite graph: left = predicted, right = truth, adj[u] = right neighbours of u.
class HopcroftKarp {
 public:
  HopcroftKarp(const std::vector<std::vector<int>>& adj, size_t n_right)
      : adj_(adj), match_l_(adj.size(), kNil), match_r_(n_right, kNil), dist_(adj.size(), 0) {}

  size_t run() {
    size_t matched = 0;
    while (bfs()) {
      for (size_t u = 0; u < adj_.size(); ++u)
        if (match_l_[u] == kNil && dfs(static_cast<int>(u))) ++matched;
    }
    return matched;
  }
  // The truth index matched to each predicted point (kNil = unmatched).
  const std::vector<int>& matches() const { return match_l_; }

 private:
  // Layers from the free left vertices; true when some free right vertex is reachable.
  bool bfs() {
    std::vector<int> queue;
    queue.reserve(adj_.size());
    for (size_t u = 0; u < adj_.size(); ++u) {
      if (match_l_[u] == kNil) {
        dist_[u] = 0;
        queue.push_back(static_cast<int>(u));
      } else {
        dist_[u] = kInf;
      }
    }
    bool found = false;
    for (size_t head = 0; head < queue.size(); ++head) {
      const int u = queue[head];
      for (int v : adj_[static_cast<size_t>(u)]) {
        const int w = match_r_[static_cast<size_t>(v)];
        if (w == kNil) {
          found = true;
        } else if (dist_[static_cast<size_t>(w)] == kInf) {
          dist_[static_cast<size_t>(w)] = dist_[static_cast<size_t>(u)] + 1;
          queue.push_back(w);
        }
      }
    }
    return found;
  }

  // Layered augmenting search; the recursion is as deep as the augmenting path (at most min(n, m) steps).
  bool dfs(int u) {
    for (int v : adj_[static_cast<size_t>(u)]) {
      const int w = match_r_[static_cast<size_t>(v)];
      if (w == kNil || (dist_[static_cast<size_t>(w)] == dist_[static_cast<size_t>(u)] + 1 && dfs(w))) {
        match_l_[static_cast<size_t>(u)] = v;
        match_r_[static_cast<size_t>(v)] = u;
        return true;
      }
    }
    dist_[static_cast<size_t>(u)] = kInf;  // dead end for this phase
    return false;
  }

  const std::vector<std::vector<int>>& adj_;
  std::vector<int> match_l_, match_r_, dist_;
};

double ratio_or(size_t num, size_t den, double if_empty) {
  return den == 0 ? if_empty : static_cast<double>(num) / static_cast<double>(den);
}

}  // namespace

MatchResult match_points(const std::vector<Point>& predicted, const std::vector<Point>& truth, double radius) {
  CC_CHECK(radius >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "match_points: expected radius >= 0, got " + std::to_string(radius));
  CC_CHECK(predicted.size() < static_cast<size_t>(kInf) && truth.size() < static_cast<size_t>(kInf),
           CELLCOUNT_ERR_INVALID_ARGUMENT, "match_points: too many points");

  // Edges: pairs within radius (distance == radius matches). Truth sorted by x so each prediction scans
  // only the truths with |dx| <= radius.
  std::vector<int> order(truth.size());
  std::iota(order.begin(), order.end(), 0);
  order.erase(std::remove_if(order.begin(), order.end(),
                             [&](int j) {
                               return !std::isfinite(truth[static_cast<size_t>(j)].x) ||
                                      !std::isfinite(truth[static_cast<size_t>(j)].y);
                             }),
              order.end());
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return truth[static_cast<size_t>(a)].x < truth[static_cast<size_t>(b)].x; });
  std::vector<double> xs(order.size());
  for (size_t k = 0; k < order.size(); ++k) xs[k] = truth[static_cast<size_t>(order[k])].x;

  const double r2 = radius * radius;
  std::vector<std::vector<int>> adj(predicted.size());
  for (size_t i = 0; i < predicted.size(); ++i) {
    const double px = predicted[i].x, py = predicted[i].y;
    if (!std::isfinite(px) || !std::isfinite(py)) continue;
    auto it = std::lower_bound(xs.begin(), xs.end(), px - radius);
    for (size_t k = static_cast<size_t>(it - xs.begin()); k < xs.size() && xs[k] <= px + radius; ++k) {
      const Point& t = truth[static_cast<size_t>(order[k])];
      const double dx = px - t.x, dy = py - t.y;
      if (dx * dx + dy * dy <= r2) adj[i].push_back(order[k]);
    }
  }

  MatchResult r;
  HopcroftKarp hk(adj, truth.size());
  r.tp = hk.run();
  for (size_t i = 0; i < predicted.size(); ++i)
    if (hk.matches()[i] != kNil) r.pairs.emplace_back(i, size_t(hk.matches()[i]));
  r.fp = predicted.size() - r.tp;
  r.fn = truth.size() - r.tp;
  // Nothing predicted: precision is 1 only if there was nothing to find; same for recall.
  r.precision = ratio_or(r.tp, r.tp + r.fp, r.fn == 0 ? 1.0 : 0.0);
  r.recall = ratio_or(r.tp, r.tp + r.fn, r.fp == 0 ? 1.0 : 0.0);
  r.f1 = r.precision + r.recall > 0 ? 2 * r.precision * r.recall / (r.precision + r.recall) : 0.0;
  return r;
}

CountMetrics count_metrics(const std::vector<double>& predicted, const std::vector<double>& truth) {
  CC_CHECK(predicted.size() == truth.size(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "count_metrics: expected as many predictions as truths (" + std::to_string(truth.size()) + "), got " +
               std::to_string(predicted.size()));
  CountMetrics m;
  m.n = truth.size();
  if (m.n == 0) return m;
  double sum_e = 0, sum_e2 = 0, sum_nae = 0, sum_sre = 0, sum_mre = 0;
  size_t n_pos = 0, n_nonzero = 0, n_correct = 0;
  for (size_t i = 0; i < m.n; ++i) {
    const double p = predicted[i], y = truth[i];
    const double e = std::fabs(p - y);
    sum_e += e;
    sum_e2 += e * e;
    if (y > 0) {
      sum_nae += e / y;
      sum_sre += e * e / y;
      ++n_pos;
    }
    const double rp = std::round(p);
    if (y != 0) {
      sum_mre += std::fabs(1.0 - rp / y);
      ++n_nonzero;
    }
    if (rp == y) ++n_correct;
  }
  const double n = static_cast<double>(m.n);
  m.mae = sum_e / n;
  m.rmse = std::sqrt(sum_e2 / n);
  m.nae = n_pos ? sum_nae / static_cast<double>(n_pos) : 0.0;
  m.sre = n_pos ? std::sqrt(sum_sre / static_cast<double>(n_pos)) : 0.0;
  m.mre = n_nonzero ? sum_mre / static_cast<double>(n_nonzero) : 0.0;
  m.accuracy = static_cast<double>(n_correct) / n;
  return m;
}

double proportion_mae(const std::vector<std::vector<double>>& predicted,
                      const std::vector<std::vector<double>>& truth) {
  CC_CHECK(predicted.size() == truth.size(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "proportion_mae: expected as many predicted rows as truth rows (" + std::to_string(truth.size()) +
               "), got " + std::to_string(predicted.size()));
  if (truth.empty()) return 0.0;
  const size_t k = truth[0].size();
  double sum = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    CC_CHECK(truth[i].size() == k, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "proportion_mae: expected " + std::to_string(k) + " classes in truth row " + std::to_string(i) +
                 ", got " + std::to_string(truth[i].size()));
    CC_CHECK(predicted[i].size() == k, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "proportion_mae: expected " + std::to_string(k) + " classes in predicted row " + std::to_string(i) +
                 ", got " + std::to_string(predicted[i].size()));
    for (size_t c = 0; c < k; ++c) sum += std::fabs(predicted[i][c] - truth[i][c]);
  }
  if (k == 0) return 0.0;
  return 100.0 * sum / (static_cast<double>(truth.size()) * static_cast<double>(k));
}

}  // namespace cellcount
