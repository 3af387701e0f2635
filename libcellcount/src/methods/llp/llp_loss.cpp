#include "methods/llp/llp_loss.h"

#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "methods/llp/vp_solver.h"

namespace cellcount::llp {

BagLoss parse_bag_loss(const std::string& s) {
  if (s == "vp_ce") return BagLoss::vp_ce;
  if (s == "vp_l2") return BagLoss::vp_l2;
  if (s == "kl") return BagLoss::kl;
  if (s == "mse") return BagLoss::mse;
  if (s == "supervised") return BagLoss::supervised;
  throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT,
              "llp: unknown loss '" + s + "' (expected vp_ce, vp_l2, kl, mse or supervised)");
}

const char* bag_loss_name(BagLoss l) {
  switch (l) {
    case BagLoss::vp_ce: return "vp_ce";
    case BagLoss::vp_l2: return "vp_l2";
    case BagLoss::kl: return "kl";
    case BagLoss::mse: return "mse";
    case BagLoss::supervised: return "supervised";
  }
  return "?";
}

torch::Tensor bag_loss(const torch::Tensor& logits, const std::vector<double>& Y, BagLoss kind,
                       const std::vector<int64_t>& labels) {
  CC_CHECK(logits.dim() == 2 && logits.size(1) == int64_t(Y.size()), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "llp bag loss: logits must be [N,K] with K = " + std::to_string(Y.size()));
  const int64_t N = logits.size(0), K = logits.size(1);
  if (N == 0) return {};  // no detection: nothing to match, skipped (no 0/0)
  if (kind == BagLoss::supervised) {
    CC_CHECK(int64_t(labels.size()) == N, CELLCOUNT_ERR_INVALID_ARGUMENT, "llp supervised loss: one label per detection");
    auto t = torch::tensor(labels, torch::kLong).to(logits.device());
    return torch::nn::functional::cross_entropy(logits, t);
  }
  auto y = torch::tensor(Y, torch::kFloat64).to(logits.device()).to(logits.scalar_type());
  if (kind == BagLoss::kl || kind == BagLoss::mse) {
    auto mean = torch::softmax(logits, 1).mean(0);
    if (kind == BagLoss::mse) return (mean - y).pow(2).sum();
    // KL(Y || Yhat) = sum Y log(Y / Yhat); classes with Y_k = 0 contribute 0.
    auto pos = y > 0;
    auto ly = torch::where(pos, torch::log(y.clamp_min(1e-12)), torch::zeros_like(y));
    return (y * (ly - torch::log(mean.clamp_min(1e-8)))).sum();
  }
  torch::Tensor cost;
  if (kind == BagLoss::vp_ce) {
    cost = -torch::log_softmax(logits, 1);
  } else {
    auto p = torch::softmax(logits, 1);
    cost = (p * p).sum(1, true) - 2 * p + 1;  // ||e_k - p_i||^2
  }
  auto c64 = cost.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const auto tr = solve_transport(c64.data_ptr<double>(), N, K, Y.data());
  auto plan = torch::from_blob(const_cast<double*>(tr.plan.data()), {N, K}, torch::kFloat64)
                  .clone()
                  .to(cost.device(), cost.scalar_type());
  return (plan * cost).sum();
}

std::vector<double> checked_proportions(const std::vector<std::pair<int32_t, double>>& given, int64_t K,
                                        double tolerance, const std::string& where) {
  std::vector<double> y(size_t(K), 0.0);
  double s = 0;
  for (const auto& [k, v] : given) {
    CC_CHECK(k >= 0 && k < K, CELLCOUNT_ERR_DATASET,
             where + ": class " + std::to_string(k) + " of proportions.csv is not one of the model's " +
                 std::to_string(K) + " classes");
    CC_CHECK(std::isfinite(v) && v >= 0, CELLCOUNT_ERR_DATASET, where + ": a fraction is negative or not finite");
    y[size_t(k)] += v;
    s += v;
  }
  std::ostringstream os;
  os << where << ": proportions sum to " << s << ", not 1 (tolerance " << tolerance << ")";
  CC_CHECK(std::fabs(s - 1.0) <= tolerance && s > 0, CELLCOUNT_ERR_DATASET, os.str());
  if (std::fabs(s - 1.0) > 1e-4) log_warn(where + ": proportions sum to " + std::to_string(s) + "; renormalised to 1");
  for (auto& v : y) v /= s;
  return y;
}

}  // namespace cellcount::llp
