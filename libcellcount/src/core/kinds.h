// Kinds of cells, shared by the exemplar method and dcl training on a recipe (dcl-general): real sets in ../shared
// read through their split files, and kinds drawn by the project's renderer, as square single-kind tiles; and the
// multi-kind benchmark made the paper's way (section 4.1): the halves of two tiles of different kinds side by side,
// exemplars drawn from the ground-truth points of one half. Everything is deterministic for the recipe's seed.
#pragma once
#include <array>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/progress.h"
#include "core/types.h"

namespace cellcount {

struct Kind {
  std::string name;
  // Real: a dataset folder and its split file, each image cut into grid x grid patches, each resized to
  // the recipe's tile size. Synthetic: render_cells parameters and an RGB tint.
  std::string dataset, split_file;
  int64_t grid = 1;
  nlohmann::json synthetic;             // null for a real kind
  std::array<float, 3> tint{1, 1, 1};
  std::map<std::string, int64_t> count;  // synthetic: tiles per split
  double sigma = 2.0;                   // Gaussian of the density target at tile scale
  float box = 12;                       // exemplar box side at tile scale (pixels)
};

struct Recipe {
  std::string path;
  int64_t size = 256;                   // tile side; benchmark images are size x size
  uint64_t seed = 2024;
  int64_t exemplars = 3;
  std::map<std::string, int64_t> images;  // benchmark images per split
  std::vector<Kind> kinds;
  nlohmann::json json;
};

struct Tile {
  torch::Tensor image;        // [3,S,S] float, 0..255
  std::vector<Point> points;  // at tile scale, cls = kind index
  int64_t kind = 0;
};

// Reads a recipe (datasets/recipes/*.json). Relative dataset paths are tried against the current folder,
// then against the folder two levels above the recipe (the repository root). Errors: IO, DATASET.
Recipe load_recipe(const std::string& path);

// The tiles of one kind in one split ("train", "val", "test").
std::vector<Tile> kind_tiles(const Recipe& r, size_t kind, const std::string& split, const Progress& progress);

struct BenchImage {
  torch::Tensor image;            // [3,S,S] float 0..255
  std::vector<Point> points;      // both halves, cls = kind index
  std::vector<Box> exemplars;     // around points of the interest half
  int64_t interest_kind = 0, other_kind = 0;
  bool interest_left = true;
};

// The benchmark images of one split, composed from that split's tiles of every kind.
std::vector<BenchImage> compose_benchmark(const Recipe& r, const std::vector<std::vector<Tile>>& tiles,
                                          const std::string& split, int64_t n);

// Exemplar boxes (side `box`, clipped to size x size) around `n` distinct points drawn with `rng_seed`.
std::vector<Box> boxes_from_points(const std::vector<Point>& points, size_t n, float box, int64_t width,
                                   int64_t height, uint64_t rng_seed);

}  // namespace cellcount
