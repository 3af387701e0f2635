// `cellcount`: the command-line tool for batch scripts. Everything numeric goes through the C ABI
// (the same calls Fiji and napari make); this file only parses arguments, reads/writes files and prints.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cellcount/cellcount.h"
#include "core/csv.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/synth.h"
#include "io/image_file.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace cellcount;

namespace {

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

const char* kUsage = R"(cellcount — deep-learning cell counting

usage:
  cellcount info
  cellcount count --model DIR [options] INPUT...      count images, folders of images, TIFF stacks
      --device auto|cpu|cuda[:N]   --precision fp32|bf16|fp16   --threads N
      --tile N --overlap N --threshold F --min-distance F
      --exemplars boxes.csv        (image,x0,y0,x1,y1; for models that count like exemplars)
      --truth DATASET_DIR          (counts.csv/points.csv; a folder INPUT with them is used as truth too)
      --csv FILE                   write one row per image/slice (never overwrites without --overwrite)
      --overlays DIR               write <image>_overlay.png with the points
      --density DIR                write <image>_density.tif (32-bit)
      --overwrite
  cellcount train --method M --dataset DIR --out DIR [--FIELD VALUE ...] [--request FILE.json]
  cellcount eval  --model DIR --dataset DIR [--split test] [--FIELD VALUE ...] [--report FILE.json]
  cellcount synth --out DIR [--method M] [--kind cells] [--n N] [--FIELD VALUE ...]
  cellcount bench --model DIR [--size 1024] [--repeat 3] [--device ...] [--precision ...] [--threads N]
                  [--mosaic N IMAGES...]   also: count an N x N mosaic whole and part by part
  cellcount defaults --method M --kind train|evaluate|synthesize
  cellcount split --dataset DIR --out FILE.csv [--ratios 10,9,1] [--seed 0]

Request fields of train/eval/synth: `cellcount defaults --method M --kind K`. Ctrl-C cancels cleanly.
)";

struct Args {
  std::string command;
  std::map<std::string, std::string> opts;  // --key value (dashes in key become underscores)
  std::vector<std::string> positional;
  bool has(const std::string& k) const { return opts.count(k) > 0; }
  std::string get(const std::string& k, const std::string& d = "") const {
    auto it = opts.find(k);
    return it == opts.end() ? d : it->second;
  }
};

const std::vector<std::string> kFlags = {"overwrite", "help"};

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc >= 2) a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      std::string key = s.substr(2);
      std::replace(key.begin(), key.end(), '-', '_');
      std::string value;
      auto eq = key.find('=');
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      } else if (std::find(kFlags.begin(), kFlags.end(), key) != kFlags.end()) {
        value = "true";
      } else {
        if (i + 1 >= argc) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "option --" + key + " needs a value");
        value = argv[++i];
      }
      a.opts[key] = value;
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

// Status of a C ABI call -> exception with the library's message.
void check(cellcount_status s) {
  if (s != CELLCOUNT_OK) throw Error(s, cellcount_last_error());
}

int32_t print_progress(float f, const char* stage, void*) {
  static auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  auto now = std::chrono::steady_clock::now();
  if (now - last > std::chrono::milliseconds(500) || f >= 1.0f) {
    std::fprintf(stderr, "\r  %5.1f%%  %-40s", 100.0 * f, stage);
    if (f >= 1.0f) std::fprintf(stderr, "\n");
    std::fflush(stderr);
    last = now;
  }
  return g_interrupted ? 1 : 0;
}

// JSON value from a command-line string: numbers, booleans, arrays/objects as JSON, else a string.
json parse_value(const std::string& v) {
  if (v.empty()) return v;
  try {
    auto j = json::parse(v);
    if (j.is_number() || j.is_boolean() || j.is_array() || j.is_object() || j.is_null()) return j;
  } catch (...) {
  }
  return v;
}

json request_from(const Args& a, const std::vector<std::string>& skip = {}) {
  json r = json::object();
  if (a.has("request")) {
    std::ifstream f(a.get("request"));
    if (!f) throw Error(CELLCOUNT_ERR_IO, "cannot read request file '" + a.get("request") + "'");
    r = json::parse(f);
  }
  for (const auto& [k, v] : a.opts)
    if (k != "request" && std::find(skip.begin(), skip.end(), k) == skip.end()) r[k] = parse_value(v);
  return r;
}

std::string take_string(char* s) {
  std::string r = s ? s : "";
  cellcount_string_free(s);
  return r;
}

int cmd_info() {
  char* j = nullptr;
  check(cellcount_library_info(&j));
  auto info = json::parse(take_string(j));
  std::cout << "cellcount " << info["version"].get<std::string>() << " (ABI " << info["abi"] << ")\n";
  const auto& d = info["devices"];
  std::cout << "LibTorch " << d["libtorch"].get<std::string>() << ", CUDA "
            << (d["cuda_available"].get<bool>() ? "yes (" + std::to_string(d["cuda_devices"].get<int>()) + " device(s))"
                                                : std::string("no"))
            << ", threads " << d["threads"] << " of " << d["cores"] << " cores\n";
  std::cout << "image I/O:";
  for (const auto& b : info["io"]) std::cout << " " << b.get<std::string>();
  std::cout << "\nmethods:\n";
  for (const auto& m : info["methods"])
    std::cout << "  " << m["id"].get<std::string>() << "  " << m["display_name"].get<std::string>()
              << (m["fixture"].get<bool>() ? "  [test fixture]" : "") << (m["can_train"].get<bool>() ? "" : "  [no training]")
              << "\n";
  std::cout << info.dump(2) << "\n";
  return 0;
}

struct ModelHandle {
  cellcount_model* m = nullptr;
  ~ModelHandle() { cellcount_model_free(m); }
};
struct ResultHandle {
  cellcount_result* r = nullptr;
  ~ResultHandle() { cellcount_result_free(r); }
};

void apply_threads(const Args& a) {
  check(cellcount_set_num_threads(a.has("threads") ? std::stoi(a.get("threads")) : 0));
}

cellcount_predict_params params_from(const Args& a, std::string& device, std::string& precision) {
  auto p = cellcount_predict_default_params();
  device = a.get("device", p.device);
  precision = a.get("precision", p.precision);
  p.device = device.c_str();
  p.precision = precision.c_str();
  if (a.has("tile")) p.tile_size = std::stoi(a.get("tile"));
  if (a.has("overlap")) p.tile_overlap = std::stoi(a.get("overlap"));
  if (a.has("threshold")) p.peak_threshold = std::stof(a.get("threshold"));
  if (a.has("min_distance")) p.peak_min_distance = std::stof(a.get("min_distance"));
  p.progress = print_progress;
  return p;
}

// Ground truth and exemplars by image path relative to a dataset root, and by file name.
struct Truth {
  std::map<std::string, const Sample*> by_path, by_name;
  std::vector<Dataset> sets;
  void add(const std::string& dir) {
    sets.push_back(load_dataset(dir));
  }
  void index() {
    for (const auto& ds : sets)
      for (const auto& s : ds.samples) {
        by_path[fs::weakly_canonical(fs::path(ds.root) / s.image).string()] = &s;
        by_name[fs::path(s.image).filename().string()] = &s;
      }
  }
  const Sample* find(const std::string& path) const {
    auto it = by_path.find(fs::weakly_canonical(path).string());
    if (it != by_path.end()) return it->second;
    auto jt = by_name.find(fs::path(path).filename().string());
    return jt == by_name.end() ? nullptr : jt->second;
  }
};

bool is_dataset_dir(const fs::path& p) {
  return fs::exists(p / "counts.csv") || fs::exists(p / "points.csv") || fs::exists(p / "boxes.csv");
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs, Truth& truth) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    if (fs::is_directory(in)) {
      if (is_dataset_dir(in)) truth.add(in);
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file() && io::is_image_file(e.path().string())) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      if (found.empty()) throw Error(CELLCOUNT_ERR_IO, "folder '" + in + "' holds no image files");
      files.insert(files.end(), found.begin(), found.end());
    } else {
      if (!fs::exists(in)) throw Error(CELLCOUNT_ERR_IO, "input '" + in + "' does not exist");
      files.push_back(in);
    }
  }
  return files;
}

std::string fmt(double v, int digits = 1) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

int cmd_count(const Args& a) {
  if (!a.has("model")) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "count: --model DIR is required");
  if (a.positional.empty()) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "count: give at least one image, stack or folder");
  apply_threads(a);
  const bool overwrite = a.get("overwrite") == "true";
  ModelHandle mh;
  check(cellcount_model_load(a.get("model").c_str(), &mh.m));
  const auto info = json::parse(cellcount_model_info(mh.m));
  const bool needs_exemplars = info.value("needs_exemplars", false);
  if (info.value("fixture", false))
    std::cerr << "note: '" << a.get("model") << "' is the test fixture model, not a counting model\n";
  Truth truth;
  if (a.has("truth")) truth.add(a.get("truth"));
  const auto files = expand_inputs(a.positional, truth);
  truth.index();
  std::map<std::string, std::vector<Box>> exemplar_boxes;
  if (a.has("exemplars")) {
    auto t = read_csv(a.get("exemplars"));
    const int ci = t.column("image"), c0 = t.column("x0"), c1 = t.column("y0"), c2 = t.column("x1"), c3 = t.column("y1");
    if (ci < 0 || c0 < 0 || c1 < 0 || c2 < 0 || c3 < 0)
      throw Error(CELLCOUNT_ERR_DATASET, a.get("exemplars") + ": expected columns image,x0,y0,x1,y1");
    for (const auto& r : t.rows)
      exemplar_boxes[fs::path(r[ci]).filename().string()].push_back(
          Box{std::stof(r[c0]), std::stof(r[c1]), std::stof(r[c2]), std::stof(r[c3])});
  }
  for (const char* k : {"overlays", "density"})
    if (a.has(k)) fs::create_directories(a.get(k));
  std::ofstream csv;
  if (a.has("csv")) {
    if (fs::exists(a.get("csv")) && !overwrite)
      throw Error(CELLCOUNT_ERR_IO, "'" + a.get("csv") + "' exists; pass --overwrite to replace it");
    csv.open(a.get("csv"));
    if (!csv) throw Error(CELLCOUNT_ERR_IO, "cannot write '" + a.get("csv") + "'");
    csv << "image,slice,count,truth,abs_error,points,model,method,device,precision,seconds\n";
  }
  std::string device, precision;
  auto params = params_from(a, device, precision);
  std::printf("%-44s %5s %9s %7s %7s %6s %s\n", "image", "slice", "count", "truth", "error", "points", "device");
  double abs_sum = 0;
  size_t n_truth = 0, n_done = 0;
  for (const auto& file : files) {
    const auto stack = io::read_image_stack(file);
    const Sample* gt = truth.find(file);
    for (size_t z = 0; z < stack.size(); ++z) {
      const Image& im = stack[z];
      cellcount_image_view v{im.data.data(), im.width, im.height, im.channels, 0, CELLCOUNT_DTYPE_F32, 0};
      std::vector<cellcount_box> boxes;
      std::vector<Box> src;
      if (needs_exemplars) {
        auto it = exemplar_boxes.find(fs::path(file).filename().string());
        if (it != exemplar_boxes.end()) src = it->second;
        else if (gt) src = gt->boxes;
      }
      for (const auto& b : src) boxes.push_back(cellcount_box{b.x0, b.y0, b.x1, b.y1});
      ResultHandle rh;
      check(cellcount_predict(mh.m, &v, boxes.empty() ? nullptr : boxes.data(), boxes.size(), nullptr, &params, &rh.r));
      const double count = cellcount_result_count(rh.r);
      const size_t np = cellcount_result_n_points(rh.r);
      const bool has_truth = gt && gt->count && stack.size() == 1;
      const double t = has_truth ? *gt->count : NAN;
      if (has_truth) {
        abs_sum += std::abs(count - t);
        ++n_truth;
      }
      const std::string name = fs::path(file).filename().string();
      std::printf("%-44s %5zu %9.1f %7s %7s %6zu %s\n", name.substr(0, 44).c_str(), z + 1, count,
                  has_truth ? fmt(t, 0).c_str() : "-", has_truth ? fmt(count - t).c_str() : "-", np,
                  cellcount_result_device(rh.r));
      if (csv.is_open())
        csv << csv_escape(file) << "," << z + 1 << "," << fmt(count, 3) << "," << (has_truth ? fmt(t, 0) : "") << ","
            << (has_truth ? fmt(std::abs(count - t), 3) : "") << "," << np << "," << csv_escape(a.get("model")) << ","
            << info.value("method", "") << "," << cellcount_result_device(rh.r) << ","
            << cellcount_result_precision(rh.r) << "," << fmt(cellcount_result_seconds(rh.r), 3) << "\n";
      const std::string stem = fs::path(file).stem().string() + (stack.size() > 1 ? "_z" + std::to_string(z + 1) : "");
      if (a.has("overlays")) {
        std::vector<float> xy(2 * np);
        std::vector<int32_t> cls(np);
        if (np) check(cellcount_result_points(rh.r, xy.data(), cls.data(), nullptr, np));
        std::vector<Point> pts(np);
        for (size_t i = 0; i < np; ++i) pts[i] = Point{xy[2 * i], xy[2 * i + 1], cls[i], 1.0f};
        io::write_overlay((fs::path(a.get("overlays")) / (stem + "_overlay.png")).string(), im, pts, 3, overwrite);
      }
      if (a.has("density")) {
        int64_t w = 0, h = 0, c = 0;
        check(cellcount_result_image_size(rh.r, CELLCOUNT_IMAGE_DENSITY, &w, &h, &c));
        if (w > 0) {
          Image d;
          d.width = w;
          d.height = h;
          d.channels = c;
          d.data.resize(size_t(w * h * c));
          check(cellcount_result_image(rh.r, CELLCOUNT_IMAGE_DENSITY, d.data.data(), d.data.size()));
          io::write_image((fs::path(a.get("density")) / (stem + "_density.tif")).string(), d, 32, overwrite);
        }
      }
      ++n_done;
    }
  }
  std::printf("%zu image(s)", n_done);
  if (n_truth) std::printf(", MAE %.2f over %zu with ground truth", abs_sum / n_truth, n_truth);
  std::printf("\n");
  return 0;
}

void print_report(const json& r, const Args& a) {
  if (a.has("report")) {
    const std::string p = a.get("report");
    if (fs::exists(p) && a.get("overwrite") != "true")
      throw Error(CELLCOUNT_ERR_IO, "'" + p + "' exists; pass --overwrite to replace it");
    std::ofstream(p) << r.dump(2) << "\n";
  }
  json brief = r;
  if (brief.contains("per_image") && !a.has("verbose")) brief.erase("per_image");
  if (brief.contains("history") && brief["history"].size() > 5) brief["history"] = "(" + std::to_string(r["history"].size()) + " epochs)";
  std::cout << brief.dump(2) << "\n";
}

using RequestCall = cellcount_status (*)(const char*, cellcount_progress_fn, void*, char**);

std::string g_command_line;

int cmd_request(const Args& a, RequestCall call, const std::vector<std::string>& skip) {
  apply_threads(a);
  json req = request_from(a, skip);
  if (call == cellcount_train && !req.contains("command")) {
    // Provenance: the exact command, when the method records one.
    char* d = nullptr;
    if (req.contains("method") && req["method"].is_string() &&
        cellcount_request_defaults(req["method"].get<std::string>().c_str(), "train", &d) == CELLCOUNT_OK &&
        json::parse(take_string(d)).contains("command"))
      req["command"] = g_command_line;
  }
  char* out = nullptr;
  check(call(req.dump().c_str(), print_progress, nullptr, &out));
  print_report(json::parse(take_string(out)), a);
  return 0;
}

long peak_rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

int cmd_bench(const Args& a) {
  if (!a.has("model")) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench: --model DIR is required");
  apply_threads(a);
  const int64_t size = a.has("size") ? std::stoll(a.get("size")) : 1024;
  const int repeat = a.has("repeat") ? std::stoi(a.get("repeat")) : 3;
  ModelHandle mh;
  check(cellcount_model_load(a.get("model").c_str(), &mh.m));
  const auto info = json::parse(cellcount_model_info(mh.m));
  SynthCellsParams sp;
  sp.width = sp.height = size;
  sp.min_cells = sp.max_cells = int(size * size / 900);
  auto s = render_cells(sp, 1);
  const int64_t channels = info["input"].value("channels", 1);
  std::vector<float> px(size_t(size * size * channels));
  for (int64_t i = 0; i < size * size; ++i)
    for (int64_t c = 0; c < channels; ++c) px[size_t(i * channels + c)] = s.image.data[size_t(i)] * 255.0f;
  cellcount_image_view v{px.data(), size, size, channels, 0, CELLCOUNT_DTYPE_F32, 0};
  std::vector<cellcount_box> boxes;
  if (info.value("needs_exemplars", false)) {
    const int n_ex = a.has("exemplars") ? std::stoi(a.get("exemplars")) : 3;
    for (int i = 0; i < n_ex && i < int(s.points.size()); ++i) {
      const auto& p = s.points[size_t(i)];
      boxes.push_back(cellcount_box{p.x - 8, p.y - 8, p.x + 8, p.y + 8});
    }
  }
  std::string device, precision;
  auto params = params_from(a, device, precision);
  params.progress = nullptr;
  std::vector<double> ms;
  std::string used_device;
  for (int r = 0; r <= repeat; ++r) {  // r == 0 is the warm-up
    ResultHandle rh;
    const auto t0 = std::chrono::steady_clock::now();
    check(cellcount_predict(mh.m, &v, boxes.empty() ? nullptr : boxes.data(), boxes.size(), nullptr, &params, &rh.r));
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) ms.push_back(dt);
    used_device = cellcount_result_device(rh.r);
  }
  std::sort(ms.begin(), ms.end());
  json mosaic = nullptr;
  if (a.has("mosaic")) {
    // Tiling check on real images: an N x N mosaic of equal-size images is counted whole (tiled) and part by
    // part; the two totals should agree.
    const int n = std::stoi(a.get("mosaic"));
    Truth unused;
    auto files = expand_inputs(a.positional, unused);
    if (n < 2 || files.size() < size_t(n * n))
      throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench --mosaic N needs N >= 2 and N*N images as inputs");
    std::vector<Image> parts;
    for (int i = 0; i < n * n; ++i) parts.push_back(io::read_image(files[size_t(i)]));
    const int64_t w = parts[0].width, h = parts[0].height, c = parts[0].channels;
    Image big;
    big.width = w * n;
    big.height = h * n;
    big.channels = c;
    big.data.resize(size_t(big.width * big.height * c));
    double sum_parts = 0;
    for (int i = 0; i < n * n; ++i) {
      const auto& p = parts[size_t(i)];
      if (p.width != w || p.height != h || p.channels != c)
        throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench --mosaic: images differ in size or channels");
      const int64_t ox = (i % n) * w, oy = (i / n) * h;
      for (int64_t y = 0; y < h; ++y)
        std::copy(p.data.begin() + y * w * c, p.data.begin() + (y + 1) * w * c,
                  big.data.begin() + ((oy + y) * big.width + ox) * c);
      cellcount_image_view pv{p.data.data(), w, h, c, 0, CELLCOUNT_DTYPE_F32, 0};
      ResultHandle rh;
      check(cellcount_predict(mh.m, &pv, nullptr, 0, nullptr, &params, &rh.r));
      sum_parts += cellcount_result_count(rh.r);
    }
    cellcount_image_view bv{big.data.data(), big.width, big.height, c, 0, CELLCOUNT_DTYPE_F32, 0};
    ResultHandle rb;
    check(cellcount_predict(mh.m, &bv, nullptr, 0, nullptr, &params, &rb.r));
    const double whole = cellcount_result_count(rb.r);
    mosaic = {{"images", n * n}, {"size", {big.width, big.height}}, {"count_whole", whole}, {"sum_of_parts", sum_parts},
              {"relative_difference", std::abs(whole - sum_parts) / std::max(1e-9, sum_parts)}};
  }
  const double median = ms[ms.size() / 2], mpix = double(size * size) / 1e6;
  json r{{"model", a.get("model")},
         {"method", info.value("method", "")},
         {"size", size},
         {"device", used_device},
         {"precision", precision},
         {"threads", json::parse(take_string([] {
                                   char* j = nullptr;
                                   cellcount_library_info(&j);
                                   return j;
                                 }()))["devices"]["threads"]},
         {"exemplars", boxes.size()},
         {"repeats", repeat},
         {"ms_median", median},
         {"ms_per_megapixel", median / mpix},
         {"peak_rss_mib", double(peak_rss_kib()) / 1024.0}};
  if (!mosaic.is_null()) r["mosaic"] = mosaic;
  std::cout << r.dump(2) << "\n";
  return 0;
}

// A fixed-seed train:test:val split of a dataset, written as a split CSV (e.g. for datasets/splits/).
int cmd_split(const Args& a) {
  if (!a.has("dataset") || !a.has("out")) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "split: --dataset DIR and --out FILE are required");
  auto ds = load_dataset(a.get("dataset"), "");
  std::vector<double> r;
  std::stringstream ss(a.get("ratios", "10,9,1"));
  for (std::string part; std::getline(ss, part, ',');) r.push_back(std::stod(part));
  if (r.size() != 3) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "split: --ratios expects train,test,val (e.g. 10,9,1)");
  assign_split(ds, r[0], r[1], r[2], std::stoull(a.get("seed", "0")));
  write_split(ds, a.get("out"), a.get("overwrite") == "true");
  std::cout << "wrote " << a.get("out") << ": " << ds.indices("train").size() << " train, " << ds.indices("test").size()
            << " test, " << ds.indices("val").size() << " val\n";
  return 0;
}

int cmd_defaults(const Args& a) {
  char* out = nullptr;
  check(cellcount_request_defaults(a.get("method").c_str(), a.get("kind", "train").c_str(), &out));
  std::cout << json::parse(take_string(out)).dump(2) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGINT, on_sigint);
  for (int i = 0; i < argc; ++i) g_command_line += (i ? " " : "") + std::string(i ? argv[i] : "cellcount");
  try {
    Args a = parse_args(argc, argv);
    if (a.command.empty() || a.command == "help" || a.command == "--help" || a.command == "-h" || a.has("help")) {
      std::cout << kUsage;
      return a.command.empty() ? 2 : 0;
    }
    if (a.command == "info") return cmd_info();
    if (a.command == "count") return cmd_count(a);
    if (a.command == "train") return cmd_request(a, cellcount_train, {"threads", "report", "verbose"});
    if (a.command == "eval") return cmd_request(a, cellcount_evaluate, {"threads", "report", "verbose", "overwrite"});
    if (a.command == "synth") return cmd_request(a, cellcount_synthesize, {"threads", "report", "verbose"});
    if (a.command == "bench") return cmd_bench(a);
    if (a.command == "defaults") return cmd_defaults(a);
    if (a.command == "split") return cmd_split(a);
    std::cerr << "cellcount: unknown command '" << a.command << "'\n\n" << kUsage;
    return 2;
  } catch (const Error& e) {
    std::cerr << "\ncellcount: " << cellcount_status_name(e.status()) << ": " << e.what() << "\n";
    return e.status() == CELLCOUNT_CANCELLED ? 130 : 1;
  } catch (const std::exception& e) {
    std::cerr << "\ncellcount: error: " << e.what() << "\n";
    return 1;
  }
}
