// `cellcount`: the command-line tool for batch scripts. Everything numeric goes through the C ABI
// (the same calls Fiji and napari make); this file only parses arguments, reads/writes files and prints.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <unistd.h>

#include "cellcount/cellcount.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A failed step: the status a C ABI call gave (or the CLI's own check) and the message to print.
class Error : public std::runtime_error {
 public:
  Error(cellcount_status s, const std::string& msg) : std::runtime_error(msg), status_(s) {}
  cellcount_status status() const { return status_; }

 private:
  cellcount_status status_;
};

// OpenMP waits passively unless the user chose otherwise: LibTorch's libgomp workers otherwise spin for
// 300000 iterations after each parallel region, and on a busy machine (another process, a training, two
// cores) the spinning threads take the cores from the ones with work: a 256x256 count took 6-21 s instead
// of about 1 s (issue 21). libgomp reads OMP_WAIT_POLICY once, in its constructor, and the CLI links
// libcellcount -> LibTorch -> libgomp, so main() is too late, and so is a setenv() in a .preinit_array
// function (glibc's own constructor then resets environ to the original envp). Choice: the .preinit_array
// entry, which the dynamic loader runs before any shared library's constructor, re-executes the program
// with the variable added when it is absent: LibTorch's costly static initialisation then runs once, in the
// new image. A user's value (even an empty one) is kept; if the exec fails the run goes on as before. The
// Python binding (bindings/python/cellcount/_lib.py OMP_DEFAULTS) and the Java one (libcellcount_omp) set
// the same default before they load the library.
constexpr char kOmpDefault[] = "OMP_WAIT_POLICY=PASSIVE";
void set_openmp_defaults(int, char** argv, char** envp) {
  if (!envp || !argv || !argv[0]) return;
  size_t n = 0;
  for (; envp[n]; ++n)
    if (std::strncmp(envp[n], "OMP_WAIT_POLICY=", 16) == 0) return;
  // malloc works before libc's constructor (glibc's malloc sets itself up); nothing here may throw.
  char** env = static_cast<char**>(std::malloc((n + 2) * sizeof(char*)));
  if (!env) return;
  std::memcpy(env, envp, n * sizeof(char*));
  env[n] = const_cast<char*>(kOmpDefault);
  env[n + 1] = nullptr;
  execve("/proc/self/exe", argv, env);  // returns only on failure: go on spinning
  std::free(env);
}
#if defined(__linux__)
__attribute__((section(".preinit_array"), used)) void (*g_preinit_openmp)(int, char**, char**) = set_openmp_defaults;
#endif

std::atomic<bool> g_interrupted{false};
void on_sigint(int) { g_interrupted = true; }

const char* kUsage = R"(cellcount — deep-learning cell counting

usage:
  cellcount info
  cellcount count --model DIR [options] INPUT...      count images, folders of images, TIFF stacks
      --device auto|cpu|cuda[:N]   --precision auto|fp32|bf16|fp16   --threads N (default: cores available)
      --tile N --overlap N --min-distance F
      --threshold-relative R       peak threshold on the library's 0-1 scale (cellcount.h, measurements; the
                                   model's tuned value: model info "peak_threshold")
      --threshold F                the same as an absolute peak height (density units)
      --options JSON               the method's own prediction options, e.g. '{"mask_threshold": 0.5}',
                                   '{"localize": false}' (dcl: count only, no points, about 3x faster)
                                   (list: cellcount options --method M --kind predict)
      --exemplars boxes.csv        (image,x0,y0,x1,y1; for models that count like exemplars)
      --truth DATASET_DIR          (counts.csv/points.csv; a folder INPUT with them is used as truth too)
      --csv FILE                   write one row per image/slice (never overwrites without --overwrite), with
                                   the counted area and cells per unit2 (--pixel-size W[,H] --unit NAME)
      --points FILE                write one row per point: x, y, class, score, local intensity, label
      --labels DIR                 write <image>_labels.tif (16-bit) where the method gives a mask (exemplar)
      --overlays DIR               write <image>_overlay.png with the points
      --density DIR                write <image>_density.tif (32-bit)
      --overwrite
      A file that cannot be read or counted is reported and skipped; the run then exits with status 1.
  cellcount train --method M --dataset DIR --out DIR [--FIELD VALUE ...] [--request FILE.json]
  cellcount eval  --model DIR --dataset DIR [--split test] [--FIELD VALUE ...] [--report FILE.json]
  cellcount synth --out DIR [--method M] [--kind cells] [--n N] [--FIELD VALUE ...]
  cellcount bench --model DIR [--size 1024] [--repeat 3] [--device ...] [--precision ...] [--threads N]
                  [--options JSON] [--mosaic N IMAGES...]   also: count an N x N mosaic whole and part by part
  cellcount defaults --method M --kind train|evaluate|synthesize|predict
  cellcount options  --method M --kind train|evaluate|synthesize|predict   (type, default, range, doc)
  cellcount split --dataset DIR --out FILE.csv [--ratios 10,9,1] [--seed 0]
  cellcount export --format bioimageio --model DIR --out FILE.zip [--test-image IMG] [--size N]
                  [--exemplars X0,Y0,X1,Y1[;X0,...]] [--license SPDX] [--seed 0] [--threads N] [--overwrite]
      BioImage Model Zoo package (spec 0.5): TorchScript weights, rdf.yaml, test tensors, cover, README

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

const std::vector<std::string> kFlags = {"overwrite", "help", "verbose"};

// The option as the user typed it: --min-distance for min_distance.
std::string flag_name(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return "--" + key;
}

Args parse_args(int argc, char** argv) {
  Args a;
  if (argc >= 2) a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--", 0) == 0) {
      std::string key = s.substr(2);
      std::string value;
      auto eq = key.find('=');
      if (eq != std::string::npos) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      }
      std::replace(key.begin(), key.end(), '-', '_');
      if (eq == std::string::npos) {
        if (std::find(kFlags.begin(), kFlags.end(), key) != kFlags.end()) {
          value = "true";
        } else {
          if (i + 1 >= argc) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "option --" + s.substr(2) + " needs a value");
          value = argv[++i];
        }
      }
      a.opts[key] = value;
    } else {
      a.positional.push_back(s);
    }
  }
  return a;
}

// Commands whose options the CLI itself reads refuse any other option (a typo such as --cvs must not run
// and write nothing); train/eval/synth pass their fields to the library, which refuses unknown ones.
void check_known_options(const Args& a, const std::vector<std::string>& known) {
  for (const auto& [k, v] : a.opts)
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      std::string list;
      for (const auto& x : known) list += (list.empty() ? "" : " ") + flag_name(x);
      throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT,
                  a.command + ": unknown option " + flag_name(k) + " (known: " + list + ")");
    }
}

// Numbers from option values, refused with the option and the value named (std::stoi said only "stoi").
int64_t int_value(const std::string& what, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE)
    throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, what + " expects an integer, got '" + v + "'");
  return x;
}
double number_value(const std::string& what, const std::string& v) {
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE || !std::isfinite(x))
    throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, what + " expects a number, got '" + v + "'");
  return x;
}
int64_t int_opt(const Args& a, const std::string& k, int64_t def) {
  return a.has(k) ? int_value("option " + flag_name(k), a.get(k)) : def;
}
double number_opt(const Args& a, const std::string& k, double def) {
  return a.has(k) ? number_value("option " + flag_name(k), a.get(k)) : def;
}
int32_t int32_opt(const Args& a, const std::string& k, int32_t def) {
  const int64_t x = int_opt(a, k, def);
  if (x < INT32_MIN || x > INT32_MAX)
    throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "option " + flag_name(k) + " is out of range: '" + a.get(k) + "'");
  return int32_t(x);
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
    try {
      r = json::parse(f);
    } catch (const std::exception& e) {
      throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "request file '" + a.get("request") + "' is not valid JSON: " + e.what());
    }
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

std::string csv_escape(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// One CSV file as rows of fields (RFC 4180 quotes; the first row is the header).
std::vector<std::vector<std::string>> read_csv_rows(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(CELLCOUNT_ERR_IO, "cannot read '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field), field.clear();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      rows.back().push_back(field), field.clear();
      rows.emplace_back();
    } else {
      field += c;
    }
  }
  if (!field.empty() || !rows.back().empty()) rows.back().push_back(field);
  rows.erase(std::remove_if(rows.begin(), rows.end(),
                            [](const auto& r) { return r.empty() || (r.size() == 1 && r[0].empty()); }),
             rows.end());
  return rows;
}

json library_info() {
  char* j = nullptr;
  check(cellcount_library_info(&j));
  return json::parse(take_string(j));
}

int cmd_info() {
  auto info = library_info();
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
struct ImageHandle {
  cellcount_image* im = nullptr;
  ~ImageHandle() { cellcount_image_free(im); }
};

void apply_threads(const Args& a) { check(cellcount_set_num_threads(int32_opt(a, "threads", 0))); }

// Strings the params point to live here, as long as the params are used.
struct PredictSettings {
  std::string device, precision, options;
  cellcount_predict_params p;
};

void params_from(const Args& a, PredictSettings& s) {
  s.p = cellcount_predict_default_params();
  s.device = a.get("device", s.p.device);
  s.precision = a.get("precision", s.p.precision);
  s.p.device = s.device.c_str();
  s.p.precision = s.precision.c_str();
  s.p.tile_size = int32_opt(a, "tile", s.p.tile_size);
  s.p.tile_overlap = int32_opt(a, "overlap", s.p.tile_overlap);
  if (a.has("threshold")) s.p.peak_threshold = float(number_opt(a, "threshold", 0));
  if (a.has("min_distance")) s.p.peak_min_distance = float(number_opt(a, "min_distance", 0));
  json options;
  if (a.has("options")) {
    // The library checks each option (name, type, range); here only that it is JSON.
    try {
      options = json::parse(a.get("options"));
    } catch (const std::exception&) {
      throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "option --options expects a JSON object, got '" + a.get("options") + "'");
    }
  }
  if (a.has("threshold_relative")) {
    // The library maps it to the absolute threshold and checks the range (cellcount.h, measurements).
    if (!options.is_null() && !options.is_object())
      throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "option --options expects a JSON object, got '" + a.get("options") + "'");
    options["peak_threshold_relative"] = number_opt(a, "threshold_relative", 0);
  }
  if (!options.is_null()) {
    s.options = options.dump();
    s.p.options_json = s.options.c_str();
  }
  s.p.progress = print_progress;
}

struct Box {
  float x0, y0, x1, y1;
};

// Ground truth and exemplars by image path relative to a dataset root, and by file name
// (from cellcount_dataset_read: the library parses the dataset CSVs).
struct Truth {
  struct Entry {
    json count;                      // number or null
    bool has_points = false;
    std::vector<std::pair<float, float>> points;
    std::vector<Box> boxes;
  };
  std::vector<Entry> entries;
  std::map<std::string, size_t> by_path, by_name;
  void add(const std::string& dir) {
    char* j = nullptr;
    check(cellcount_dataset_read(dir.c_str(), nullptr, &j));
    const json ds = json::parse(take_string(j));
    for (const auto& s : ds["samples"]) {
      Entry e;
      e.count = s["count"];
      if (s.contains("points")) {
        e.has_points = true;
        for (const auto& p : s["points"]) e.points.emplace_back(p[0].get<float>(), p[1].get<float>());
      }
      for (const auto& b : s["boxes"]) e.boxes.push_back(Box{b[0], b[1], b[2], b[3]});
      const std::string image = s["image"];
      entries.push_back(std::move(e));
      by_path[fs::weakly_canonical(fs::path(dir) / image).string()] = entries.size() - 1;
      by_name[fs::path(image).filename().string()] = entries.size() - 1;
    }
  }
  const Entry* find(const std::string& path) const {
    auto it = by_path.find(fs::weakly_canonical(path).string());
    if (it != by_path.end()) return &entries[it->second];
    auto jt = by_name.find(fs::path(path).filename().string());
    return jt == by_name.end() ? nullptr : &entries[jt->second];
  }
};

bool is_dataset_dir(const fs::path& p) {
  return fs::exists(p / "counts.csv") || fs::exists(p / "points.csv") || fs::exists(p / "boxes.csv");
}

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs, Truth* truth) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    if (fs::is_directory(in)) {
      if (truth && is_dataset_dir(in)) truth->add(in);
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(in))
        if (e.is_regular_file() && cellcount_is_image_file(e.path().string().c_str())) found.push_back(e.path().string());
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

// Exemplar boxes by image file name from a CSV with columns image,x0,y0,x1,y1.
std::map<std::string, std::vector<Box>> read_exemplar_boxes(const std::string& path) {
  const auto rows = read_csv_rows(path);
  if (rows.empty()) throw Error(CELLCOUNT_ERR_DATASET, path + ": empty file; expected columns image,x0,y0,x1,y1");
  std::map<std::string, int> col;
  for (size_t i = 0; i < rows[0].size(); ++i) col[rows[0][i]] = int(i);
  for (const char* c : {"image", "x0", "y0", "x1", "y1"})
    if (!col.count(c)) throw Error(CELLCOUNT_ERR_DATASET, path + ": expected columns image,x0,y0,x1,y1 (no '" + c + "')");
  std::map<std::string, std::vector<Box>> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& row = rows[r];
    auto field = [&](const char* c) -> std::string {
      const size_t i = size_t(col[c]);
      if (i >= row.size())
        throw Error(CELLCOUNT_ERR_DATASET, path + " line " + std::to_string(r + 1) + ": no '" + c + "' value");
      return row[i];
    };
    auto num = [&](const char* c) {
      return float(number_value(path + " line " + std::to_string(r + 1) + " column " + c, field(c)));
    };
    out[fs::path(field("image")).filename().string()].push_back(Box{num("x0"), num("y0"), num("x1"), num("y1")});
  }
  return out;
}

const std::vector<std::string> kCountOptions = {"model",   "device",    "precision", "threads", "tile",
                                                "overlap", "threshold", "min_distance", "options", "exemplars",
                                                "truth",   "csv",       "overlays",  "density", "overwrite",
                                                "threshold_relative", "points", "labels", "pixel_size", "unit"};

// The codes of a result's warnings (cellcount_result_warnings), space-separated, for a CSV cell.
std::string warning_codes(const json& warnings) {
  std::string out;
  for (const auto& w : warnings) out += (out.empty() ? "" : " ") + w["code"].get<std::string>();
  return out;
}

// Statuses after which the next file may still succeed: the file itself was bad. Others (device, memory,
// cancel, internal) end the run.
bool file_level(cellcount_status s) {
  return s == CELLCOUNT_ERR_IO || s == CELLCOUNT_ERR_INVALID_ARGUMENT || s == CELLCOUNT_ERR_UNSUPPORTED ||
         s == CELLCOUNT_ERR_DATASET;
}

// The image being counted, named in front of the library's messages during its prediction (as the out-of-domain
// warnings of its result are, issue 24) so that a folder run says which image each one is about.
std::string g_counting;
void count_log(int32_t level, const char* message, void*) {
  const char* name = level >= CELLCOUNT_LOG_ERROR ? "error" : level == CELLCOUNT_LOG_WARN ? "warning" : level == CELLCOUNT_LOG_INFO ? "info" : "debug";
  if (g_counting.empty())
    std::fprintf(stderr, "cellcount %s: %s\n", name, message);
  else
    std::fprintf(stderr, "cellcount %s: '%s': %s\n", name, g_counting.c_str(), message);
}

int cmd_count(const Args& a) {
  check_known_options(a, kCountOptions);
  cellcount_log_set(count_log, nullptr, CELLCOUNT_LOG_INFO);
  if (!a.has("model")) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "count: --model DIR is required");
  if (a.positional.empty()) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "count: give at least one image, stack or folder");
  apply_threads(a);
  const bool overwrite = a.get("overwrite") == "true";
  PredictSettings ps;
  params_from(a, ps);  // option values are checked before any work
  ModelHandle mh;
  check(cellcount_model_load(a.get("model").c_str(), &mh.m));
  const auto info = json::parse(cellcount_model_info(mh.m));
  const bool needs_exemplars = info.value("needs_exemplars", false);
  if (info.value("fixture", false))
    std::cerr << "note: '" << a.get("model") << "' is the test fixture model, not a counting model\n";
  Truth truth;
  if (a.has("truth")) truth.add(a.get("truth"));
  const auto files = expand_inputs(a.positional, &truth);
  std::map<std::string, std::vector<Box>> exemplar_boxes;
  if (a.has("exemplars")) exemplar_boxes = read_exemplar_boxes(a.get("exemplars"));
  for (const char* k : {"overlays", "density"})
    if (a.has(k)) fs::create_directories(a.get(k));
  // Calibration for the counted area and cells per unit2 (computed by the library: cellcount_result_measure).
  json measure_req = json::object();
  if (a.has("pixel_size")) {
    const std::string v = a.get("pixel_size");
    const auto comma = v.find(',');
    const double pw = number_value("option --pixel-size", v.substr(0, comma));
    const double ph = comma == std::string::npos ? pw : number_value("option --pixel-size", v.substr(comma + 1));
    if (!(pw > 0) || !(ph > 0) || !std::isfinite(pw) || !std::isfinite(ph))
      throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "option --pixel-size expects sizes > 0, got '" + v + "'");
    measure_req["pixel_width"] = pw;
    measure_req["pixel_height"] = ph;
    measure_req["unit"] = a.get("unit", "unit");
  } else if (a.has("unit")) {
    throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "option --unit needs --pixel-size (calibrated units per pixel)");
  }
  // The per-point list only when --points writes it (516,743 points at 8192 x 8192 held ~300 MB twice).
  measure_req["points"] = a.has("points");
  const std::string measure_json = measure_req.dump();
  auto open_out = [&](const char* key, std::ofstream& f, const char* header) {
    if (!a.has(key)) return;
    if (fs::exists(a.get(key)) && !overwrite)
      throw Error(CELLCOUNT_ERR_IO, "'" + a.get(key) + "' exists; pass --overwrite to replace it");
    f.open(a.get(key));
    if (!f) throw Error(CELLCOUNT_ERR_IO, "cannot write '" + a.get(key) + "'");
    f << header;
  };
  // A model of several classes (llp) adds one "count <class>" column per class, then one "fraction <class>" (the
  // library's class_fractions), before warnings, as the Fiji and napari tables do; the run ends with the
  // per-class totals and shares.
  std::vector<std::string> class_names;
  if (info.contains("classes") && info["classes"].is_array() && info["classes"].size() > 1)
    for (const auto& c : info["classes"]) class_names.push_back(c.is_string() ? c.get<std::string>() : c.dump());
  std::vector<double> class_totals(class_names.size(), 0.0);
  std::string class_header;
  for (const auto& c : class_names) class_header += csv_escape("count " + c) + ",";
  for (const auto& c : class_names) class_header += csv_escape("fraction " + c) + ",";
  std::ofstream csv, points_csv;
  open_out("csv", csv,
           ("image,slice,count,truth,abs_error,points,model,method,device,precision,seconds,counted_pixels,area,unit,"
            "cells_per_unit2,diameter," + class_header + "warnings\n").c_str());
  open_out("points", points_csv, "image,slice,x,y,class,score,intensity,label\n");
  if (a.has("labels")) fs::create_directories(a.get("labels"));
  bool said_no_labels = false;
  std::printf("%-44s %5s %9s %7s %7s %6s %s\n", "image", "slice", "count", "truth", "error", "points", "device");
  json metrics{{"predicted", json::array()}, {"truth", json::array()}, {"points", json::array()}};
  bool all_points = true;
  size_t n_done = 0;
  std::vector<std::string> failed;
  for (const auto& file : files) {
    ImageHandle ih;
    try {
      check(cellcount_image_read(file.c_str(), &ih.im));
    } catch (const Error& e) {
      if (!file_level(e.status())) throw;
      std::fprintf(stderr, "cellcount: skipped '%s': %s: %s\n", file.c_str(), cellcount_status_name(e.status()), e.what());
      failed.push_back(file);
      continue;
    }
    const size_t planes = cellcount_image_n_planes(ih.im);
    const Truth::Entry* gt = truth.find(file);
    for (size_t z = 0; z < planes; ++z) {
      cellcount_image_view v;
      check(cellcount_image_plane(ih.im, z, &v));
      std::vector<cellcount_box> boxes;
      if (needs_exemplars) {
        auto it = exemplar_boxes.find(fs::path(file).filename().string());
        const std::vector<Box>* src = it != exemplar_boxes.end() ? &it->second : gt ? &gt->boxes : nullptr;
        if (src)
          for (const auto& b : *src) boxes.push_back(cellcount_box{b.x0, b.y0, b.x1, b.y1});
      }
      ResultHandle rh;
      const std::string where = file + (planes > 1 ? " slice " + std::to_string(z + 1) : "");
      g_counting = where;
      const cellcount_status st =
          cellcount_predict(mh.m, &v, boxes.empty() ? nullptr : boxes.data(), boxes.size(), nullptr, &ps.p, &rh.r);
      g_counting.clear();
      if (st != CELLCOUNT_OK) {
        if (!file_level(st)) check(st);
        std::fprintf(stderr, "cellcount: skipped '%s': %s: %s\n", where.c_str(), cellcount_status_name(st),
                     cellcount_last_error());
        failed.push_back(where);
        continue;
      }
      const double count = cellcount_result_count(rh.r);
      const size_t np = cellcount_result_n_points(rh.r);
      std::vector<float> xy(2 * np);
      std::vector<int32_t> cls(np);
      if (np) check(cellcount_result_points(rh.r, xy.data(), cls.data(), nullptr, np));
      const bool has_truth = gt && gt->count.is_number() && planes == 1;
      const double t = has_truth ? gt->count.get<double>() : NAN;
      if (has_truth) {
        metrics["predicted"].push_back(count);
        metrics["truth"].push_back(t);
        all_points = all_points && gt->has_points;
        json pred_pts = json::array(), true_pts = json::array();
        for (size_t i = 0; i < np; ++i) pred_pts.push_back({xy[2 * i], xy[2 * i + 1]});
        for (const auto& [x, y] : gt->points) true_pts.push_back({x, y});
        metrics["points"].push_back({{"predicted", pred_pts}, {"truth", true_pts}});
      }
      const std::string name = fs::path(file).filename().string();
      std::printf("%-44s %5zu %9.1f %7s %7s %6zu %s\n", name.substr(0, 44).c_str(), z + 1, count,
                  has_truth ? fmt(t, 0).c_str() : "-", has_truth ? fmt(count - t).c_str() : "-", np,
                  cellcount_result_device(rh.r));
      char* mj = nullptr;
      check(cellcount_result_measure(rh.r, measure_json.c_str(), &mj));
      const json ms = json::parse(take_string(mj));
      for (const auto& w : ms["warnings"])  // the library returns them; the CLI says them once, naming the image
        std::fprintf(stderr, "cellcount warning: '%s': %s\n", where.c_str(), w["message"].get<std::string>().c_str());
      std::string class_cells;
      for (size_t k = 0; k < class_names.size(); ++k) {
        const double ck = k < cellcount_result_n_classes(rh.r) ? cellcount_result_class_count(rh.r, k) : 0.0;
        class_totals[k] += ck;
        class_cells += fmt(ck, 3) + ",";
      }
      const auto& fractions = ms["class_fractions"];
      for (size_t k = 0; k < class_names.size(); ++k)
        class_cells += (k < fractions.size() && fractions[k].is_number() ? fmt(fractions[k].get<double>(), 4) : "") + ",";
      if (csv.is_open())
        csv << csv_escape(file) << "," << z + 1 << "," << fmt(count, 3) << "," << (has_truth ? fmt(t, 0) : "") << ","
            << (has_truth ? fmt(std::abs(count - t), 3) : "") << "," << np << "," << csv_escape(a.get("model")) << ","
            << info.value("method", "") << "," << cellcount_result_device(rh.r) << ","
            << cellcount_result_precision(rh.r) << "," << fmt(cellcount_result_seconds(rh.r), 3) << ","
            << fmt(ms["counted_pixels"].get<double>(), 0) << "," << fmt(ms["area"].get<double>(), 6) << ","
            << csv_escape(ms["unit"].get<std::string>()) << ","
            << (ms["cells_per_unit2"].is_number() ? fmt(ms["cells_per_unit2"].get<double>(), 9) : "") << ","
            << (ms["diameter"].is_object() ? fmt(ms["diameter"]["value"].get<double>(), 2) : "") << ","
            << class_cells << warning_codes(ms["warnings"]) << std::endl;
      if (points_csv.is_open()) {
        for (const auto& q : ms["points"])
          points_csv << csv_escape(file) << "," << z + 1 << "," << fmt(q["x"].get<double>(), 2) << ","
                     << fmt(q["y"].get<double>(), 2) << "," << q["class"].get<int>() << ","
                     << fmt(q["score"].get<double>(), 4) << ","
                     << (q["intensity"].is_number() ? fmt(q["intensity"].get<double>(), 4) : "") << ","
                     << q["label"].get<int>() << "\n";
        points_csv.flush();
      }
      if (a.has("labels")) {
        if (!ms["labels"]["available"].get<bool>()) {
          if (!said_no_labels)
            std::fprintf(stderr, "cellcount: no label images: %s\n", ms["labels"]["reason"].get<std::string>().c_str());
          said_no_labels = true;
        } else {
          int64_t w = 0, h = 0, c = 0;
          check(cellcount_result_image_size(rh.r, CELLCOUNT_IMAGE_MASK, &w, &h, &c));
          std::vector<int32_t> lab(size_t(w * h));
          check(cellcount_result_labels(rh.r, lab.data(), lab.size()));
          if (ms["labels"]["n"].get<int64_t>() > 65535)
            throw Error(CELLCOUNT_ERR_UNSUPPORTED, "--labels: more than 65535 components in '" + where + "'");
          std::vector<float> lf(lab.begin(), lab.end());
          cellcount_image_view lv{lf.data(), w, h, 1, 0, CELLCOUNT_DTYPE_F32, 0};
          const std::string lstem = fs::path(file).stem().string() + (planes > 1 ? "_z" + std::to_string(z + 1) : "");
          check(cellcount_image_write((fs::path(a.get("labels")) / (lstem + "_labels.tif")).string().c_str(), &lv, 16,
                                      overwrite));
        }
      }
      const std::string stem = fs::path(file).stem().string() + (planes > 1 ? "_z" + std::to_string(z + 1) : "");
      if (a.has("overlays"))
        check(cellcount_overlay_write((fs::path(a.get("overlays")) / (stem + "_overlay.png")).string().c_str(), &v,
                                      xy.data(), cls.data(), np, 3, overwrite));
      if (a.has("density")) {
        int64_t w = 0, h = 0, c = 0;
        check(cellcount_result_image_size(rh.r, CELLCOUNT_IMAGE_DENSITY, &w, &h, &c));
        if (w > 0) {
          std::vector<float> d(size_t(w * h * c));
          check(cellcount_result_image(rh.r, CELLCOUNT_IMAGE_DENSITY, d.data(), d.size()));
          cellcount_image_view dv{d.data(), w, h, c, 0, CELLCOUNT_DTYPE_F32, 0};
          check(cellcount_image_write((fs::path(a.get("density")) / (stem + "_density.tif")).string().c_str(), &dv, 32,
                                      overwrite));
        }
      }
      ++n_done;
    }
  }
  std::printf("%zu image(s)", n_done);
  const size_t n_truth = metrics["truth"].size();
  if (n_truth) {
    // Metrics by the library (the same definitions as cellcount eval).
    const double radius = info.value("eval_radius", 5.0);
    if (all_points) metrics["radius"] = radius > 0 ? radius : 5.0;
    else metrics.erase("points");
    char* out = nullptr;
    check(cellcount_metrics(metrics.dump().c_str(), &out));
    const json m = json::parse(take_string(out));
    std::printf(", MAE %.2f over %zu with ground truth (RMSE %.2f", m["mae"].get<double>(), n_truth, m["rmse"].get<double>());
    if (m.contains("f1")) std::printf(", point F1 %.3f at %.1f px", m["f1"].get<double>(), m["radius"].get<double>());
    std::printf(")");
  }
  std::printf("\n");
  if (!class_names.empty() && n_done) {
    double all = 0;
    for (double t : class_totals) all += t;
    std::printf("per class:");
    for (size_t k = 0; k < class_names.size(); ++k)
      std::printf("%s %s %.1f (%.1f %%)", k ? "," : "", class_names[k].c_str(), class_totals[k],
                  all > 0 ? 100.0 * class_totals[k] / all : 0.0);
    std::printf("\n");
  }
  if (!failed.empty()) {
    std::fprintf(stderr, "cellcount: %zu of %zu file(s) could not be counted:\n", failed.size(),
                 files.size());
    for (const auto& f : failed) std::fprintf(stderr, "  %s\n", f.c_str());
    return 1;
  }
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
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

// A folder the CLI creates for its own scratch files and removes again (never a user's folder).
struct ScratchDir {
  fs::path path;
  ScratchDir() {
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path = fs::temp_directory_path() / ("cellcount-bench-" + std::to_string(::getpid()) + "-" + std::to_string(stamp));
    if (!fs::create_directory(path)) throw Error(CELLCOUNT_ERR_IO, "cannot create scratch folder '" + path.string() + "'");
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

int cmd_bench(const Args& a) {
  check_known_options(a, {"model", "size", "repeat", "device", "precision", "threads", "tile", "overlap", "threshold",
                          "min_distance", "options", "exemplars", "mosaic"});
  if (!a.has("model")) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench: --model DIR is required");
  const int64_t size = int_opt(a, "size", 1024);
  if (size < 32 || size > 16384)
    throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench: --size must be in 32..16384, got " + a.get("size"));
  const int64_t repeat = int_opt(a, "repeat", 3);
  if (repeat < 1 || repeat > 100000)
    throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench: --repeat must be at least 1 (timed runs after one warm-up), got " +
                                                    a.get("repeat"));
  const int64_t n_ex = int_opt(a, "exemplars", 3);
  if (n_ex < 1) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench: --exemplars must be at least 1, got " + a.get("exemplars"));
  const int64_t mosaic_n = int_opt(a, "mosaic", 0);
  if (a.has("mosaic") && mosaic_n < 2) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench: --mosaic N needs N >= 2");
  PredictSettings ps;
  params_from(a, ps);
  ps.p.progress = nullptr;
  apply_threads(a);
  ModelHandle mh;
  check(cellcount_model_load(a.get("model").c_str(), &mh.m));
  const auto info = json::parse(cellcount_model_info(mh.m));
  // The test image: one synthetic cell image from the library's renderer, about one cell per 900 pixels.
  ScratchDir scratch;
  const int cells = int(size * size / 900);
  const json sreq{{"out", (scratch.path / "cells").string()}, {"n", 1}, {"width", size}, {"height", size},
                  {"min_cells", cells}, {"max_cells", cells}, {"seed", 1}};
  char* srep = nullptr;
  check(cellcount_synthesize(sreq.dump().c_str(), nullptr, nullptr, &srep));
  take_string(srep);
  char* dsj = nullptr;
  check(cellcount_dataset_read((scratch.path / "cells").string().c_str(), nullptr, &dsj));
  const json sample = json::parse(take_string(dsj))["samples"].at(0);
  ImageHandle synth;
  check(cellcount_image_read((scratch.path / "cells" / sample["image"].get<std::string>()).string().c_str(), &synth.im));
  cellcount_image_view sv;
  check(cellcount_image_plane(synth.im, 0, &sv));
  const int64_t channels = info["input"].value("channels", 1);
  std::vector<float> px(size_t(size * size * channels));
  const float* grey = static_cast<const float*>(sv.data);
  for (int64_t i = 0; i < size * size; ++i)
    for (int64_t c = 0; c < channels; ++c) px[size_t(i * channels + c)] = grey[i * sv.channels];
  cellcount_image_view v{px.data(), size, size, channels, 0, CELLCOUNT_DTYPE_F32, 0};
  std::vector<cellcount_box> boxes;
  if (info.value("needs_exemplars", false) && sample.contains("points"))
    for (const auto& p : sample["points"]) {
      if (int64_t(boxes.size()) >= n_ex) break;
      const float x = p[0], y = p[1];
      boxes.push_back(cellcount_box{x - 8, y - 8, x + 8, y + 8});
    }
  std::vector<double> ms;
  std::string used_device, used_precision;
  for (int64_t r = 0; r <= repeat; ++r) {  // r == 0 is the warm-up
    ResultHandle rh;
    const auto t0 = std::chrono::steady_clock::now();
    check(cellcount_predict(mh.m, &v, boxes.empty() ? nullptr : boxes.data(), boxes.size(), nullptr, &ps.p, &rh.r));
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) ms.push_back(dt);
    used_device = cellcount_result_device(rh.r);
    used_precision = cellcount_result_precision(rh.r);
  }
  std::sort(ms.begin(), ms.end());
  json mosaic = nullptr;
  if (a.has("mosaic")) {
    // Tiling check on real images: an N x N mosaic of equal-size images is counted whole (tiled) and part by
    // part; the two totals should agree.
    const int64_t n = mosaic_n;
    auto files = expand_inputs(a.positional, nullptr);
    if (files.size() < size_t(n * n))
      throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench --mosaic N needs N*N images as inputs, got " +
                                                      std::to_string(files.size()));
    std::vector<ImageHandle> parts(size_t(n * n));
    std::vector<cellcount_image_view> views(parts.size());
    for (size_t i = 0; i < parts.size(); ++i) {
      check(cellcount_image_read(files[i].c_str(), &parts[i].im));
      check(cellcount_image_plane(parts[i].im, 0, &views[i]));
    }
    const int64_t w = views[0].width, h = views[0].height, c = views[0].channels;
    std::vector<float> big(size_t(w * n * h * n * c));
    double sum_parts = 0;
    for (int64_t i = 0; i < n * n; ++i) {
      const auto& pv = views[size_t(i)];
      if (pv.width != w || pv.height != h || pv.channels != c)
        throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "bench --mosaic: images differ in size or channels");
      const int64_t ox = (i % n) * w, oy = (i / n) * h;
      const float* src = static_cast<const float*>(pv.data);
      for (int64_t y = 0; y < h; ++y)
        std::copy(src + y * w * c, src + (y + 1) * w * c, big.begin() + ((oy + y) * w * n + ox) * c);
      ResultHandle rh;
      check(cellcount_predict(mh.m, &pv, nullptr, 0, nullptr, &ps.p, &rh.r));
      sum_parts += cellcount_result_count(rh.r);
    }
    cellcount_image_view bv{big.data(), w * n, h * n, c, 0, CELLCOUNT_DTYPE_F32, 0};
    ResultHandle rb;
    check(cellcount_predict(mh.m, &bv, nullptr, 0, nullptr, &ps.p, &rb.r));
    const double whole = cellcount_result_count(rb.r);
    mosaic = {{"images", n * n}, {"size", {w * n, h * n}}, {"count_whole", whole}, {"sum_of_parts", sum_parts},
              {"relative_difference", std::abs(whole - sum_parts) / std::max(1e-9, sum_parts)}};
  }
  const double median = ms[ms.size() / 2], mpix = double(size * size) / 1e6;
  json r{{"model", a.get("model")},
         {"method", info.value("method", "")},
         {"size", size},
         {"device", used_device},
         {"precision", used_precision},  // the one that ran ("auto" resolves per model)
         {"threads", library_info()["devices"]["threads"]},
         {"exemplars", boxes.size()},
         {"repeats", repeat},
         {"ms_median", median},
         {"ms_per_megapixel", median / mpix},
         {"peak_rss_mib", double(peak_rss_kib()) / 1024.0}};
  if (!mosaic.is_null()) r["mosaic"] = mosaic;
  if (r["method"] == "llp") {
    // llp's training cost beside its prediction: the exact VP solver on random bags of the library's default
    // sizes (N = 500, K = 3 and N = 5000, K = 5; one core), as `cellcount eval --method llp --kind solver_bench`.
    char* out = nullptr;
    check(cellcount_evaluate(json{{"method", "llp"}, {"kind", "solver_bench"}}.dump().c_str(), nullptr, nullptr, &out));
    r["vp_solver"] = json::parse(take_string(out));
  }
  std::cout << r.dump(2) << "\n";
  return 0;
}

// A fixed-seed train:test:val split of a dataset, written as a split CSV (e.g. for datasets/splits/).
int cmd_split(const Args& a) {
  check_known_options(a, {"dataset", "out", "ratios", "seed", "overwrite"});
  if (!a.has("dataset") || !a.has("out")) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "split: --dataset DIR and --out FILE are required");
  json ratios = json::array();
  std::stringstream ss(a.get("ratios", "10,9,1"));
  for (std::string part; std::getline(ss, part, ',');) ratios.push_back(number_value("option --ratios", part));
  if (ratios.size() != 3) throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "split: --ratios expects train,test,val (e.g. 10,9,1)");
  const json req{{"dataset", a.get("dataset")}, {"out", a.get("out")}, {"ratios", ratios},
                 {"seed", int_opt(a, "seed", 0)}, {"overwrite", a.get("overwrite") == "true"}};
  char* out = nullptr;
  check(cellcount_split(req.dump().c_str(), &out));
  const json r = json::parse(take_string(out));
  std::cout << "wrote " << a.get("out") << ": " << r["train"] << " train, " << r["test"] << " test, " << r["val"]
            << " val\n";
  return 0;
}

// A model folder as a package for another tool (cellcount_export).
int cmd_export(const Args& a) {
  check_known_options(a, {"format", "model", "out", "test_image", "size", "exemplars", "license", "seed", "overwrite",
                          "threads"});
  apply_threads(a);
  if (!a.has("model") || !a.has("out"))
    throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "export: --model DIR and --out FILE.zip are required");
  json req{{"format", a.get("format", "bioimageio")}, {"model", a.get("model")}, {"out", a.get("out")},
           {"overwrite", a.get("overwrite") == "true"}};
  if (a.has("test_image")) req["test_image"] = a.get("test_image");
  if (a.has("size")) req["size"] = int_opt(a, "size", 0);
  if (a.has("seed")) req["seed"] = int_opt(a, "seed", 0);
  if (a.has("license")) req["license"] = a.get("license");
  if (a.has("exemplars")) {
    json boxes = json::array();
    std::stringstream all(a.get("exemplars"));
    for (std::string box; std::getline(all, box, ';');) {
      json b = json::array();
      std::stringstream ss(box);
      for (std::string v; std::getline(ss, v, ',');) b.push_back(number_value("option --exemplars", v));
      if (b.size() != 4)
        throw Error(CELLCOUNT_ERR_INVALID_ARGUMENT, "export: --exemplars expects X0,Y0,X1,Y1 boxes separated by ';', got '" + box + "'");
      boxes.push_back(b);
    }
    req["exemplars"] = boxes;
  }
  char* out = nullptr;
  check(cellcount_export(req.dump().c_str(), &out));
  const json r = json::parse(take_string(out));
  std::cout << "wrote " << r["out"].get<std::string>() << " (" << r["format"].get<std::string>() << ", method "
            << r["method"].get<std::string>() << "); the test output sums to " << r["test_count"].get<double>() << "\n";
  for (const auto& f : r["files"])
    std::cout << "  " << f["name"].get<std::string>() << "  " << f["bytes"].get<uint64_t>() << " bytes  sha256 "
              << f["sha256"].get<std::string>() << "\n";
  return 0;
}

int cmd_defaults(const Args& a, bool metadata) {
  check_known_options(a, {"method", "kind"});
  char* out = nullptr;
  const std::string method = a.get("method"), kind = a.get("kind", "train");
  check(metadata ? cellcount_request_options(method.c_str(), kind.c_str(), &out)
                 : cellcount_request_defaults(method.c_str(), kind.c_str(), &out));
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
    if (a.command == "defaults") return cmd_defaults(a, false);
    if (a.command == "options") return cmd_defaults(a, true);
    if (a.command == "split") return cmd_split(a);
    if (a.command == "export") return cmd_export(a);
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
