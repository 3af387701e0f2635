// DCL training patches (load_items) and crops: each augmentation beyond the paper's flips and rotations,
// what it does and why.
#include "methods/dcl/dcl_crops.h"

#include <cmath>

#include "core/augment.h"
#include "core/dataset.h"
#include "core/density_map.h"
#include "core/error.h"
#include "io/image_file.h"
#include "core/kinds.h"


namespace cellcount::dcl {

namespace {

// A random ch x cw crop of the (zoomed) patch, one of the 8 dihedral transforms and the colour jitter. A
// non-square crop keeps its shape (no quarter turns), so that crops of one size stack into a batch.
std::pair<torch::Tensor, torch::Tensor> crop_at(const Item& it, int64_t ch, int64_t cw, const Augment& aug,
                                                std::mt19937_64& rng) {
  auto [image, density] = zoom_pair(it.image, it.density, ch, cw, aug.scale_jitter, rng);
  const int64_t h = image.size(1), w = image.size(2);
  const int64_t y0 = int64_t(uniform_index(rng(), uint64_t(h - ch + 1)));
  const int64_t x0 = int64_t(uniform_index(rng(), uint64_t(w - cw + 1)));
  auto t = Dihedral::random(rng());
  if (ch != cw) t.k &= 2;
  auto x = jitter_colour(t.apply(image.slice(1, y0, y0 + ch).slice(2, x0, x0 + cw)), aug.color_jitter, rng);
  return {mix_channels(x, aug, rng), t.apply(density.slice(1, y0, y0 + ch).slice(2, x0, x0 + cw))};
}

// The crop side for a patch: <= crop, a multiple of 16, the same for every zoom of the patch.
std::pair<int64_t, int64_t> crop_size(const Item& it, int64_t crop) {
  return {std::min(crop, it.image.size(1) / 16 * 16), std::min(crop, it.image.size(2) / 16 * 16)};
}

// Choice (the paper uses flips and rotations only): mosaic augmentation (as in YOLOv4's training). The
// crop is assembled from four quarter-size crops: the first of the batch's patch, the others of patches
// drawn at random (the batch's patch again where one is smaller than a quarter), each with its own zoom,
// dihedral transform and colour jitter; the dot maps are assembled alike, so the count stays exact. The
// quarters' sides are multiples of 8, so the count loss's 2 x 2 level sees exactly one source patch per
// region. Why it was tried: ADI (100 training images) overfits (train MAE 6.3 vs test 12.6); a mosaic shows
// the counter new combinations of densities with their true counts. Measured on ADI (adi preset, 300
// epochs, seed 0, counter-only test MAE of the weight average): 15.70 with mosaic 0.5 vs 12.56 without,
// so no preset uses it; it stays an option (off by default) for sets where it may pay.
std::pair<torch::Tensor, torch::Tensor> sample_mosaic(const std::vector<Item>& items, size_t first, int64_t ch,
                                                      int64_t cw, const Augment& aug, std::mt19937_64& rng) {
  const int64_t hh = ch / 2, hw = cw / 2;
  std::vector<torch::Tensor> rows_x, rows_d;
  for (int r = 0; r < 2; ++r) {
    std::vector<torch::Tensor> xs, ds;
    for (int c = 0; c < 2; ++c) {
      const Item* it = &items[first];
      if (r + c > 0) {
        const Item& other = items[uniform_index(rng(), items.size())];
        if (other.image.size(1) >= hh && other.image.size(2) >= hw) it = &other;
      }
      auto [x, d] = crop_at(*it, hh, hw, aug, rng);
      xs.push_back(x);
      ds.push_back(d);
    }
    rows_x.push_back(torch::cat(xs, 2));
    rows_d.push_back(torch::cat(ds, 2));
  }
  return {torch::cat(rows_x, 1), torch::cat(rows_d, 1)};
}

// The item's Gaussian dot map (sigma at the item's scale) and count, from its image size and points.
Item with_density(Item it, double sigma) {
  const int64_t h = it.image.size(1), w = it.image.size(2);
  auto d = gaussian_density(it.points, h, w, sigma);
  it.density = torch::from_blob(d.data(), {1, h, w}, torch::kFloat32).clone();
  it.count = double(it.points.size());
  return it;
}

}  // namespace

torch::Tensor mix_channels(torch::Tensor x, const Augment& aug, std::mt19937_64& rng) {
  if (x.size(0) != 3) return x;
  if (aug.grey > 0 && uniform01(rng()) < aug.grey) x = std::get<0>(x.max(0, true)).expand({3, -1, -1}).contiguous();
  if (aug.channel_shuffle > 0 && uniform01(rng()) < aug.channel_shuffle) {
    static const int64_t perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    const auto* p = perms[uniform_index(rng(), 6)];
    x = x.index_select(0, torch::tensor({p[0], p[1], p[2]}, torch::kLong));
  }
  return x;
}

std::pair<torch::Tensor, torch::Tensor> sample_crop(const std::vector<Item>& items, size_t b, int64_t crop,
                                                    const Augment& aug, std::mt19937_64& rng) {
  const auto [ch, cw] = crop_size(items[b], crop);
  if (aug.mosaic > 0 && uniform01(rng()) < aug.mosaic) return sample_mosaic(items, b, ch, cw, aug, rng);
  return crop_at(items[b], ch, cw, aug, rng);
}

std::pair<torch::Tensor, torch::Tensor> sample_batch(const std::vector<Item>& items, const std::vector<size_t>& batch,
                                                     int64_t crop, const Augment& aug, std::mt19937_64& rng,
                                                     const torch::Device& device, torch::ScalarType precision) {
  std::vector<torch::Tensor> xs, ds;
  for (size_t b : batch) {
    auto [x, d] = sample_crop(items, b, crop, aug, rng);
    xs.push_back(x);
    ds.push_back(d);
  }
  auto x = torch::stack(xs).to(device);
  if (precision != torch::kFloat32) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
  return {x, torch::stack(ds).to(device)};
}

std::vector<Item> load_recipe_items(const std::string& recipe, const std::string& split, const InputSpec& spec,
                                    double cell_diameter, double sigma, nlohmann::json* kinds_out,
                                    const Progress& progress) {
  const auto r = load_recipe(recipe);
  std::vector<Item> items;
  *kinds_out = nlohmann::json::array();
  for (size_t k = 0; k < r.kinds.size(); ++k) {
    const auto& kj = r.json["kinds"][k];
    CC_CHECK(kj.contains("diameter") && kj["diameter"].is_number() && kj["diameter"].get<double>() > 0,
             CELLCOUNT_ERR_DATASET,
             "dcl train: recipe '" + recipe + "': kind '" + r.kinds[k].name + "' needs a \"diameter\" (pixels at tile scale)");
    const double diameter = kj["diameter"], zoom = cell_diameter / diameter;
    // "repeat": n draws each of the kind's train patches n times an epoch (each a fresh random crop), weighting
    // the kind in the mixture; validation counts each patch once.
    int64_t repeat = 1;
    if (kj.contains("repeat")) {
      CC_CHECK(kj["repeat"].is_number_integer() && kj["repeat"].get<int64_t>() >= 1 && kj["repeat"].get<int64_t>() <= 16,
               CELLCOUNT_ERR_DATASET,
               "dcl train: recipe '" + recipe + "': kind '" + r.kinds[k].name + "': \"repeat\" must be an integer 1..16");
      if (split == "train") repeat = kj["repeat"].get<int64_t>();
    }
    const auto tiles = kind_tiles(r, k, split, progress.sub(float(k) / r.kinds.size(), float(k + 1) / r.kinds.size()));
    const size_t first = items.size();
    for (const auto& t : tiles) {
      Item it;
      it.image = resize_by(spec.prepare(t.image), zoom).contiguous();
      const int64_t h = it.image.size(1), w = it.image.size(2);
      const double sx = double(w) / double(t.image.size(2)), sy = double(h) / double(t.image.size(1));
      for (const auto& q : t.points) it.points.push_back(scale_point(Point{q.x, q.y, 0, 1.0f}, sx, sy));
      items.push_back(with_density(std::move(it), sigma));
    }
    const size_t loaded = items.size();
    for (int64_t rep = 1; rep < repeat; ++rep)
      for (size_t i = first; i < loaded; ++i) items.push_back(items[i]);  // tensors are shared, not copied
    nlohmann::json kind_out = {{"name", r.kinds[k].name}, {"diameter", diameter}, {"zoom", zoom}, {"patches", tiles.size()}};
    if (repeat > 1) kind_out["repeat"] = repeat;
    kinds_out->push_back(kind_out);
  }
  return items;
}

std::vector<Item> load_items(const Dataset& ds, const std::vector<size_t>& idx, const InputSpec& spec, int64_t grid,
                             int64_t resize, double sigma, double* scale_out, const Progress& progress) {
  std::vector<Item> items;
  for (size_t k = 0; k < idx.size(); ++k) {
    progress.report(float(k) / idx.size(), "loading images");
    const auto& s = ds.samples[idx[k]];
    CC_CHECK(s.has_points, CELLCOUNT_ERR_DATASET, "dcl train: image '" + s.image + "' has no points (points.csv)");
    auto full = spec.prepare(image_to_tensor(io::read_image(ds.image_path(idx[k]))));
    const int64_t H = full.size(1), W = full.size(2);
    for (int64_t gy = 0; gy < grid; ++gy)
      for (int64_t gx = 0; gx < grid; ++gx) {
        const int64_t y0 = H * gy / grid, y1 = H * (gy + 1) / grid, x0 = W * gx / grid, x1 = W * (gx + 1) / grid;
        const double scale = resize > 0 ? double(resize) / double(std::max(y1 - y0, x1 - x0)) : 1.0;
        *scale_out = scale;
        Item it;
        it.image = resize_by(full.slice(1, y0, y1).slice(2, x0, x1), scale).contiguous();
        const int64_t h = it.image.size(1), w = it.image.size(2);
        const double sx = double(w) / double(x1 - x0), sy = double(h) / double(y1 - y0);
        for (const auto& q : s.points)
          if (q.x >= x0 - 0.5f && q.x < x1 - 0.5f && q.y >= y0 - 0.5f && q.y < y1 - 0.5f)
            it.points.push_back(scale_point(Point{q.x - x0, q.y - y0, q.cls, 1.0f}, sx, sy));
        items.push_back(with_density(std::move(it), sigma));
      }
  }
  return items;
}

}  // namespace cellcount::dcl
