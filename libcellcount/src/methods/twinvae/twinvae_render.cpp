#include "methods/twinvae/twinvae_render.h"

#include <algorithm>
#include <cmath>

#include "core/dataset.h"
#include "core/error.h"
#include "methods/twinvae/twinvae_net.h"

namespace cellcount::twinvae {

namespace {
constexpr int S = int(kSide);
constexpr double kPi = 3.14159265358979323846;

// Python's randrange(a, b) and randrange(a, b, step), portable (core uniform_index).
int randrange(std::mt19937_64& rng, int a, int b, int step = 1) {
  const int n = (b - a + step - 1) / step;
  CC_CHECK(n > 0, CELLCOUNT_ERR_INTERNAL, "twinvae renderer: empty range");
  return a + step * int(uniform_index(rng(), uint64_t(n)));
}
double uniform(std::mt19937_64& rng, double a, double b) { return a + (b - a) * uniform01(rng()); }
double normal(std::mt19937_64& rng) {  // Box-Muller on our own uniforms (portable)
  const double u1 = std::max(uniform01(rng()), 1e-300), u2 = uniform01(rng());
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

// PIL-like filled ellipse in the box [x0, x1] x [y0, y1] (both ends inclusive, as Pillow's ImageDraw.ellipse):
// the pixels whose centres lie in the ellipse of semi-axes (x1-x0+1)/2, (y1-y0+1)/2 about the box centre.
void fill_ellipse(std::vector<float>& grey, std::vector<float>& alpha, int x0, int y0, int x1, int y1, float value) {
  const double cx = 0.5 * (x0 + x1), cy = 0.5 * (y0 + y1), rx = 0.5 * (x1 - x0 + 1), ry = 0.5 * (y1 - y0 + 1);
  for (int y = std::max(0, y0); y <= std::min(S - 1, y1); ++y)
    for (int x = std::max(0, x0); x <= std::min(S - 1, x1); ++x) {
      const double u = (x - cx) / rx, v = (y - cy) / ry;
      if (u * u + v * v <= 1.0) {
        grey[y * S + x] = value;
        alpha[y * S + x] = 255.0f;
      }
    }
}

// Separable Gaussian blur, edges extended (as Pillow's filters).
std::vector<float> gaussian_blur(const std::vector<float>& in, double sigma) {
  if (sigma <= 0) return in;
  const int r = std::max(1, int(std::ceil(3 * sigma)));
  std::vector<double> k(2 * r + 1);
  double sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[i + r] = std::exp(-0.5 * i * i / (sigma * sigma));
  for (auto& v : k) v /= sum;
  std::vector<float> tmp(in.size()), out(in.size());
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      double a = 0;
      for (int i = -r; i <= r; ++i) a += k[i + r] * in[y * S + std::clamp(x + i, 0, S - 1)];
      tmp[y * S + x] = float(a);
    }
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      double a = 0;
      for (int i = -r; i <= r; ++i) a += k[i + r] * tmp[std::clamp(y + i, 0, S - 1) * S + x];
      out[y * S + x] = float(a);
    }
  return out;
}

void check_background(const std::vector<float>& bg) {
  CC_CHECK(bg.size() == size_t(S * S), CELLCOUNT_ERR_INVALID_ARGUMENT, "twinvae renderer: the background must be 128x128");
}
}  // namespace

Modality parse_modality(const std::string& s) {
  if (s == "bf") return Modality::bf;
  if (s == "pc") return Modality::pc;
  fail(CELLCOUNT_ERR_INVALID_ARGUMENT, "twinvae: modality must be \"bf\" or \"pc\", not \"" + s + "\"");
}
const char* modality_name(Modality m) { return m == Modality::bf ? "bf" : "pc"; }

int draw_paper_count(std::mt19937_64& rng) {
  // randrange(1, 615) against the cumulative weights 35, 34, ..., 7 (k = 1..29), then 5 (k = 30).
  const int v = randrange(rng, 1, 615);
  int cum = 0;
  for (int k = 1; k <= 29; ++k) {
    cum += 36 - k;
    if (v <= cum) return k;
  }
  return 30;
}

Frame render_synthetic(Modality m, const std::vector<float>& background, std::mt19937_64& rng) {
  const int n = draw_paper_count(rng);
  return render_synthetic_n(m, background, n, rng);
}

Frame render_synthetic_n(Modality m, const std::vector<float>& background, int n, std::mt19937_64& rng) {
  check_background(background);
  const bool bf = m == Modality::bf;
  // CODE-FACTS 4.7, per modality.
  const int r_lo = 3, r_hi = bf ? 8 : 10;  // randrange(3, 8) / randrange(3, 10)
  const int x_lo = bf ? 26 : 12, x_hi = bf ? 20 : 11, y_lo = bf ? 12 : 11, y_hi = bf ? 6 : 10;
  const int overlap = bf ? 0 : 1;
  std::vector<float> grey(S * S, 0.0f), alpha(S * S, 0.0f);  // empty128.png: transparent black
  struct Placed { int x, y, r; };
  std::vector<Placed> placed;
  for (int c = 0; c < n; ++c) {
    // Choice: upstream retries for ever; we redraw the whole cell (r, x, y) on each rejection, as upstream,
    // and give up on the image after 100000 draws (never reached with these ranges and at most 30 cells).
    Placed p{};
    for (int tries = 0;; ++tries) {
      CC_CHECK(tries < 100000, CELLCOUNT_ERR_INTERNAL, "twinvae synthetic generator: cannot place " + std::to_string(n) + " cells");
      p.r = randrange(rng, r_lo, r_hi);
      p.x = randrange(rng, p.r + x_lo, S - p.r - x_hi, 2);
      p.y = randrange(rng, p.r + y_lo, S - p.r - y_hi, 2);
      bool ok = true;
      for (const auto& q : placed)
        if (std::hypot(double(p.x - q.x), double(p.y - q.y)) < double(p.r + q.r - overlap)) ok = false;
      if (ok) break;
    }
    placed.push_back(p);
    const float cell = bf ? float(180 + randrange(rng, 0, 30)) : float(50 + randrange(rng, 0, 10));
    const float edge = bf ? float(80 + randrange(rng, 0, 50)) : float(160 + randrange(rng, 0, 50));
    int dx = randrange(rng, -2, 2), dy = randrange(rng, -2, 2);
    if (p.r <= 3) {  // halved (Python's floor division)
      dx = int(std::floor(dx / 2.0));
      dy = int(std::floor(dy / 2.0));
    }
    // The side selector randrange(0, 1) is always 0: the deformation always moves the left/top edge.
    const int x0 = p.x - p.r + dx, y0 = p.y - p.r + dy, x1 = p.x + p.r, y1 = p.y + p.r;
    fill_ellipse(grey, alpha, x0, y0, x1, y1, edge);
    fill_ellipse(grey, alpha, x0 + 1, y0 + 1, x1 - 1, y1 - 1, cell);
  }
  // GaussianBlur(radius=1) of the RGBA image, band by band (Choice: a true Gaussian of sigma 1 for Pillow's
  // extended box blur; no premultiplied alpha, so transparent black bleeds in: a faint dark rim), blended 0.5/0.5
  // with the sharp image on every band, then alpha-composited over the opaque mean background.
  const auto gb = gaussian_blur(grey, 1.0), ab = gaussian_blur(alpha, 1.0);
  Frame f;
  f.count = n;
  f.pixels.resize(S * S);
  for (int i = 0; i < S * S; ++i) {
    const double g = 0.5 * grey[i] + 0.5 * gb[i], a = (0.5 * alpha[i] + 0.5 * ab[i]) / 255.0;
    f.pixels[i] = float(std::round(std::clamp(g * a + background[i] * (1.0 - a), 0.0, 255.0)));
  }
  return f;
}

Frame render_natural(Modality m, const std::vector<float>& background, std::mt19937_64& rng) {
  const int n = draw_paper_count(rng);
  return render_natural_n(m, background, n, rng);
}

// Our natural renderer. The frame is the chamber's base shading (the mean image, with uneven light, walls and
// smudges) times a modulation field in which each cell is drawn; then optics blur and camera noise.
Frame render_natural_n(Modality m, const std::vector<float>& background, int n, std::mt19937_64& rng) {
  check_background(background);
  const bool bf = m == Modality::bf;
  // Texture: two octaves of bilinear value noise in [-1, 1].
  auto value_noise = [&](int cell) {
    const int g = S / cell + 2;
    std::vector<double> grid(g * g);
    for (auto& v : grid) v = uniform(rng, -1, 1);
    std::vector<float> t(S * S);
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        const double fx = double(x) / cell, fy = double(y) / cell;
        const int ix = int(fx), iy = int(fy);
        const double ax = fx - ix, ay = fy - iy;
        t[y * S + x] = float((1 - ay) * ((1 - ax) * grid[iy * g + ix] + ax * grid[iy * g + ix + 1]) +
                             ay * ((1 - ax) * grid[(iy + 1) * g + ix] + ax * grid[(iy + 1) * g + ix + 1]));
      }
    return t;
  };
  const auto tex_fine = value_noise(2), tex_coarse = value_noise(5);

  // Base shading: gain, uneven light (a tilted plane and an off-centre vignette).
  std::vector<double> base(S * S);
  const double gain = uniform(rng, 0.92, 1.08), tilt = uniform(rng, 0.0, 0.12), ang = uniform(rng, 0, 2 * kPi);
  const double vx = uniform(rng, 20, 108), vy = uniform(rng, 20, 108), vig = uniform(rng, 0.0, 0.15);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const double px = (x - 64.0) / 64.0, py = (y - 64.0) / 64.0;
      const double d2 = ((x - vx) * (x - vx) + (y - vy) * (y - vy)) / (128.0 * 128.0);
      base[y * S + x] = background[y * S + x] * gain * (1 + tilt * (px * std::cos(ang) + py * std::sin(ang))) * (1 - vig * d2 * 2);
    }
  // Chamber walls: up to two image edges hold a wall band (darker in BF, brighter in PC) with a sharp edge
  // line; cells stay out of it.
  int wall[4] = {0, 0, 0, 0};  // left, right, top, bottom widths
  const int walls = uniform01(rng()) < 0.75 ? 1 + int(uniform01(rng()) < 0.4) : 0;
  for (int w = 0; w < walls; ++w) wall[uniform_index(rng(), 4)] = int(uniform(rng, 5, 16));
  const double wall_level = bf ? uniform(rng, 0.55, 0.8) : uniform(rng, 1.3, 1.8);
  const double line_level = bf ? uniform(rng, 0.35, 0.6) : uniform(rng, 1.8, 2.6);
  for (int y = 0; y < S; ++y)
    for (int x = 0; x < S; ++x) {
      const int d[4] = {x, S - 1 - x, y, S - 1 - y};
      double f = 1;
      for (int k = 0; k < 4; ++k) {
        if (!wall[k]) continue;
        if (d[k] < wall[k] - 1) f *= wall_level * (1 + 0.05 * tex_coarse[y * S + x]);
        else if (d[k] < wall[k] + 1) f *= line_level;
      }
      base[y * S + x] *= f;
    }
  // Smudges: 0..3 soft blobs on the optics (+-10 %), and 0..4 specks of debris (not cells).
  const int smudges = int(uniform_index(rng(), 4));
  for (int s = 0; s < smudges; ++s) {
    const double sx = uniform(rng, 0, S), sy = uniform(rng, 0, S), sr = uniform(rng, 5, 22), amp = uniform(rng, -0.1, 0.1);
    for (int i = 0; i < S * S; ++i) {
      const double dx = (i % S) - sx, dy = (i / S) - sy;
      base[i] *= 1 + amp * std::exp(-0.5 * (dx * dx + dy * dy) / (sr * sr));
    }
  }
  const int debris = int(uniform_index(rng(), 5));
  for (int s = 0; s < debris; ++s) {
    const double sx = uniform(rng, 0, S), sy = uniform(rng, 0, S), sr = uniform(rng, 0.6, 1.4);
    for (int i = 0; i < S * S; ++i) {
      const double dx = (i % S) - sx, dy = (i / S) - sy;
      base[i] *= 1 - 0.35 * std::exp(-0.5 * (dx * dx + dy * dy) / (sr * sr));
    }
  }

  // Cells: positions inside the chamber (out of the walls), some in clumps, some as dividing pairs.
  struct Cell { double x, y, a, b, th; };
  std::vector<Cell> cells;
  // Inside the chamber that the mean background shows (the synthetic generator's centre ranges without the
  // radius terms) and out of any wall band.
  const double x_lo = std::max(wall[0] + 6, bf ? 30 : 16), x_hi = std::min(S - wall[1] - 6, bf ? S - 24 : S - 15);
  const double y_lo = std::max(wall[2] + 6, bf ? 16 : 15), y_hi = std::min(S - wall[3] - 6, bf ? S - 10 : S - 14);
  auto fits = [&](const Cell& c, double min_factor) {
    if (c.x < x_lo || c.x > x_hi || c.y < y_lo || c.y > y_hi) return false;
    for (const auto& o : cells)
      if (std::hypot(c.x - o.x, c.y - o.y) < min_factor * (std::max(c.a, c.b) + std::max(o.a, o.b))) return false;
    return true;
  };
  const double r_lo = bf ? 3.5 : 3.5, r_hi = bf ? 7.5 : 9.0;
  int tries = 0;
  while (int(cells.size()) < n) {
    CC_CHECK(++tries < 200000, CELLCOUNT_ERR_INTERNAL, "twinvae natural renderer: cannot place " + std::to_string(n) + " cells");
    const double u = uniform01(rng());
    if (u < 0.12 && int(cells.size()) + 2 <= n) {  // a dividing cell: two small touching daughters
      const double r = uniform(rng, 3.0, 4.5), th = uniform(rng, 0, kPi);
      const double cx = uniform(rng, x_lo, x_hi), cy = uniform(rng, y_lo, y_hi);
      Cell c1{cx + 0.95 * r * std::cos(th), cy + 0.95 * r * std::sin(th), r, r * uniform(rng, 0.85, 1), th};
      Cell c2{cx - 0.95 * r * std::cos(th), cy - 0.95 * r * std::sin(th), r, r * uniform(rng, 0.85, 1), th};
      if (fits(c1, 0.85) && fits(c2, 0.85)) {
        cells.push_back(c1);
        cells.push_back(c2);
      }
      continue;
    }
    const double a = uniform(rng, r_lo, r_hi), b = a * uniform(rng, 0.8, 1.0), th = uniform(rng, 0, kPi);
    Cell c{0, 0, a, b, th};
    if (u < 0.45 && !cells.empty()) {  // in a clump: next to an existing cell, touching or slightly overlapping
      const auto& o = cells[uniform_index(rng(), cells.size())];
      const double d = (std::max(a, b) + std::max(o.a, o.b)) * uniform(rng, 0.85, 1.0), phi = uniform(rng, 0, 2 * kPi);
      c.x = o.x + d * std::cos(phi);
      c.y = o.y + d * std::sin(phi);
      if (fits(c, 0.82)) cells.push_back(c);
    } else {
      c.x = uniform(rng, x_lo, x_hi);
      c.y = uniform(rng, y_lo, y_hi);
      if (fits(c, 1.0)) cells.push_back(c);
    }
  }
  // Each cell multiplies the field: BF a dark rim with a faint bright inner ring, a slightly textured body and a
  // darker nucleus; PC a dark textured body inside a bright phase halo. Organelles are small dots in the body.
  std::vector<double> field(S * S, 1.0);
  auto smooth = [](double e0, double e1, double v) {
    const double t = std::clamp((v - e0) / (e1 - e0), 0.0, 1.0);
    return t * t * (3 - 2 * t);
  };
  for (const auto& c : cells) {
    const double body = bf ? uniform(rng, -0.04, 0.08) : -uniform(rng, 0.3, 0.55);
    const double rim = bf ? uniform(rng, 0.25, 0.5) : 0.0, halo = bf ? 0.0 : uniform(rng, 0.5, 1.1);
    const double nx = uniform(rng, -0.3, 0.3) * c.a, ny = uniform(rng, -0.3, 0.3) * c.b, nr = uniform(rng, 0.3, 0.45);
    const double ndark = bf ? uniform(rng, 0.03, 0.1) : uniform(rng, 0.05, 0.15);
    struct Dot { double x, y, r, amp; };
    std::vector<Dot> dots(size_t(3 + uniform_index(rng(), 6)));
    for (auto& d : dots) {
      const double rr = std::sqrt(uniform01(rng())) * 0.7, ph = uniform(rng, 0, 2 * kPi);
      d = {rr * c.a * std::cos(ph), rr * c.b * std::sin(ph), uniform(rng, 0.5, 1.1),
           (uniform01(rng()) < 0.7 ? -1 : 1) * uniform(rng, 0.08, 0.2)};
    }
    const double ct = std::cos(c.th), st = std::sin(c.th), ext = std::max(c.a, c.b) * 1.6 + 2;
    for (int y = std::max(0, int(c.y - ext)); y <= std::min(S - 1, int(c.y + ext)); ++y)
      for (int x = std::max(0, int(c.x - ext)); x <= std::min(S - 1, int(c.x + ext)); ++x) {
        const double dx = x - c.x, dy = y - c.y, u = dx * ct + dy * st, v = -dx * st + dy * ct;
        const double rho = std::sqrt((u / c.a) * (u / c.a) + (v / c.b) * (v / c.b));
        const double edge_w = 1.0 / c.a;  // about one pixel
        const double inside = 1 - smooth(1 - edge_w, 1 + edge_w, rho);
        double f = 1 + inside * (body + 0.05 * tex_fine[y * S + x]);
        if (bf) {
          f -= rim * std::exp(-0.5 * std::pow((rho - 0.95) / (1.2 * edge_w), 2));  // dark rim
          f += 0.4 * rim * std::exp(-0.5 * std::pow((rho - 0.75) / edge_w, 2));   // bright inner ring
        } else {
          f += halo * std::exp(-0.5 * std::pow((rho - 1.18) / (2.0 * edge_w), 2)); // phase halo
        }
        const double nu = (u - nx) / (nr * c.a), nv = (v - ny) / (nr * c.b);
        f -= inside * ndark * std::exp(-0.5 * (nu * nu + nv * nv) * 2);
        for (const auto& d : dots) {
          const double du = u - d.x, dv = v - d.y;
          f += inside * d.amp * std::exp(-0.5 * (du * du + dv * dv) / (d.r * d.r));
        }
        field[y * S + x] *= f;
      }
  }
  // Optics and camera: blur (sigma 0.5..1.0), shot noise (variance gain x signal) and read noise.
  std::vector<float> img(S * S);
  for (int i = 0; i < S * S; ++i) img[i] = float(base[i] * std::max(0.0, field[i]));
  img = gaussian_blur(img, uniform(rng, 0.5, 1.0));
  const double shot = uniform(rng, 0.05, 0.4), read = uniform(rng, 0.8, 3.0);
  Frame f;
  f.count = int(cells.size());
  f.pixels.resize(S * S);
  for (int i = 0; i < S * S; ++i) {
    const double v = img[i] + normal(rng) * std::sqrt(shot * std::max(0.0f, img[i]) + read * read);
    f.pixels[i] = float(std::round(std::clamp(v, 0.0, 255.0)));
  }
  return f;
}

}  // namespace cellcount::twinvae
