#include "core/synth.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "core/error.h"

namespace cellcount {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Random numbers from raw mt19937_64 output only: std::*_distribution differ between standard libraries,
// this does not (up to libm's last-ulp differences in log/cos/exp).
class Rng {
 public:
  explicit Rng(uint64_t seed) : eng_(seed) {}

  double uniform() { return static_cast<double>(eng_() >> 11) * 0x1.0p-53; }  // [0, 1), 53 random bits
  double uniform(double a, double b) { return a + (b - a) * uniform(); }

  // Uniform integer in [a, b] without modulo bias.
  int64_t uniform_int(int64_t a, int64_t b) {
    const uint64_t span = static_cast<uint64_t>(b - a) + 1;
    if (span == 0) return static_cast<int64_t>(eng_());  // the whole 64-bit range
    const uint64_t limit = UINT64_MAX - UINT64_MAX % span;
    uint64_t r;
    do r = eng_(); while (r >= limit);
    return a + static_cast<int64_t>(r % span);
  }

  // Standard normal by Box-Muller; the second value of each pair is kept for the next call.
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: log is finite
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * kPi * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * kPi * u2);
  }

 private:
  std::mt19937_64 eng_;
  bool has_spare_ = false;
  double spare_ = 0;
};

// Separable Gaussian blur of a row-major h x w float image, edges replicated.
void gaussian_blur(std::vector<float>* img, int64_t h, int64_t w, double sigma) {
  if (!(sigma > 0)) return;
  const int64_t r = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3.0 * sigma)));
  std::vector<double> k(static_cast<size_t>(2 * r + 1));
  double sum = 0;
  for (int64_t i = -r; i <= r; ++i) {
    const double d = static_cast<double>(i);
    sum += k[static_cast<size_t>(i + r)] = std::exp(-0.5 * d * d / (sigma * sigma));
  }
  for (double& v : k) v /= sum;
  std::vector<float> tmp(img->size());
  const float* src = img->data();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double acc = 0;
      for (int64_t i = -r; i <= r; ++i)
        acc += k[static_cast<size_t>(i + r)] * src[y * w + std::clamp<int64_t>(x + i, 0, w - 1)];
      tmp[static_cast<size_t>(y * w + x)] = static_cast<float>(acc);
    }
  float* dst = img->data();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      double acc = 0;
      for (int64_t i = -r; i <= r; ++i)
        acc += k[static_cast<size_t>(i + r)] * tmp[static_cast<size_t>(std::clamp<int64_t>(y + i, 0, h - 1) * w + x)];
      dst[y * w + x] = static_cast<float>(acc);
    }
}

// Std of white unit noise after gaussian_blur(sigma), away from the edges.
double blurred_noise_std(double sigma) {
  const int64_t r = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3.0 * sigma)));
  double sum = 0, sum2 = 0;
  for (int64_t i = -r; i <= r; ++i) {
    const double d = static_cast<double>(i);
    const double v = std::exp(-0.5 * d * d / (sigma * sigma));
    sum += v;
    sum2 += v * v;
  }
  return sum2 / (sum * sum);  // (sqrt(sum2)/sum)^2: the 1-D factor squared = the 2-D std
}

struct Spot {
  double dx, dy, sigma, amplitude;
};

struct Cell {
  double x, y;           // centre
  double a, b;           // semi-axes (pixels)
  double cos_t, sin_t;   // orientation
  double intensity;
  double softness;       // edge width (pixels)
  std::vector<Spot> spots;
};

void check_params(const SynthCellsParams& p) {
  auto s = [](double v) { return std::to_string(v); };
  CC_CHECK(p.width > 0 && p.height > 0 && p.width <= (int64_t{1} << 16) && p.height <= (int64_t{1} << 16),
           CELLCOUNT_ERR_INVALID_ARGUMENT,
           "render_cells: expected 1 <= width, height <= 65536, got " + std::to_string(p.width) + " x " +
               std::to_string(p.height));
  CC_CHECK(p.min_cells >= 0 && p.max_cells >= p.min_cells, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "render_cells: expected 0 <= min_cells <= max_cells, got " + std::to_string(p.min_cells) + ", " +
               std::to_string(p.max_cells));
  CC_CHECK(p.radius_min > 0 && p.radius_max >= p.radius_min && std::isfinite(p.radius_max),
           CELLCOUNT_ERR_INVALID_ARGUMENT,
           "render_cells: expected 0 < radius_min <= radius_max, got " + s(p.radius_min) + ", " + s(p.radius_max));
  CC_CHECK(p.elongation_max >= 1 && std::isfinite(p.elongation_max), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "render_cells: expected elongation_max >= 1, got " + s(p.elongation_max));
  CC_CHECK(p.intensity_min >= 0 && p.intensity_max >= p.intensity_min && std::isfinite(p.intensity_max),
           CELLCOUNT_ERR_INVALID_ARGUMENT,
           "render_cells: expected 0 <= intensity_min <= intensity_max, got " + s(p.intensity_min) + ", " +
               s(p.intensity_max));
  const float nonneg[] = {p.background, p.background_gradient, p.texture,    p.blur_sigma,
                          p.noise_sigma, p.poisson_scale,      p.min_center_distance};
  const char* names[] = {"background", "background_gradient", "texture", "blur_sigma",
                         "noise_sigma", "poisson_scale", "min_center_distance"};
  for (size_t i = 0; i < sizeof nonneg / sizeof nonneg[0]; ++i)
    CC_CHECK(nonneg[i] >= 0 && std::isfinite(nonneg[i]), CELLCOUNT_ERR_INVALID_ARGUMENT,
             std::string("render_cells: expected ") + names[i] + " >= 0 and finite, got " + s(nonneg[i]));
}

// Centres at least `min_dist` apart: rejection sampling with a bounded number of tries per cell, checked
// against a bucket grid. A cell that finds no room is dropped, so a crowded image may hold fewer cells.
std::vector<std::pair<double, double>> place_centres(Rng& rng, int64_t n, int64_t w, int64_t h, double min_dist) {
  constexpr int kTries = 64;
  std::vector<std::pair<double, double>> out;
  out.reserve(static_cast<size_t>(n));
  const double cell = std::max({min_dist, static_cast<double>(std::max(w, h)) / 256.0, 1.0});
  const int64_t gw = static_cast<int64_t>(std::ceil(static_cast<double>(w) / cell)) + 1;
  const int64_t gh = static_cast<int64_t>(std::ceil(static_cast<double>(h) / cell)) + 1;
  std::vector<std::vector<size_t>> grid(min_dist > 0 ? static_cast<size_t>(gw * gh) : 0);
  const double d2 = min_dist * min_dist;
  for (int64_t c = 0; c < n; ++c) {
    for (int t = 0; t < kTries; ++t) {
      const double x = rng.uniform(0.0, static_cast<double>(w - 1));
      const double y = rng.uniform(0.0, static_cast<double>(h - 1));
      if (min_dist > 0) {
        const int64_t gx = static_cast<int64_t>(x / cell), gy = static_cast<int64_t>(y / cell);
        bool free = true;
        for (int64_t cy = std::max<int64_t>(gy - 1, 0); cy <= std::min(gy + 1, gh - 1) && free; ++cy)
          for (int64_t cx = std::max<int64_t>(gx - 1, 0); cx <= std::min(gx + 1, gw - 1) && free; ++cx)
            for (size_t j : grid[static_cast<size_t>(cy * gw + cx)]) {
              const double dx = out[j].first - x, dy = out[j].second - y;
              if (dx * dx + dy * dy < d2) {
                free = false;
                break;
              }
            }
        if (!free) continue;
        grid[static_cast<size_t>(gy * gw + gx)].push_back(out.size());
      }
      out.emplace_back(x, y);
      break;
    }
  }
  return out;
}

}  // namespace

SynthImage render_cells(const SynthCellsParams& p, uint64_t seed) {
  check_params(p);
  Rng rng(seed);
  const int64_t w = p.width, h = p.height;
  const size_t n_pixels = static_cast<size_t>(w * h);

  // 1. Cells: count, centres, then each cell's shape, brightness and texture spots.
  const int64_t n = rng.uniform_int(p.min_cells, p.max_cells);
  const auto centres = place_centres(rng, n, w, h, p.min_center_distance);
  std::vector<Cell> cells;
  cells.reserve(centres.size());
  for (const auto& c : centres) {
    Cell cell;
    cell.x = c.first;
    cell.y = c.second;
    const double r = rng.uniform(p.radius_min, p.radius_max);
    const double e = std::sqrt(rng.uniform(1.0, p.elongation_max));  // area-preserving axis ratio e^2
    cell.a = r * e;
    cell.b = r / e;
    const double theta = rng.uniform(0.0, kPi);
    cell.cos_t = std::cos(theta);
    cell.sin_t = std::sin(theta);
    cell.intensity = rng.uniform(p.intensity_min, p.intensity_max);
    cell.softness = rng.uniform(0.35, 0.9);
    // Chromatin: a few bright chromocentres and dark nucleoli, placed inside the nucleus.
    const int64_t n_spots = rng.uniform_int(0, 4);
    for (int64_t s = 0; s < n_spots; ++s) {
      const double rho = 0.6 * std::sqrt(rng.uniform()), phi = rng.uniform(0.0, 2 * kPi);
      const double u = rho * std::cos(phi) * cell.a, v = rho * std::sin(phi) * cell.b;
      Spot spot;
      spot.dx = u * cell.cos_t - v * cell.sin_t;
      spot.dy = u * cell.sin_t + v * cell.cos_t;
      spot.sigma = r * rng.uniform(0.12, 0.25);
      spot.amplitude = p.texture * rng.uniform(1.0, 2.5) * (rng.uniform() < 0.65 ? 1.0 : -1.0);
      cell.spots.push_back(spot);
    }
    cells.push_back(std::move(cell));
  }

  // 2. Uneven illumination: a linear ramp in a random direction plus one broad bright region.
  const double phi = rng.uniform(0.0, 2 * kPi);
  const double spot_x = rng.uniform(0.0, static_cast<double>(w - 1)), spot_y = rng.uniform(0.0, static_cast<double>(h - 1));
  const double spot_s = 0.5 * static_cast<double>(std::max(w, h));

  // 3. Nuclear texture: smooth unit-variance noise shared by all cells (fine granular chromatin).
  std::vector<float> field;
  if (p.texture > 0) {
    field.resize(n_pixels);
    for (float& v : field) v = static_cast<float>(rng.normal());
    const double ts = 1.2;
    gaussian_blur(&field, h, w, ts);
    const float scale = static_cast<float>(1.0 / blurred_noise_std(ts));
    for (float& v : field) v *= scale;
  }

  SynthImage out;
  Image& img = out.image;
  img.width = w;
  img.height = h;
  img.channels = 1;
  img.source_dtype = "f32";
  img.data.assign(n_pixels, 0.0f);
  std::vector<float>& px = img.data;

  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      const double xn = w > 1 ? 2.0 * static_cast<double>(x) / static_cast<double>(w - 1) - 1.0 : 0.0;
      const double yn = h > 1 ? 2.0 * static_cast<double>(y) / static_cast<double>(h - 1) - 1.0 : 0.0;
      const double ramp = 0.5 * (std::cos(phi) * xn + std::sin(phi) * yn);
      const double dx = static_cast<double>(x) - spot_x, dy = static_cast<double>(y) - spot_y;
      const double glow = std::exp(-(dx * dx + dy * dy) / (2 * spot_s * spot_s)) - 0.5;
      px[static_cast<size_t>(y * w + x)] = static_cast<float>(p.background + p.background_gradient * (ramp + glow));
    }

  // 4. Nuclei: soft-edged ellipses, slightly domed (thicker in the middle), textured; overlaps add up.
  for (const Cell& c : cells) {
    const double reach = std::max(c.a, c.b) + 5.0 * c.softness + 1.0;
    const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(c.x - reach)));
    const int64_t x1 = std::min<int64_t>(w - 1, static_cast<int64_t>(std::ceil(c.x + reach)));
    const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(c.y - reach)));
    const int64_t y1 = std::min<int64_t>(h - 1, static_cast<int64_t>(std::ceil(c.y + reach)));
    for (int64_t y = y0; y <= y1; ++y)
      for (int64_t x = x0; x <= x1; ++x) {
        const double dx = static_cast<double>(x) - c.x, dy = static_cast<double>(y) - c.y;
        const double u = (dx * c.cos_t + dy * c.sin_t) / c.a;
        const double v = (-dx * c.sin_t + dy * c.cos_t) / c.b;
        const double rho = std::sqrt(u * u + v * v);
        const double dist = std::sqrt(dx * dx + dy * dy);
        // Signed distance to the outline along the ray from the centre (negative inside).
        const double d = rho > 1e-9 ? dist - dist / rho : -std::min(c.a, c.b);
        const double t = d / c.softness;
        if (t > 30) continue;
        const double mask = 1.0 / (1.0 + std::exp(t));
        double body = 1.0 - 0.2 * std::min(rho, 1.0) * std::min(rho, 1.0);
        if (!field.empty()) body *= std::max(0.2, 1.0 + p.texture * field[static_cast<size_t>(y * w + x)]);
        for (const Spot& s : c.spots) {
          const double sx = dx - s.dx, sy = dy - s.dy;
          body += s.amplitude * std::exp(-(sx * sx + sy * sy) / (2 * s.sigma * s.sigma));
        }
        px[static_cast<size_t>(y * w + x)] += static_cast<float>(c.intensity * mask * std::max(0.0, body));
      }
  }

  // 5. Optics, then camera: shot noise (Gaussian approximation of Poisson) and read noise; no negative light.
  gaussian_blur(&px, h, w, p.blur_sigma);
  for (float& v : px) {
    double val = std::max(0.0f, v);
    if (p.poisson_scale > 0) val += std::sqrt(val / p.poisson_scale) * rng.normal();
    if (p.noise_sigma > 0) val += p.noise_sigma * rng.normal();
    v = static_cast<float>(std::max(0.0, val));
  }

  out.points.reserve(cells.size());
  for (const Cell& c : cells) {
    Point pt;
    pt.x = static_cast<float>(c.x);
    pt.y = static_cast<float>(c.y);
    pt.cls = 0;
    pt.score = 1.0f;
    out.points.push_back(pt);
  }
  return out;
}

}  // namespace cellcount
