#include "core/kinds.h"

#include <filesystem>
#include <fstream>
#include <random>

#include "core/augment.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/files.h"
#include "core/image_tensor.h"
#include "core/synth.h"
#include "io/image_file.h"

namespace fs = std::filesystem;

namespace cellcount {

namespace {
std::string resolve(const std::string& p, const std::string& recipe_path) {
  if (p.empty() || fs::path(p).is_absolute() || fs::exists(p)) return p;
  const auto alt = fs::path(recipe_path).parent_path().parent_path().parent_path() / p;
  return fs::exists(alt) ? alt.string() : p;
}

uint64_t mix(uint64_t a, uint64_t b) {  // splitmix64 of a combination: independent streams per purpose
  uint64_t z = a * 0x9E3779B97F4A7C15ULL + b + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t split_id(const std::string& s) { return s == "train" ? 1 : s == "val" ? 2 : s == "test" ? 3 : 4; }
}  // namespace

Recipe load_recipe(const std::string& path) {
  Recipe r;
  r.path = path;
  r.json = read_json_file(path, CELLCOUNT_ERR_DATASET);  // regular file, bounded size and depth
  CC_CHECK(r.json.is_object(), CELLCOUNT_ERR_DATASET, "exemplar: recipe '" + path + "' is not a JSON object");
  try {
    r.size = r.json.value("size", r.size);
    r.seed = r.json.value("seed", r.seed);
    r.exemplars = r.json.value("exemplars", r.exemplars);
    r.images = r.json.at("images").get<std::map<std::string, int64_t>>();
    for (const auto& k : r.json.at("kinds")) {
      Kind kd;
      kd.name = k.at("name");
      kd.sigma = k.value("sigma", kd.sigma);
      kd.box = k.value("box", kd.box);
      if (k.contains("synthetic")) {
        kd.synthetic = k["synthetic"];
        kd.tint = k.value("tint", kd.tint);
        kd.count = k.at("count").get<std::map<std::string, int64_t>>();
      } else {
        kd.dataset = resolve(k.at("dataset"), path);
        kd.split_file = resolve(k.at("split_file"), path);
        kd.grid = k.value("grid", kd.grid);
      }
      r.kinds.push_back(kd);
    }
  } catch (const nlohmann::json::exception& e) {
    fail(CELLCOUNT_ERR_DATASET, "exemplar: recipe '" + path + "': " + e.what());
  }
  CC_CHECK(r.kinds.size() >= 2 && r.size >= 32 && r.size % 32 == 0 && r.exemplars >= 1, CELLCOUNT_ERR_DATASET,
           "exemplar: recipe '" + path + "' needs >= 2 kinds, a size that is a multiple of 32 and exemplars >= 1");
  return r;
}

std::vector<Tile> kind_tiles(const Recipe& r, size_t ki, const std::string& split, const Progress& progress) {
  const Kind& k = r.kinds.at(ki);
  const int64_t S = r.size;
  std::vector<Tile> out;
  if (!k.synthetic.is_null()) {
    SynthCellsParams p;
    p.width = p.height = S;
    const auto& j = k.synthetic;
    p.min_cells = j.value("min_cells", p.min_cells);
    p.max_cells = j.value("max_cells", p.max_cells);
    p.radius_min = j.value("radius_min", p.radius_min);
    p.radius_max = j.value("radius_max", p.radius_max);
    p.elongation_max = j.value("elongation_max", p.elongation_max);
    p.intensity_min = j.value("intensity_min", p.intensity_min);
    p.intensity_max = j.value("intensity_max", p.intensity_max);
    p.background = j.value("background", p.background);
    p.texture = j.value("texture", p.texture);
    p.blur_sigma = j.value("blur_sigma", p.blur_sigma);
    p.noise_sigma = j.value("noise_sigma", p.noise_sigma);
    p.min_center_distance = j.value("min_center_distance", p.min_center_distance);
    const int64_t n = k.count.count(split) ? k.count.at(split) : 0;
    for (int64_t i = 0; i < n; ++i) {
      progress.report(float(i) / n, k.name + " " + split);
      auto s = render_cells(p, mix(mix(r.seed, ki), split_id(split) * 1000003ULL + uint64_t(i)));
      auto g = torch::from_blob(s.image.data.data(), {1, S, S}, torch::kFloat32).clone();
      auto tint = torch::tensor({k.tint[0], k.tint[1], k.tint[2]}).view({3, 1, 1});
      Tile t;
      t.image = (g * tint * 255.0f).clamp(0, 255);
      for (auto q : s.points) {
        q.cls = int32_t(ki);
        t.points.push_back(q);
      }
      t.kind = int64_t(ki);
      out.push_back(std::move(t));
    }
    return out;
  }
  const auto ds = load_dataset(k.dataset, k.split_file);
  const auto idx = ds.indices(split);
  for (size_t n = 0; n < idx.size(); ++n) {
    progress.report(float(n) / idx.size(), k.name + " " + split);
    const auto& smp = ds.samples[idx[n]];
    auto full = convert_channels(image_to_tensor(io::read_image(ds.image_path(idx[n]))), "rgb");
    const int64_t H = full.size(1), W = full.size(2);
    for (int64_t gy = 0; gy < k.grid; ++gy)
      for (int64_t gx = 0; gx < k.grid; ++gx) {
        const int64_t y0 = H * gy / k.grid, y1 = H * (gy + 1) / k.grid, x0 = W * gx / k.grid, x1 = W * (gx + 1) / k.grid;
        Tile t;
        t.image = resize_to(full.slice(1, y0, y1).slice(2, x0, x1), S, S).clamp(0, 255).contiguous();
        const double sx = double(S) / double(x1 - x0), sy = double(S) / double(y1 - y0);
        for (const auto& q : smp.points)
          if (q.x >= x0 - 0.5f && q.x < x1 - 0.5f && q.y >= y0 - 0.5f && q.y < y1 - 0.5f)
            t.points.push_back(scale_point(Point{q.x - x0, q.y - y0, int32_t(ki), 1.f}, sx, sy));
        t.kind = int64_t(ki);
        out.push_back(std::move(t));
      }
  }
  return out;
}

std::vector<Box> boxes_from_points(const std::vector<Point>& points, size_t n, float box, int64_t width,
                                   int64_t height, uint64_t rng_seed) {
  std::vector<size_t> order(points.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(rng_seed);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[uniform_index(rng(), i)]);
  std::vector<Box> out;
  for (size_t i = 0; i < std::min(n, order.size()); ++i) {
    const auto& p = points[order[i]];
    out.push_back(Box{std::max(0.f, p.x + 0.5f - box / 2), std::max(0.f, p.y + 0.5f - box / 2),
                      std::min(float(width), p.x + 0.5f + box / 2), std::min(float(height), p.y + 0.5f + box / 2)});
  }
  return out;
}

std::vector<BenchImage> compose_benchmark(const Recipe& r, const std::vector<std::vector<Tile>>& tiles,
                                          const std::string& split, int64_t n) {
  const int64_t S = r.size, half = S / 2;
  std::vector<size_t> usable;
  for (size_t k = 0; k < tiles.size(); ++k)
    if (!tiles[k].empty()) usable.push_back(k);
  CC_CHECK(usable.size() >= 2, CELLCOUNT_ERR_DATASET, "exemplar benchmark: split '" + split + "' has fewer than 2 kinds with tiles");
  std::mt19937_64 rng(mix(r.seed, 77 + split_id(split)));
  std::vector<BenchImage> out;
  int64_t attempts = 0;
  while (int64_t(out.size()) < n) {
    CC_CHECK(++attempts < 100 * n + 100, CELLCOUNT_ERR_DATASET, "exemplar benchmark: too few tiles with cells");
    const size_t a = usable[uniform_index(rng(), usable.size())];
    size_t b = usable[uniform_index(rng(), usable.size() - 1)];
    if (b == a) b = usable.back();
    const Tile& ta = tiles[a][uniform_index(rng(), tiles[a].size())];
    const Tile& tb = tiles[b][uniform_index(rng(), tiles[b].size())];
    const int64_t src_a = int64_t(uniform_index(rng(), 2)) * half, src_b = int64_t(uniform_index(rng(), 2)) * half;
    const bool interest_left = uniform_index(rng(), 2) == 0;
    const uint64_t box_seed = rng();
    BenchImage im;
    im.interest_kind = int64_t(a);
    im.other_kind = int64_t(b);
    im.interest_left = interest_left;
    const int64_t dst_a = interest_left ? 0 : half, dst_b = interest_left ? half : 0;
    im.image = torch::zeros({3, S, S});
    im.image.slice(2, dst_a, dst_a + half).copy_(ta.image.slice(2, src_a, src_a + half));
    im.image.slice(2, dst_b, dst_b + half).copy_(tb.image.slice(2, src_b, src_b + half));
    std::vector<Point> interest;
    auto take = [&](const Tile& t, int64_t src, int64_t dst, bool is_interest) {
      for (const auto& q : t.points)
        if (q.x >= src - 0.5f && q.x < src + half - 0.5f) {
          Point p = q;
          p.x = q.x - float(src) + float(dst);
          im.points.push_back(p);
          if (is_interest) interest.push_back(p);
        }
    };
    take(ta, src_a, dst_a, true);
    take(tb, src_b, dst_b, false);
    if (interest.empty()) continue;  // nothing to draw exemplars from: compose another
    im.exemplars = boxes_from_points(interest, size_t(r.exemplars), r.kinds[a].box, S, S, box_seed);
    out.push_back(std::move(im));
  }
  return out;
}

}  // namespace cellcount
