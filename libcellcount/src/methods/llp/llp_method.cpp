// llp: detect and classify cells, trained from per-image class proportions (paper 002: Vertex Proportion
// loss + Deep Sparse Detector). The factory and the requests.
#include <chrono>
#include <random>

#include "core/error.h"
#include "core/limits.h"
#include "core/method.h"
#include "core/options.h"
#include "methods/llp/vp_solver.h"

namespace cellcount::llp {
namespace {

// The exact solver's speed (the figures: N = 500, K = 3 about 0.5 ms; N = 5000, K = 5 20-27 ms on
// one core). Random VP-CE costs of softmax predictions, Y drawn on the simplex, fixed seed.
nlohmann::json solver_bench(const nlohmann::json& req) {
  const auto sizes = req["sizes"];
  const int64_t repeat = req["repeat"];
  nlohmann::json rows = nlohmann::json::array();
  std::mt19937_64 rng(req["seed"].get<uint64_t>());
  for (const auto& nk : sizes) {
    CC_CHECK(nk.is_array() && nk.size() == 2 && nk[0].is_number_integer() && nk[1].is_number_integer(),
             CELLCOUNT_ERR_INVALID_ARGUMENT, "llp solver_bench: \"sizes\" must be [[N, K], ...]");
    const int64_t N = nk[0], K = nk[1];
    CC_CHECK(N >= 0 && N <= 1000000 && K >= 1 && K <= 64, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "llp solver_bench: N must be in 0..1000000 and K in 1..64");
    std::vector<double> ms;
    int64_t aug = 0;
    for (int64_t r = 0; r <= repeat; ++r) {
      std::vector<double> c(static_cast<size_t>(N * K)), y(static_cast<size_t>(K));
      std::exponential_distribution<double> e(1.0);
      double s = 0;
      for (auto& v : y) s += (v = e(rng));
      for (auto& v : y) v /= s;
      std::normal_distribution<double> g(0.0, 2.0);
      for (int64_t i = 0; i < N; ++i) {
        double m = -1e300, z = 0;
        std::vector<double> l(static_cast<size_t>(K));
        for (auto& v : l) m = std::max(m, v = g(rng));
        for (auto v : l) z += std::exp(v - m);
        for (int64_t k = 0; k < K; ++k) c[size_t(i * K + k)] = -(l[size_t(k)] - m - std::log(z));  // -log softmax
      }
      const auto t0 = std::chrono::steady_clock::now();
      const auto t = solve_transport(c.data(), N, K, y.data());
      const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) ms.push_back(dt);  // r == 0 warms up
      aug = t.augmentations;
    }
    std::sort(ms.begin(), ms.end());
    rows.push_back({{"n", N}, {"k", K}, {"ms_median", ms[ms.size() / 2]}, {"ms_min", ms.front()},
                    {"repeats", repeat}, {"augmentations", aug}});
  }
  return {{"solver", "successive shortest paths on the class nodes (exact)"}, {"threads", 1}, {"bench", rows}};
}

Options eval_options() {
  return {Opt::choice("method", "llp", {"llp"}).folded(),
          Opt::choice("kind", "solver_bench", {"solver_bench"})
              .help("solver_bench: time the exact VP transport solver on random bags (no model needed)"),
          Opt::any("sizes", nlohmann::json::array({{500, 3}, {5000, 5}})).help("bags to time: [[N, K], ...]"),
          Opt::integer("repeat", 20).range(1, 10000).help("timed solves per size (after one warm-up)"),
          Opt::integer("seed", 0).range(0, INT64_MAX).help("seed of the random bags").folded(),
          Opt::integer("threads", 0).range(0, kMaxThreads).help("CPU threads (0 = one per core)").folded()};
}

nlohmann::json evaluate(const nlohmann::json& req0, const Progress&) {
  const auto req = resolve_options("llp evaluate", eval_options(), req0);
  return solver_bench(req);
}

}  // namespace
}  // namespace cellcount::llp

namespace cellcount {
MethodSpec method_spec_llp() {
  MethodSpec s("llp", "Detect and classify cells",
               "Deep Sparse Detector trained from class proportions with the Vertex Proportion loss (Pacheco et al., 2024)");
  s.load = [](const ModelFiles& f) -> std::unique_ptr<Method> {
    throw Error(CELLCOUNT_ERR_UNSUPPORTED, "'" + f.dir + "': llp models cannot be loaded by this build yet");
  };
  s.evaluate = llp::evaluate;
  s.options = [](const std::string& kind) { return kind == "evaluate" ? llp::eval_options() : Options{}; };
  return s;
}
}  // namespace cellcount
