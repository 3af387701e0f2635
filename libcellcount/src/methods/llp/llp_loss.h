// Bag losses of llp (paper 002 section 2.1): the VP loss with its two costs, and the bag-level baselines.
#pragma once
#include <string>
#include <torch/torch.h>
#include <vector>

namespace cellcount::llp {

// "vp_ce": VP loss with c_ik = -log y_ik; "vp_l2": VP loss with c_ik = ||e_k - y_i||^2;
// "kl": KL(Y || mean_i y_i) (bag level, the paper's KL-div baseline); "mse": ||Y - mean_i y_i||^2;
// "supervised": cross-entropy with per-detection classes (the ceiling; needs labels, not proportions).
enum class BagLoss { vp_ce, vp_l2, kl, mse, supervised };
BagLoss parse_bag_loss(const std::string& name);  // CELLCOUNT_ERR_INVALID_ARGUMENT naming the choices
const char* bag_loss_name(BagLoss l);

// Loss of one bag: `logits` [N,K] of its N detections (any N >= 0), `proportions` Y (K values, summing to 1).
// The VP losses solve the transport LP exactly on the detached costs and return sum(plan * cost), so autograd
// gives d loss / d cost = plan (the optimal plan as the gradient). A bag with no detection contributes
// nothing: an undefined tensor is returned (the caller skips it; never NaN). `labels` (N class ids) only for
// "supervised".
torch::Tensor bag_loss(const torch::Tensor& logits, const std::vector<double>& proportions, BagLoss kind,
                       const std::vector<int64_t>& labels = {});

// Checked proportions of a bag: K values from `given` (class id -> fraction; a class left out is 0). Their
// sum must be within `tolerance` of 1, else CELLCOUNT_ERR_DATASET naming `where`; within it they are
// renormalised (a warning in the log when they were off by more than 1e-4: CSV files round to 6 decimals). A class id >= K is
// CELLCOUNT_ERR_DATASET (a class the model does not have).
std::vector<double> checked_proportions(const std::vector<std::pair<int32_t, double>>& given, int64_t K,
                                        double tolerance, const std::string& where);

}  // namespace cellcount::llp
