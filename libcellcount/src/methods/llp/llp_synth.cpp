// The WBC hologram simulator. Choices (METHODS section 3; no WBC data is public):
//  - Classes and sizes (diameters, um, Gaussian, clamped): granulocytes 11.0 +- 1.3 (8.5..14.5) with a
//    multi-lobed nucleus (3-4 lobes) and a granular cytoplasm; lymphocytes 8.2 +- 1.1 (6..11.5) with a large
//    round nucleus (0.8 of the radius); monocytes 13.0 +- 1.9 (9.5..18) with a kidney-shaped nucleus and a
//    fine texture. The size ranges overlap (a large lymphocyte is a small granulocyte, a small monocyte a
//    granulocyte), and absorption and phase delay are drawn from overlapping ranges with a common per-cell
//    contrast factor U(0.7, 1.3): neither size nor brightness alone separates the classes.
//  - Object plane: complex transmittance t = (1 - a) exp(i p) inside cells (a absorption, p phase delay),
//    rendered at 4x supersampling and averaged to the 1.837 um pixel; 1 outside. Cells do not overlap
//    (centre distance >= 1.15 (r1 + r2)), stay 6 px inside the border.
//  - Sensor: field T^-1(t) (propagated by z through the wide angular spectrum), intensity |.|^2 times a smooth
//    illumination (linear gradient +-5 %), plus Gaussian read noise (`noise`, default 0.01).
//  - Donors: proportions drawn around normal blood-count ranges (granulocytes N(0.62, 0.08) in [0.40, 0.80],
//    lymphocytes N(0.30, 0.07) in [0.15, 0.50], monocytes N(0.07, 0.025) in [0.02, 0.14], renormalised);
//    every image of a donor is labelled with the donor's proportions plus label noise N(0, label_noise) per
//    class (renormalised): the labels are donor-level and noisy, the cells of an image are a multinomial draw.
#include "methods/llp/llp_synth.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <random>

#include "core/error.h"
#include "core/image_tensor.h"
#include "core/limits.h"
#include "core/staged_dir.h"
#include "io/image_file.h"

namespace fs = std::filesystem;

namespace cellcount::llp {

const std::vector<std::string> kWbcClasses = {"granulocyte", "lymphocyte", "monocyte"};

namespace {

double clamp_normal(std::mt19937_64& rng, double mean, double sd, double lo, double hi) {
  std::normal_distribution<double> g(mean, sd);
  return std::clamp(g(rng), lo, hi);
}

struct Cell {
  double x, y, r;  // pixels
  int cls;
};

}  // namespace

WbcImage render_wbc(int64_t H, int64_t W, int64_t n_cells, const std::vector<double>& prop, const Optics& optics,
                    double noise, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  const double px = optics.pixel_um;
  // Cells: class by the proportions, size by class, placed without overlap (a few tries each).
  std::vector<Cell> cells;
  for (int64_t c = 0; c < n_cells; ++c) {
    double v = u01(rng), acc = 0;
    int cls = 2;
    for (int k = 0; k < 3; ++k) {
      acc += prop[size_t(k)];
      if (v < acc) {
        cls = k;
        break;
      }
    }
    double d_um = cls == 0 ? clamp_normal(rng, 11.0, 1.3, 8.5, 14.5)
                : cls == 1 ? clamp_normal(rng, 8.2, 1.1, 6.0, 11.5)
                           : clamp_normal(rng, 13.0, 1.9, 9.5, 18.0);
    const double r = 0.5 * d_um / px;
    for (int tries = 0; tries < 50; ++tries) {
      const double x = 6 + r + u01(rng) * (double(W) - 12 - 2 * r), y = 6 + r + u01(rng) * (double(H) - 12 - 2 * r);
      bool ok = true;
      for (const auto& o : cells) ok = ok && std::hypot(o.x - x, o.y - y) >= 1.15 * (o.r + r);
      if (ok) {
        cells.push_back({x, y, r, cls});
        break;
      }
    }
  }
  // Object plane at 4x supersampling: absorption and phase maps.
  const int ss = 4;
  const int64_t Hs = H * ss, Ws = W * ss;
  std::vector<float> absorb(size_t(Hs * Ws), 0.f), phase(size_t(Hs * Ws), 0.f);
  std::vector<float> absorb_px(size_t(H * W), 0.f);  // pixel-level texture added after pooling
  WbcImage out;
  for (const auto& c : cells) {
    const double contrast = 0.7 + 0.6 * u01(rng);
    double a_cyto, a_nuc, p_cyto, p_nuc, texture;
    if (c.cls == 0) {  // granulocyte
      a_cyto = 0.12 + 0.10 * u01(rng); a_nuc = 0.30 + 0.20 * u01(rng);
      p_cyto = 0.35 + 0.25 * u01(rng); p_nuc = 0.55 + 0.35 * u01(rng); texture = 0.18;
    } else if (c.cls == 1) {  // lymphocyte
      a_cyto = 0.08 + 0.10 * u01(rng); a_nuc = 0.32 + 0.20 * u01(rng);
      p_cyto = 0.25 + 0.25 * u01(rng); p_nuc = 0.60 + 0.35 * u01(rng); texture = 0.04;
    } else {  // monocyte
      a_cyto = 0.10 + 0.10 * u01(rng); a_nuc = 0.26 + 0.20 * u01(rng);
      p_cyto = 0.30 + 0.25 * u01(rng); p_nuc = 0.50 + 0.35 * u01(rng); texture = 0.08;
    }
    // Nucleus as a union of discs (minus a notch for the kidney shape), in units of the cell radius.
    struct Disc { double dx, dy, r; };
    std::vector<Disc> nucleus, notch;
    const double th = 2 * M_PI * u01(rng);
    if (c.cls == 0) {
      const int lobes = 3 + int(u01(rng) * 2);
      for (int l = 0; l < lobes; ++l) {
        const double a = th + 2 * M_PI * l / lobes + 0.3 * (u01(rng) - 0.5);
        nucleus.push_back({0.42 * std::cos(a), 0.42 * std::sin(a), 0.30});
      }
    } else if (c.cls == 1) {
      nucleus.push_back({0.1 * std::cos(th), 0.1 * std::sin(th), 0.80});
    } else {
      nucleus.push_back({0.15 * std::cos(th), 0.15 * std::sin(th), 0.62});
      notch.push_back({0.62 * std::cos(th), 0.62 * std::sin(th), 0.30});
    }
    const double ex = 1.0 + 0.12 * u01(rng), eth = 2 * M_PI * u01(rng);  // slight ellipticity
    const int64_t x0 = std::max<int64_t>(0, int64_t((c.x - c.r * ex - 1) * ss)), x1 = std::min<int64_t>(Ws, int64_t((c.x + c.r * ex + 2) * ss));
    const int64_t y0 = std::max<int64_t>(0, int64_t((c.y - c.r * ex - 1) * ss)), y1 = std::min<int64_t>(Hs, int64_t((c.y + c.r * ex + 2) * ss));
    for (int64_t yy = y0; yy < y1; ++yy)
      for (int64_t xx = x0; xx < x1; ++xx) {
        const double fx = (double(xx) + 0.5) / ss - 0.5 - c.x, fy = (double(yy) + 0.5) / ss - 0.5 - c.y;
        const double ux = (fx * std::cos(eth) + fy * std::sin(eth)) / ex, uy = -fx * std::sin(eth) + fy * std::cos(eth);
        const double rr = std::hypot(ux, uy) / c.r;
        if (rr > 1.0) continue;
        bool in_nuc = false;
        for (const auto& d : nucleus) in_nuc = in_nuc || std::hypot(ux / c.r - d.dx, uy / c.r - d.dy) <= d.r;
        for (const auto& d : notch) in_nuc = in_nuc && std::hypot(ux / c.r - d.dx, uy / c.r - d.dy) > d.r;
        // Thicker in the middle (a dome), so the phase falls off to the edge.
        const double dome = std::sqrt(std::max(0.0, 1.0 - rr * rr));
        const size_t q = size_t(yy * Ws + xx);
        absorb[q] = float(contrast * (in_nuc ? a_nuc : a_cyto) * (0.6 + 0.4 * dome));
        phase[q] = float(contrast * (in_nuc ? p_nuc : p_cyto) * dome);
      }
    // Texture: per-pixel modulation of the absorption inside the cell (granules, ground glass).
    std::normal_distribution<double> g(0.0, 1.0);
    for (int64_t y = std::max<int64_t>(0, int64_t(c.y - c.r)); y <= std::min<int64_t>(H - 1, int64_t(c.y + c.r + 1)); ++y)
      for (int64_t x = std::max<int64_t>(0, int64_t(c.x - c.r)); x <= std::min<int64_t>(W - 1, int64_t(c.x + c.r + 1)); ++x)
        if (std::hypot(double(x) - c.x, double(y) - c.y) <= c.r * 0.95)
          absorb_px[size_t(y * W + x)] += float(contrast * texture * g(rng) * 0.5);
    out.points.push_back(Point{float(c.x), float(c.y), int32_t(c.cls), 1.0f});
  }
  auto A = torch::from_blob(absorb.data(), {1, 1, Hs, Ws}, torch::kFloat32);
  auto P = torch::from_blob(phase.data(), {1, 1, Hs, Ws}, torch::kFloat32);
  A = torch::avg_pool2d(A, ss)[0][0] + torch::from_blob(absorb_px.data(), {H, W}, torch::kFloat32);
  P = torch::avg_pool2d(P, ss)[0][0];
  auto amp = (1.0 - A.clamp(0.0, 0.95));
  out.object = torch::polar(amp, P).to(torch::kComplexFloat);
  auto field = apply_T_inverse(out.object, optics);
  auto intensity = field.abs().pow(2);
  // Illumination: a linear gradient of +-5 % in a random direction; read noise.
  const double gth = 2 * M_PI * u01(rng), gamp = 0.05 * u01(rng);
  auto yy = torch::linspace(-1, 1, H).view({H, 1}), xx = torch::linspace(-1, 1, W).view({1, W});
  auto illum = 1.0 + gamp * (std::cos(gth) * xx + std::sin(gth) * yy);
  std::vector<float> nz(size_t(H * W));
  std::normal_distribution<double> g(0.0, noise);
  for (auto& v : nz) v = float(g(rng));
  out.hologram = (intensity * illum + torch::from_blob(nz.data(), {H, W}, torch::kFloat32)).clamp_min(0.0).contiguous();
  return out;
}

Options synth_options() {
  return {Opt::choice("method", "llp", {"llp"}).folded(),
          Opt::choice("kind", "wbc", {"wbc"}).help("white-blood-cell holograms (lensless, paper 002)"),
          Opt::path("out").help("new dataset folder (written whole or not at all)").needed(),
          Opt::boolean("overwrite", false).help("replace out when it is a dataset this tool wrote"),
          Opt::int_list("donors", {200, 100, 200}).range(0, 100000).help("donors in [train, val, test] (the paper: 200/100/200)"),
          Opt::integer("images_per_donor", 2).range(1, 1000).help("images of each donor"),
          Opt::integer("width", 128).range(32, 4096).help("image width (pixels of 1.837 um)"),
          Opt::integer("height", 128).range(32, 4096).help("image height"),
          Opt::integer("min_cells", 6).range(0, 10000).help("fewest cells in an image"),
          Opt::integer("max_cells", 20).range(0, 10000).help("most cells in an image"),
          Opt::number("label_noise", 0.02).range(0.0, 1.0).help("s.d. of the noise added to each donor's proportions (per class)"),
          Opt::number("noise", 0.01).range(0.0, 1.0).help("s.d. of the sensor's read noise (background intensity 1)"),
          Opt::number("z_um", 1650.0).range(-1e6, 1e6).help("focal depth (um)").folded(),
          Opt::number("wavelength_um", 0.340).range(0.01, 100.0).help("wavelength (um)").folded(),
          Opt::number("pixel_um", 1.837).range(0.01, 1000.0).help("pixel size (um)").folded(),
          Opt::integer("seed", 0).range(0, INT64_MAX).help("seed of everything drawn"),
          Opt::integer("threads", 0).range(0, kMaxThreads).help("CPU threads (0 = one per core)").folded()};
}

nlohmann::json synthesize(const nlohmann::json& req0, const Progress& progress) {
  const auto req = resolve_options("llp synthesize", synth_options(), req0);
  const std::string final_out = req["out"];
  const auto donors = req["donors"].get<std::vector<int64_t>>();
  CC_CHECK(donors.size() == 3, CELLCOUNT_ERR_INVALID_ARGUMENT, "llp synthesize: \"donors\" must be [train, val, test]");
  const int64_t per = req["images_per_donor"], W = req["width"], H = req["height"];
  const int64_t cmin = req["min_cells"], cmax = req["max_cells"];
  CC_CHECK(cmin <= cmax, CELLCOUNT_ERR_INVALID_ARGUMENT, "llp synthesize: min_cells must be <= max_cells");
  const double label_noise = req["label_noise"], noise = req["noise"];
  Optics optics;
  optics.z_um = req["z_um"];
  optics.wavelength_um = req["wavelength_um"];
  optics.pixel_um = req["pixel_um"];
  const uint64_t seed = req["seed"];
  StagedDir staged(final_out, req["overwrite"], "synthesis.json", "llp synthesize");
  const fs::path out = staged.path();
  fs::create_directories(out / "images");
  std::ofstream pts(out / "points.csv"), cnt(out / "counts.csv"), spl(out / "split.csv"), prp(out / "proportions.csv"),
      dnr(out / "donors.csv");
  pts << "image,x,y,class\n";
  cnt << "image,count\n";
  spl << "image,split\n";
  prp << "image,class,fraction\n";
  dnr << "image,donor\n";
  pts << std::setprecision(6);
  prp << std::fixed << std::setprecision(6);
  const char* split_names[3] = {"train", "val", "test"};
  const int64_t total = (donors[0] + donors[1] + donors[2]) * per;
  int64_t done = 0, cells_total = 0;
  std::vector<int64_t> class_total(3, 0);
  int64_t donor_id = 0;
  for (int s = 0; s < 3; ++s)
    for (int64_t d = 0; d < donors[size_t(s)]; ++d, ++donor_id) {
      std::mt19937_64 rng(seed * 1000003ULL + uint64_t(donor_id) * 7919ULL + 17);
      std::vector<double> p = {clamp_normal(rng, 0.62, 0.08, 0.40, 0.80), clamp_normal(rng, 0.30, 0.07, 0.15, 0.50),
                               clamp_normal(rng, 0.07, 0.025, 0.02, 0.14)};
      double sum = p[0] + p[1] + p[2];
      for (auto& v : p) v /= sum;
      std::vector<double> label = p;
      std::normal_distribution<double> g(0.0, label_noise);
      sum = 0;
      for (auto& v : label) sum += (v = std::max(0.001, v + (label_noise > 0 ? g(rng) : 0.0)));
      for (auto& v : label) v /= sum;
      for (int64_t i = 0; i < per; ++i) {
        progress.report(float(done) / float(std::max<int64_t>(1, total)), "rendering holograms");
        char name[64];
        std::snprintf(name, sizeof name, "images/donor%04lld_%02lld.png", (long long)donor_id, (long long)i);
        const int64_t n = cmin + int64_t(rng() % uint64_t(cmax - cmin + 1));
        const auto im = render_wbc(H, W, n, p, optics, noise, rng());
        // 16-bit PNG: intensity x 16384 (background about 16384; saturates at 4).
        auto px = (im.hologram * 16384.0).round().clamp(0, 65535).unsqueeze(0);
        io::write_image((out / name).string(), tensor_to_image(px), 16, false);
        for (const auto& q : im.points) {
          pts << name << "," << q.x << "," << q.y << "," << kWbcClasses[size_t(q.cls)] << "\n";
          ++class_total[size_t(q.cls)];
        }
        cells_total += int64_t(im.points.size());
        cnt << name << "," << im.points.size() << "\n";
        spl << name << "," << split_names[s] << "\n";
        dnr << name << ",donor" << donor_id << "\n";
        for (int k = 0; k < 3; ++k) prp << name << "," << kWbcClasses[size_t(k)] << "," << label[size_t(k)] << "\n";
        ++done;
      }
    }
  for (auto* f : {&pts, &cnt, &spl, &prp, &dnr}) {
    f->close();
    CC_CHECK(!f->fail(), CELLCOUNT_ERR_IO, "llp synthesize: cannot write the CSV files in '" + out.string() + "'");
  }
  nlohmann::json report{{"out", final_out}, {"images", done}, {"cells", cells_total},
                        {"class_cells", {{"granulocyte", class_total[0]}, {"lymphocyte", class_total[1]}, {"monocyte", class_total[2]}}},
                        {"donors", donors}, {"request", req}};
  staged.commit(report.dump(2));
  return report;
}

}  // namespace cellcount::llp
