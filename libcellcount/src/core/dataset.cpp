#include "core/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "core/csv.h"
#include "core/error.h"
#include "core/limits.h"

namespace fs = std::filesystem;

namespace cellcount {

namespace {

double parse_number(const std::string& s, const std::string& file, size_t line, const char* col) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    used = 0;
  }
  CC_CHECK(used > 0 && used == s.size() && std::isfinite(v), CELLCOUNT_ERR_DATASET,
           file + ":" + std::to_string(line) + ": column '" + col + "' expected a finite number, got '" + s + "'");
  return v;
}

// An image name as the rows give it, refused unless it stays inside the dataset folder.
const std::string& check_image_name(const std::string& name, const std::string& file, size_t line) {
  const fs::path p(name);
  const fs::path norm = p.lexically_normal();
  const bool inside = !name.empty() && !p.is_absolute() && !p.has_root_name() && !p.has_root_directory() &&
                      !norm.empty() && *norm.begin() != ".." && norm != ".";
  CC_CHECK(inside, CELLCOUNT_ERR_DATASET,
           file + ":" + std::to_string(line) + ": image '" + echo(name) +
               "' must be a path relative to the dataset folder that stays inside it");
  return name;
}

// A class id of points.csv / proportions.csv: digits only, 0..kMaxClassId.
int32_t parse_class_id(const std::string& v, const std::string& file, size_t line) {
  CC_CHECK(v.size() <= 9, CELLCOUNT_ERR_DATASET,
           file + ":" + std::to_string(line) + ": class id '" + echo(v) + "' is larger than " +
               std::to_string(kMaxClassId));
  const long id = std::stol(v);
  CC_CHECK(id >= 0 && id <= kMaxClassId, CELLCOUNT_ERR_DATASET,
           file + ":" + std::to_string(line) + ": class id " + v + " is larger than " + std::to_string(kMaxClassId));
  return int32_t(id);
}

int need_column(const CsvTable& t, const std::string& file, const char* name) {
  int c = t.column(name);
  CC_CHECK(c >= 0, CELLCOUNT_ERR_DATASET, file + ": missing column '" + name + "'");
  return c;
}

}  // namespace

std::string Dataset::image_path(size_t i) const { return (fs::path(root) / samples.at(i).image).string(); }

std::vector<size_t> Dataset::indices(const std::string& split) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < samples.size(); ++i)
    if (split.empty() || split == "all" || samples[i].split == split) out.push_back(i);
  return out;
}

Dataset load_dataset(const std::string& dir, const std::string& split_file) {
  CC_CHECK(fs::is_directory(dir), CELLCOUNT_ERR_IO, "dataset folder '" + dir + "' does not exist");
  Dataset ds;
  ds.root = dir;
  std::map<std::string, Sample> by_image;
  auto sample = [&](const std::string& image) -> Sample& {
    auto& s = by_image[image];
    s.image = image;
    return s;
  };
  std::map<std::string, int32_t> class_ids;
  bool numeric_classes = true;
  std::vector<std::pair<std::string, std::string>> raw_classes;  // resolved after reading
  auto class_id = [&](const std::string& name) {
    auto it = class_ids.find(name);
    if (it != class_ids.end()) return it->second;
    int32_t id = int32_t(class_ids.size());
    class_ids[name] = id;
    return id;
  };

  bool any = false;
  const fs::path root(dir);
  if (fs::exists(root / "points.csv")) {
    any = true;
    const std::string f = (root / "points.csv").string();
    auto t = read_csv(f);
    const int ci = need_column(t, f, "image"), cx = need_column(t, f, "x"), cy = need_column(t, f, "y");
    const int cc = t.column("class");
    // Classes: integers are ids as given; anything else is a name, numbered in order of first appearance.
    if (cc >= 0)
      for (const auto& r : t.rows) {
        const auto& v = r[cc];
        numeric_classes = numeric_classes && !v.empty() && std::all_of(v.begin(), v.end(), ::isdigit);
      }
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const auto& r = t.rows[i];
      Point p;
      p.x = float(parse_number(r[cx], f, t.line_of_row(i), "x"));
      p.y = float(parse_number(r[cy], f, t.line_of_row(i), "y"));
      if (cc >= 0) p.cls = numeric_classes ? parse_class_id(r[cc], f, t.line_of_row(i)) : class_id(r[cc]);
      auto& s = sample(check_image_name(r[ci], f, t.line_of_row(i)));
      s.has_points = true;
      s.points.push_back(p);
    }
  }
  if (fs::exists(root / "counts.csv")) {
    any = true;
    const std::string f = (root / "counts.csv").string();
    auto t = read_csv(f);
    const int ci = need_column(t, f, "image"), cn = need_column(t, f, "count");
    for (size_t i = 0; i < t.rows.size(); ++i) {
      double c = parse_number(t.rows[i][cn], f, t.line_of_row(i), "count");
      CC_CHECK(c >= 0, CELLCOUNT_ERR_DATASET, f + ":" + std::to_string(t.line_of_row(i)) + ": negative count");
      sample(check_image_name(t.rows[i][ci], f, t.line_of_row(i))).count = c;
    }
  }
  if (fs::exists(root / "boxes.csv")) {
    any = true;
    const std::string f = (root / "boxes.csv").string();
    auto t = read_csv(f);
    const int ci = need_column(t, f, "image");
    const int c[4] = {need_column(t, f, "x0"), need_column(t, f, "y0"), need_column(t, f, "x1"),
                      need_column(t, f, "y1")};
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const size_t line = t.line_of_row(i);
      Box b{float(parse_number(t.rows[i][c[0]], f, line, "x0")), float(parse_number(t.rows[i][c[1]], f, line, "y0")),
            float(parse_number(t.rows[i][c[2]], f, line, "x1")), float(parse_number(t.rows[i][c[3]], f, line, "y1"))};
      CC_CHECK(b.x1 > b.x0 && b.y1 > b.y0, CELLCOUNT_ERR_DATASET,
               f + ":" + std::to_string(line) + ": box must have x1 > x0 and y1 > y0");
      sample(check_image_name(t.rows[i][ci], f, line)).boxes.push_back(b);
    }
  }
  if (fs::exists(root / "proportions.csv")) {
    any = true;
    const std::string f = (root / "proportions.csv").string();
    auto t = read_csv(f);
    const int ci = need_column(t, f, "image"), cc = need_column(t, f, "class"), cf = need_column(t, f, "fraction");
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const auto& v = t.rows[i][cc];
      const bool num = !v.empty() && std::all_of(v.begin(), v.end(), ::isdigit);
      const int32_t k = num ? parse_class_id(v, f, t.line_of_row(i)) : class_id(v);
      const double fr = parse_number(t.rows[i][cf], f, t.line_of_row(i), "fraction");
      CC_CHECK(fr >= 0 && fr <= 1, CELLCOUNT_ERR_DATASET,
               f + ":" + std::to_string(t.line_of_row(i)) + ": fraction must be in [0,1]");
      sample(check_image_name(t.rows[i][ci], f, t.line_of_row(i))).proportions[k] = fr;
    }
  }
  CC_CHECK(any, CELLCOUNT_ERR_IO,
           "dataset folder '" + dir + "' has none of points.csv, counts.csv, boxes.csv, proportions.csv");

  for (auto& [name, s] : by_image) {
    if (!s.count && s.has_points) s.count = double(s.points.size());
    ds.samples.push_back(s);
  }
  // Class names.
  if (!class_ids.empty()) {
    ds.class_names.resize(class_ids.size());
    for (auto& [n, id] : class_ids) ds.class_names[id] = n;
  } else {
    int32_t max_id = 0;
    for (const auto& s : ds.samples) {
      for (const auto& p : s.points) max_id = std::max(max_id, p.cls);
      for (const auto& [k, v] : s.proportions) max_id = std::max(max_id, k);
    }
    if (max_id == 0) {
      ds.class_names = {"cell"};
    } else {
      for (int32_t k = 0; k <= max_id; ++k) ds.class_names.push_back("class" + std::to_string(k));
    }
  }

  // Split.
  std::string sf = split_file;
  if (sf.empty() && fs::exists(root / "split.csv")) sf = (root / "split.csv").string();
  if (!sf.empty()) {
    auto t = read_csv(sf);
    const int ci = need_column(t, sf, "image"), cs = need_column(t, sf, "split");
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < ds.samples.size(); ++i) index[ds.samples[i].image] = i;
    for (size_t i = 0; i < t.rows.size(); ++i) {
      const auto& img = t.rows[i][ci];
      const auto& sp = t.rows[i][cs];
      CC_CHECK(sp == "train" || sp == "val" || sp == "test", CELLCOUNT_ERR_DATASET,
               sf + ":" + std::to_string(t.line_of_row(i)) + ": split must be train, val or test, got '" + sp + "'");
      auto it = index.find(img);
      CC_CHECK(it != index.end(), CELLCOUNT_ERR_DATASET,
               sf + ":" + std::to_string(t.line_of_row(i)) + ": image '" + img + "' is in no annotation file of " + dir);
      ds.samples[it->second].split = sp;
    }
    ds.split_source = sf;
  }
  return ds;
}

void check_points_inside(const Sample& s, int64_t height, int64_t width, const std::string& dataset_dir) {
  for (const auto& q : s.points)
    CC_CHECK(q.x >= -kPointTolerance && q.x <= float(width) - 1 + kPointTolerance && q.y >= -kPointTolerance &&
                 q.y <= float(height) - 1 + kPointTolerance,
             CELLCOUNT_ERR_DATASET,
             (fs::path(dataset_dir) / "points.csv").string() + ": point (" + std::to_string(q.x) + ", " +
                 std::to_string(q.y) + ") of image '" + s.image + "' lies outside its " + std::to_string(width) +
                 " x " + std::to_string(height) + " pixels (tolerance " + std::to_string(kPointTolerance) + ")");
}

uint64_t uniform_index(uint64_t r, uint64_t n) {
  // Multiply-shift (Lemire) without rejection: bias < n / 2^64, irrelevant here, and portable.
  return uint64_t((static_cast<unsigned __int128>(r) * n) >> 64);
}

void assign_split(Dataset& ds, double train, double test, double val, uint64_t seed) {
  CC_CHECK(train >= 0 && test >= 0 && val >= 0 && train + test + val > 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "split fractions must be >= 0 and not all 0");
  std::vector<size_t> order(ds.samples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[uniform_index(rng(), i)]);
  const double total = train + test + val;
  const size_t n = order.size();
  const size_t n_train = size_t(std::llround(n * train / total));
  const size_t n_test = std::min(n - n_train, size_t(std::llround(n * test / total)));
  for (size_t i = 0; i < n; ++i)
    ds.samples[order[i]].split = i < n_train ? "train" : i < n_train + n_test ? "test" : "val";
  ds.split_source = "assign_split(seed=" + std::to_string(seed) + ")";
}

void write_split(const Dataset& ds, const std::string& path, bool overwrite) {
  CC_CHECK(overwrite || !fs::exists(path), CELLCOUNT_ERR_IO, "'" + path + "' exists; pass overwrite to replace it");
  std::ofstream f(path);
  CC_CHECK(f.good(), CELLCOUNT_ERR_IO, "cannot write '" + path + "'");
  f << "image,split\n";
  for (const auto& s : ds.samples)
    if (!s.split.empty()) f << csv_escape(s.image) << "," << s.split << "\n";
  CC_CHECK(f.good(), CELLCOUNT_ERR_IO, "error writing '" + path + "'");
}

// Convention: flip first (x -> W-1-x), then k counter-clockwise quarter turns. torch::rot90 with dims
// {-2,-1} turns counter-clockwise in the (row, col) display sense, mapping (x, y) -> (y, W-1-x).
torch::Tensor Dihedral::apply(const torch::Tensor& t) const {
  auto r = flip ? t.flip({-1}) : t;
  if (k % 4 != 0) r = torch::rot90(r, k % 4, {-2, -1});
  return r.contiguous();
}

Point Dihedral::apply(const Point& p, int64_t height, int64_t width) const {
  Point q = p;
  float w = float(width), h = float(height);
  if (flip) q.x = w - 1 - q.x;
  for (int i = 0; i < k % 4; ++i) {
    const float x = q.x, y = q.y;
    q.x = y;
    q.y = w - 1 - x;
    std::swap(w, h);
  }
  return q;
}

Box Dihedral::apply(const Box& b, int64_t height, int64_t width) const {
  // Corners as half-open pixel edges: transform the two corner points of the closed box and re-sort.
  Point a{b.x0, b.y0}, c{b.x1 - 1, b.y1 - 1};
  a = apply(a, height, width);
  c = apply(c, height, width);
  return Box{std::min(a.x, c.x), std::min(a.y, c.y), std::max(a.x, c.x) + 1, std::max(a.y, c.y) + 1};
}

}  // namespace cellcount
