// Datasets in the CSV form of DESIGN.md: a folder with images and
//   points.csv (image,x,y[,class])   counts.csv (image,count)   boxes.csv (image,x0,y0,x1,y1)
//   proportions.csv (image,class,fraction)   split.csv (image,train|val|test), all optional but one.
// `image` is a path relative to the folder. Extra columns are ignored.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/types.h"

namespace cellcount {

struct Sample {
  std::string image;                    // relative path, as written in the CSVs
  bool has_points = false;
  std::vector<Point> points;            // class ids index Dataset::class_names
  std::optional<double> count;          // counts.csv, else the number of points
  std::vector<Box> boxes;               // exemplar boxes
  std::map<int32_t, double> proportions;
  std::string split;                    // "train", "val", "test" or "" (unassigned)
};

struct Dataset {
  std::string root;
  std::vector<Sample> samples;          // sorted by image path
  std::vector<std::string> class_names; // from points.csv / proportions.csv class column ("cell" if none)
  std::string split_source;             // which split file was applied ("" if none)

  std::string image_path(size_t i) const;   // root / samples[i].image
  // Indices of samples in a split ("" or "all" = every sample).
  std::vector<size_t> indices(const std::string& split) const;
};

// Loads the CSVs of `dir`. `split_file`: "" = dir/split.csv if present; otherwise a path to a split
// CSV (e.g. one kept in the repo for a dataset in ../shared). Errors: CELLCOUNT_ERR_IO (no folder, no CSV),
// CELLCOUNT_ERR_DATASET (bad row: file, line and what was wrong; an image named in a split file that no
// annotation mentions; a point or box with non-numeric or non-finite coordinates).
// Every `image` must name a file inside `dir`: a relative path that does not climb out of it (no absolute
// path, no ".." past the folder; checked on the names, links are followed as they are). Class ids are
// integers 0..kMaxClassId. Both are CELLCOUNT_ERR_DATASET naming the file and line.
Dataset load_dataset(const std::string& dir, const std::string& split_file = "");

// Tolerance of point annotations: a point may lie up to this far outside the image's pixel centres
// (annotation tools place points on pixel edges and corners: -0.5 and width - 0.5).
constexpr float kPointTolerance = 1.0f;
// Refuses (CELLCOUNT_ERR_DATASET naming the image and the point) a point of `s` outside its height x width
// image by more than kPointTolerance: x in [-1, width], y in [-1, height]. Called once the image is read.
void check_points_inside(const Sample& s, int64_t height, int64_t width, const std::string& dataset_dir);

// Deterministic random split by fractions (train, test, val), e.g. the DCL paper's 10:9:1.
// Writes sample.split. Shuffles with std::mt19937_64(seed) and a Fisher-Yates we own (portable).
void assign_split(Dataset& ds, double train, double test, double val, uint64_t seed);
// Writes split.csv (image,split). Refuses to overwrite unless asked (CELLCOUNT_ERR_IO).
void write_split(const Dataset& ds, const std::string& path, bool overwrite);

// One of the 8 symmetries of the square: k quarter turns counter-clockwise after an optional
// horizontal flip. Applied consistently to [.., H, W] tensors, points and boxes.
struct Dihedral {
  int k = 0;
  bool flip = false;
  torch::Tensor apply(const torch::Tensor& t) const;  // last two dims are H, W
  Point apply(const Point& p, int64_t height, int64_t width) const;
  Box apply(const Box& b, int64_t height, int64_t width) const;
  static Dihedral random(uint64_t r) { return Dihedral{int(r % 4), ((r >> 2) & 1) != 0}; }
};

// Portable uniform integer in [0, n) from a 64-bit generator (std::uniform_int_distribution differs
// between standard libraries, which would break seed determinism across platforms).
uint64_t uniform_index(uint64_t random64, uint64_t n);

// Portable uniform double in [0, 1) from a 64-bit generator draw (53 random bits), for the same reason.
inline double uniform01(uint64_t random64) { return double(random64 >> 11) * (1.0 / 9007199254740992.0); }

}  // namespace cellcount
