// Pseudo masks and masking for seg-then-count (paper 001, section 3.2 and 3.4): K-means in LibTorch (any
// device, deterministic under a seed), the cluster mask of the exemplar, the choice of K by the counter's
// masked density error, the masking rule of eq. 4, and the ablations' masks (similarity threshold, dot boxes).
#pragma once
#include <array>
#include <cstdint>
#include <random>
#include <torch/torch.h>
#include <vector>

#include "core/types.h"

namespace cellcount::exemplar {

struct KMeansResult {
  torch::Tensor labels;   // [n] int64
  torch::Tensor centers;  // [k,d]
  double inertia = 0;     // sum of squared distances to the assigned centre
  int64_t iterations = 0;
};

// k-means++ seeding with our own uniform draws (portable across standard libraries).
torch::Tensor kmeanspp_init(const torch::Tensor& x, int64_t k, std::mt19937_64& rng);
// Lloyd's iterations from given centres until no label changes (or max_iter). An empty cluster keeps its
// centre. Ties go to the lower cluster index.
KMeansResult lloyd(const torch::Tensor& x, torch::Tensor centers, int64_t max_iter);
// K-means of x [n,d] (float): n_init k-means++ restarts, the lowest inertia kept. Requires 1 <= k <= n.
KMeansResult kmeans(const torch::Tensor& x, int64_t k, uint64_t seed, int64_t n_init = 3, int64_t max_iter = 100);

// Centres (pixels) of the patch behind each similarity-map pixel: (j*r + r/2, i*r + r/2), row-major.
std::vector<std::array<float, 4>> patch_boxes(int64_t map_h, int64_t map_w, int64_t stride, float box_w, float box_h,
                                              int64_t image_h, int64_t image_w);

// The paper's cluster mask: K-means on the patch embeddings [n,d] together with the (mean) exemplar
// embedding [d]; 1 where a patch shares the exemplar's cluster. Returns [n] float.
torch::Tensor cluster_mask(const torch::Tensor& patches, const torch::Tensor& exemplar, int64_t k, uint64_t seed);

// Eq. 4: S where M = 1, delta elsewhere (M binary, broadcastable to S).
torch::Tensor apply_mask(const torch::Tensor& s, const torch::Tensor& m, double delta);

// Eq. 5: index of the smallest error (first on ties). Requires a non-empty list.
size_t select_k(const std::vector<double>& errors);

// Ablation: the mask of boxes (exemplar-sized) around the dot annotations, at the similarity map's grid:
// a map pixel is 1 if its patch centre lies in a box. [h,w] float.
torch::Tensor dot_box_mask(const std::vector<Point>& points, float box_w, float box_h, int64_t map_h, int64_t map_w,
                           int64_t stride);

}  // namespace cellcount::exemplar
