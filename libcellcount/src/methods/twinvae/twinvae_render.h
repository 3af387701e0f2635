// The two renderers of twinvae's datasets, both 128x128 grey frames of a cultivation chamber in 0..255:
//  - the paper's synthetic generator (data_generator/image_generator.py, every parameter of CODE-FACTS 4.7):
//    outlined ellipses on the mean background image of the modality, blurred and alpha-composited;
//  - our "natural" renderer: no CHO-K1 image is public, so the natural domain is a second, more realistic
//    renderer (textured cells with organelles, phase halos for PC, smudges, uneven light, camera noise, clumps
//    and dividing cells, chamber walls). It stands in for the real microscope images; it is not them.
// Both are deterministic by their generator's seed. No LibTorch here.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace cellcount::twinvae {

enum class Modality { bf, pc };
Modality parse_modality(const std::string& s);
const char* modality_name(Modality m);

struct Frame {
  std::vector<float> pixels;  // 128*128, row-major, grey 0..255
  int count = 0;
};

// The paper's count distribution: k = 1..30 with weights 36-k (k < 30) and 5 (k = 30), total 614
// (randrange(1, 615) over the cumulative weights); P(1) = 35/614, mean 11.82.
int draw_paper_count(std::mt19937_64& rng);

// The paper's generator. `background`: the modality's mean image (mean128_{bf,pc}.png), 128*128 grey.
Frame render_synthetic(Modality m, const std::vector<float>& background, std::mt19937_64& rng);
// The same with a given number of cells (tests).
Frame render_synthetic_n(Modality m, const std::vector<float>& background, int n, std::mt19937_64& rng);

// Our natural renderer; `background` as above (the chamber's base shading, which we perturb).
Frame render_natural(Modality m, const std::vector<float>& background, std::mt19937_64& rng);
Frame render_natural_n(Modality m, const std::vector<float>& background, int n, std::mt19937_64& rng);

}  // namespace cellcount::twinvae
