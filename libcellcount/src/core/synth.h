// A small synthetic fluorescence-cell renderer that methods extend (their own kinds of cells).
// No LibTorch. Deterministic for a seed.
#pragma once
#include <cstdint>
#include <vector>

#include "core/types.h"

namespace cellcount {

struct SynthCellsParams {
  int64_t width = 256, height = 256;
  int min_cells = 20, max_cells = 150;
  float radius_min = 3.5f, radius_max = 7.0f;   // cell radius in pixels
  float elongation_max = 1.6f;                   // max axis ratio of the ellipse
  float intensity_min = 0.35f, intensity_max = 1.0f;
  float background = 0.08f;                      // mean background level
  float background_gradient = 0.05f;             // uneven illumination amplitude
  float texture = 0.15f;                         // relative nuclear texture
  float blur_sigma = 1.0f;                       // optical blur (pixels)
  float noise_sigma = 0.03f;                     // Gaussian read noise
  float poisson_scale = 200.0f;                  // photons at intensity 1 (0 = no shot noise)
  float min_center_distance = 0.0f;              // 0 = cells may overlap freely
};

struct SynthImage {
  Image image;                 // 1 channel, float in about [0,1]
  std::vector<Point> points;   // cell centres (cls 0)
};

SynthImage render_cells(const SynthCellsParams& params, uint64_t seed);

}  // namespace cellcount
