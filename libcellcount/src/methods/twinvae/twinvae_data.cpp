#include "methods/twinvae/twinvae_data.h"

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "cellcount/cellcount.h"
#include "core/csv.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/image_tensor.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/staged_dir.h"
#include "io/image_file.h"
#include "methods/twinvae/twinvae_render.h"

namespace cellcount::twinvae {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

torch::Tensor to_network_input(const torch::Tensor& raw, double scale) {
  CC_CHECK(raw.dim() == 3, CELLCOUNT_ERR_INVALID_ARGUMENT, "twinvae: an image is [C,H,W]");
  const int64_t h = raw.size(1), w = raw.size(2);
  CC_CHECK(h >= kMinSide && w >= kMinSide, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "twinvae: the chamber image is " + std::to_string(w) + "x" + std::to_string(h) + "; the model needs at least " +
               std::to_string(kMinSide) + "x" + std::to_string(kMinSide) + " (every image is resized to 128x128)");
  auto x = raw.to(torch::kFloat32).mean(0, true).unsqueeze(0) * scale;  // [1,1,H,W]
  if (h != kSide || w != kSide) {
    // Choice: area average when shrinking (no aliasing from a large image), bilinear when enlarging.
    if (h >= kSide && w >= kSide)
      x = F::adaptive_avg_pool2d(x, F::AdaptiveAvgPool2dFuncOptions({kSide, kSide}));
    else
      x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{kSide, kSide}).mode(torch::kBilinear).align_corners(false));
  }
  return x[0];
}

torch::Tensor from_network_size(const torch::Tensor& img, int64_t h, int64_t w) {
  if (h == kSide && w == kSide) return img;
  return F::interpolate(img.unsqueeze(0), F::InterpolateFuncOptions()
                                              .size(std::vector<int64_t>{h, w})
                                              .mode(torch::kBilinear)
                                              .align_corners(false))[0];
}

size_t Frames::labelled() const {
  size_t n = 0;
  for (float l : labels) n += l != 0;
  return n;
}

namespace {

struct FrameRow {
  std::string image, domain, split;
  float label = 0;
};

void check_name(const std::string& dir, const std::string& name, const std::string& file, size_t line) {
  const fs::path p(name);
  bool bad = name.empty() || p.is_absolute();
  for (const auto& part : p) bad = bad || part == "..";
  CC_CHECK(!bad, CELLCOUNT_ERR_DATASET, "'" + dir + "/" + file + "' line " + std::to_string(line) +
                                            ": image '" + echo(name) + "' must be a path inside the dataset folder");
}

std::vector<FrameRow> folder_rows(const std::string& dir, const std::string& default_domain) {
  std::vector<FrameRow> rows;
  const auto ds = load_dataset(dir);
  std::map<std::string, float> label;
  for (const auto& s : ds.samples)
    if (s.count || s.has_points) label[s.image] = float(s.count ? *s.count : double(s.points.size()));
  const auto frames = (fs::path(dir) / "frames.csv").string();
  if (!fs::exists(frames)) {
    for (const auto& s : ds.samples)
      rows.push_back({s.image, default_domain, s.split.empty() ? "train" : s.split, label[s.image]});
    return rows;
  }
  const auto t = read_csv(frames);
  const int ci = t.column("image"), cd = t.column("domain"), cs = t.column("split");
  CC_CHECK(ci >= 0 && cd >= 0 && cs >= 0, CELLCOUNT_ERR_DATASET, "'" + frames + "' needs the columns image,domain,split");
  for (size_t r = 0; r < t.rows.size(); ++r) {
    const auto& row = t.rows[r];
    check_name(dir, row[ci], "frames.csv", t.line_of_row(r));
    CC_CHECK(row[cd] == "synthetic" || row[cd] == "natural", CELLCOUNT_ERR_DATASET,
             "'" + frames + "' line " + std::to_string(t.line_of_row(r)) + ": domain must be synthetic or natural");
    CC_CHECK(row[cs] == "train" || row[cs] == "val" || row[cs] == "test", CELLCOUNT_ERR_DATASET,
             "'" + frames + "' line " + std::to_string(t.line_of_row(r)) + ": split must be train, val or test");
    auto it = label.find(row[ci]);
    rows.push_back({row[ci], row[cd], row[cs], it == label.end() ? 0.0f : it->second});
  }
  return rows;
}

// Appends the frames of `rows` (a second folder's frames follow the first folder's).
void read_into(Frames& f, const std::string& dir, const std::vector<const FrameRow*>& rows, const Progress& progress) {
  auto images = torch::zeros({int64_t(rows.size()), kSide, kSide}, torch::kUInt8);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i % 64 == 0) progress.report(float(i) / float(std::max<size_t>(1, rows.size())), "reading frames");
    const auto path = (fs::path(dir) / rows[i]->image).string();
    auto x = to_network_input(image_to_tensor(io::read_image(path)), 1.0 / 255.0);
    images[int64_t(i)] = (x[0] * 255.0).round().clamp(0, 255).to(torch::kUInt8);
    f.labels.push_back(rows[i]->label);
    f.names.push_back(rows[i]->image);
  }
  f.images = f.images.defined() ? torch::cat({f.images, images}) : images;
}

}  // namespace

TwinData load_twin_data(const std::string& dataset, const std::string& synthetic_dataset, const std::string& domain,
                        const Progress& progress) {
  TwinData d;
  struct Source { std::string dir; std::vector<FrameRow> rows; };
  std::vector<Source> sources{{dataset, folder_rows(dataset, domain)}};
  if (!synthetic_dataset.empty()) {
    auto rows = folder_rows(synthetic_dataset, "synthetic");
    rows.erase(std::remove_if(rows.begin(), rows.end(), [](const FrameRow& r) { return r.domain != "synthetic"; }), rows.end());
    sources.push_back({synthetic_dataset, rows});
  }
  int zero_natural = 0;
  for (size_t si = 0; si < sources.size(); ++si) {
    const auto& src = sources[si];
    std::map<std::string, std::vector<const FrameRow*>> groups;
    for (const auto& r : src.rows) {
      groups[r.domain + "/" + r.split].push_back(&r);
      zero_natural += r.domain == "natural" && r.split == "train" && r.label == 0;
    }
    auto prog = progress.sub(float(si) / sources.size(), float(si + 1) / sources.size());
    read_into(d.syn_train, src.dir, groups["synthetic/train"], prog);
    read_into(d.syn_val, src.dir, groups["synthetic/val"], prog);
    read_into(d.nat_train, src.dir, groups["natural/train"], prog);
    read_into(d.nat_val, src.dir, groups["natural/val"], prog);
    read_into(d.nat_test, src.dir, groups["natural/test"], prog);
  }
  (void)zero_natural;
  d.split_source = fs::exists(fs::path(dataset) / "frames.csv") ? dataset + "/frames.csv" : dataset + "/split.csv";
  return d;
}

torch::Tensor clean(const torch::Tensor& images) { return images.to(torch::kFloat32).div(255.0).unsqueeze(1); }

torch::Tensor augment(const torch::Tensor& images, double noise, std::mt19937_64& rng, at::Generator& gen, double light) {
  const int64_t b = images.size(0);
  // RandomResizedCrop(128, scale=(0.9, 0.9), ratio=(1, 1)): side round(sqrt(0.9 * 128^2)) = 121.
  const int64_t side = int64_t(std::lround(std::sqrt(0.9 * double(kSide * kSide))));
  std::vector<torch::Tensor> out;
  out.reserve(size_t(b));
  auto x = clean(images);
  // The light ramp's profile across the frame (only with `light`), made once for the batch.
  const auto ramp = light > 0 ? torch::linspace(-1, 1, kSide, x.options()) : torch::Tensor();
  for (int64_t i = 0; i < b; ++i) {
    auto t = x[i];  // [1,128,128]
    if (rng() & 1) t = t.rot90(1, {1, 2});  // TF.rotate by 90 (counter-clockwise)
    if (rng() & 1) t = t.flip({2});         // horizontal
    if (rng() & 1) t = t.flip({1});         // vertical
    const int64_t top = int64_t(uniform_index(rng(), uint64_t(kSide - side + 1)));
    const int64_t left = int64_t(uniform_index(rng(), uint64_t(kSide - side + 1)));
    auto c = t.slice(1, top, top + side).slice(2, left, left + side).unsqueeze(0);
    auto r = F::interpolate(c, F::InterpolateFuncOptions()
                                   .size(std::vector<int64_t>{kSide, kSide})
                                   .mode(torch::kBilinear)
                                   .align_corners(false))[0];
    if (light > 0) {
      auto u = [&](double a, double b) { return a + (b - a) * uniform01(rng()); };
      const double gain = u(1 - light, 1 + light), offset = u(-light / 2, light / 2), tilt = u(0, light / 2);
      const double ang = u(0, 2 * 3.14159265358979323846);
      auto field = 1 + tilt * (std::cos(ang) * ramp.view({1, 1, kSide}) + std::sin(ang) * ramp.view({1, kSide, 1}));
      r = r * (gain * field) + offset;
    }
    out.push_back(r);
  }
  auto y = torch::stack(out);
  if (noise > 0) y = y + noise * at::randn(y.sizes(), gen, y.options());  // no clamp, as upstream
  return y;
}

Options synth_options() {
  return {
      Opt::string("method", "twinvae").folded(),
      Opt::path("out").help("new dataset folder (written whole or not at all)").needed(),
      Opt::boolean("overwrite", false).help("replace out when it is a dataset this tool wrote"),
      Opt::path("assets").help("folder with mean128_bf.png / mean128_pc.png (the authors' mean backgrounds; "
                               "research assets, read at generation time, never copied)").needed(),
      Opt::choice("modality", "bf", {"bf", "pc"}).help("bright-field or phase-contrast"),
      Opt::choice("domains", "both", {"both", "synthetic", "natural"}).help("which renderers to write"),
      Opt::number("ratio", 1.0).range(0.0, 100.0).help("synthetic training frames = round(paper's 2469 (BF) / 3152 (PC) x ratio)"),
      Opt::integer("synthetic_train", -1).range(-1, 1000000).help("synthetic training frames (-1 = from ratio)"),
      Opt::integer("synthetic_val", 200).range(0, 1000000).help("synthetic validation frames (labelled)"),
      Opt::integer("synthetic_test", 1000).range(0, 1000000).help("synthetic test frames (the paper's 1000)"),
      Opt::integer("natural_train", -1).range(-1, 1000000).help("natural training frames, labelled ones and validation included (-1 = the paper's 2469 BF / 3182 PC)"),
      Opt::integer("natural_test", -1).range(-1, 1000000).help("natural test frames, all labelled (-1 = the paper's 514 BF / 794 PC)"),
      Opt::number("labelled_fraction", 0.07).range(0.0, 1.0).help("fraction of the natural training frames that are labelled (the paper: about 7 %)"),
      Opt::number("val_fraction", 0.2).range(0.0, 1.0).help("share of the labelled natural frames set aside as validation (checkpoint selection)"),
      Opt::integer("seed", 0).range(0, INT64_MAX).help("seed of both renderers and of which frames are labelled"),
      Opt::integer("threads", 0).range(0, kMaxThreads).help("CPU threads (0 = one per core)").folded(),
  };
}

namespace {
std::vector<float> read_background(const std::string& assets, Modality m) {
  const auto path = (fs::path(assets) / (std::string("mean128_") + modality_name(m) + ".png")).string();
  CC_CHECK(fs::exists(path), CELLCOUNT_ERR_IO, "twinvae synthesize: no '" + path + "' (the assets folder holds the authors' mean backgrounds)");
  const auto img = io::read_image(path);
  CC_CHECK(img.width == kSide && img.height == kSide, CELLCOUNT_ERR_DATASET, "twinvae synthesize: '" + path + "' is not 128x128");
  std::vector<float> g(size_t(kSide * kSide));
  for (int64_t y = 0; y < kSide; ++y)
    for (int64_t x = 0; x < kSide; ++x) g[size_t(y * kSide + x)] = img.at(y, x, 0);  // equal channels: grey = R
  return g;
}
}  // namespace

nlohmann::json synthesize(const nlohmann::json& req0, const Progress& progress) {
  const nlohmann::json req = resolve_options("twinvae synthesize", synth_options(), req0);
  const Modality m = parse_modality(req["modality"]);
  const auto bg = read_background(req["assets"], m);
  const bool bf = m == Modality::bf;
  const std::string domains = req["domains"];
  const double ratio = req["ratio"];
  const int64_t syn_train = req["synthetic_train"].get<int64_t>() >= 0 ? req["synthetic_train"].get<int64_t>()
                                                                        : int64_t(std::llround((bf ? 2469 : 3152) * ratio));
  const int64_t syn_val = req["synthetic_val"], syn_test = req["synthetic_test"];
  const int64_t nat_train = req["natural_train"].get<int64_t>() >= 0 ? req["natural_train"].get<int64_t>() : (bf ? 2469 : 3182);
  const int64_t nat_test = req["natural_test"].get<int64_t>() >= 0 ? req["natural_test"].get<int64_t>() : (bf ? 514 : 794);
  const uint64_t seed = req["seed"];

  StagedDir staged(req["out"], req["overwrite"], "synthesis.json", "twinvae synthesize");
  const fs::path out(staged.path());
  fs::create_directories(out / "images");
  std::ofstream frames(out / "frames.csv"), counts(out / "counts.csv"), split(out / "split.csv");
  frames << "image,domain,split\n";
  counts << "image,count\n";
  split << "image,split\n";
  nlohmann::json written = nlohmann::json::object();
  // Every (domain, split) has its own generator derived from the seed, so changing one size leaves the others'
  // frames as they were.
  struct Part { std::string domain, split; int64_t n; uint64_t stream; };
  std::vector<Part> parts;
  if (domains != "natural")
    parts.insert(parts.end(), {{"synthetic", "train", syn_train, 1}, {"synthetic", "val", syn_val, 2}, {"synthetic", "test", syn_test, 3}});
  if (domains != "synthetic")
    parts.insert(parts.end(), {{"natural", "train", nat_train, 4}, {"natural", "test", nat_test, 5}});
  int64_t total = 0, done = 0;
  for (const auto& p : parts) total += p.n;
  for (const auto& p : parts) {
    std::mt19937_64 rng(seed * 1000003ULL + p.stream);
    // Which natural training frames are labelled (and which of those are validation): a seeded shuffle.
    std::vector<int> role(static_cast<size_t>(p.n), 0);  // 0 unlabelled, 1 labelled train, 2 labelled val
    if (p.domain == "natural" && p.split == "train") {
      const int64_t n_lab = std::llround(double(req["labelled_fraction"]) * double(p.n));
      const int64_t n_val = std::llround(double(req["val_fraction"]) * double(n_lab));
      std::vector<int64_t> order(static_cast<size_t>(p.n));
      for (int64_t i = 0; i < p.n; ++i) order[size_t(i)] = i;
      std::mt19937_64 pick(seed * 1000003ULL + 99);
      for (int64_t i = p.n - 1; i > 0; --i) std::swap(order[size_t(i)], order[uniform_index(pick(), uint64_t(i + 1))]);
      for (int64_t i = 0; i < n_lab; ++i) role[size_t(order[size_t(i)])] = i < n_val ? 2 : 1;
    } else {
      std::fill(role.begin(), role.end(), 1);
    }
    int64_t labelled = 0, val = 0;
    for (int64_t i = 0; i < p.n; ++i, ++done) {
      if (i % 32 == 0) progress.report(float(done) / float(std::max<int64_t>(1, total)), "rendering " + p.domain + " " + p.split);
      const Frame f = p.domain == "synthetic" ? render_synthetic(m, bg, rng) : render_natural(m, bg, rng);
      char name[96];
      std::snprintf(name, sizeof name, "images/%s_%s_%05lld.png", p.domain == "synthetic" ? "syn" : "nat", p.split.c_str(),
                    static_cast<long long>(i));
      Image img;
      img.width = img.height = kSide;
      img.channels = 1;
      img.data = f.pixels;
      io::write_image((out / name).string(), img, 8, false);
      const int r = role[size_t(i)];
      const std::string sp = r == 2 ? "val" : p.split;
      frames << name << "," << p.domain << "," << sp << "\n";
      if (r) {
        counts << name << "," << f.count << "\n";
        split << name << "," << sp << "\n";
        labelled += 1;
        val += r == 2;
      }
    }
    written[p.domain + "_" + p.split] = {{"frames", p.n}, {"labelled", labelled}, {"of_which_val", val}};
  }
  for (auto* f : {&frames, &counts, &split}) f->close();
  CC_CHECK(frames.good() && counts.good() && split.good(), CELLCOUNT_ERR_IO, "twinvae synthesize: error writing the CSV files");
  nlohmann::json record = req;
  record.erase("overwrite");
  staged.commit(nlohmann::json{{"request", record},
                               {"library_version", CELLCOUNT_VERSION_STRING},
                               {"frames", written},
                               {"note", "natural frames are our renderer's, not microscope images"}}
                    .dump(2));
  return {{"out", req["out"]}, {"modality", modality_name(m)}, {"frames", written}, {"seed", seed}};
}

}  // namespace cellcount::twinvae
