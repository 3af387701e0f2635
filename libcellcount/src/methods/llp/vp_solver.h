// The Vertex Proportion transport problem of one bag (paper 002, eq. 1), solved exactly. No LibTorch.
//
//   min over plans pi >= 0:  sum_ik pi_ik c_ik   s.t.  sum_k pi_ik = 1/N (each detection),  sum_i pi_ik = Y_k
//
// Its optimal value is the VP loss of the bag and the optimal plan its gradient with respect to the costs
// (the LP is linear in c: by the envelope theorem d value / d c_ik = pi*_ik wherever the optimum is unique).
// Masses are real-valued: rounding N * Y to integers changes the optimum when N * Y_k is fractional.
#pragma once
#include <cstdint>
#include <vector>

namespace cellcount::llp {

struct Transport {
  double cost = 0;           // optimal value
  std::vector<double> plan;  // N x K row-major; rows sum to 1/N, columns to Y_k
  int64_t augmentations = 0; // work done (shortest-path augmentations), for the benchmark
};

// Exact solver for small K (successive shortest paths on the K class nodes, below). `costs`: N x K row-major,
// finite. `proportions`: K values >= 0 with a positive sum; they are renormalised to sum to 1 (the caller
// checks and warns: llp_loss.h). N = 0 gives cost 0 and an empty plan. Errors: CELLCOUNT_ERR_INVALID_ARGUMENT
// for K < 1, a non-finite cost or a negative / non-finite / all-zero proportion.
//
// Choice: our own solver instead of LEMON (no new package). Scaled by N, each detection is a source of one unit
// and class k a sink of capacity N Y_k. Detections are added one at a time; each is routed along a shortest
// path in the residual graph collapsed onto the K class nodes (edge k -> l: the cheapest detection j holding
// mass in k to move to l, cost c_jl - c_jk, kept in one lazy min-heap per (k, l)), found by Bellman-Ford over
// K nodes (the residual graph of an optimal partial flow has no negative cycle). Each augmentation exhausts the
// new detection, fills a class, or empties one detection's cell, so the plan stays a basic solution and the
// final one is optimal for the whole problem (successive shortest paths). O(N K^2 log N + N K^3) in practice.
Transport solve_transport(const double* costs, int64_t n, int64_t k, const double* proportions);

}  // namespace cellcount::llp
