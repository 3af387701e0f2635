// Seeded mutation fuzzer of the C ABI (issue 20). One executable, four targets:
//   predict    cellcount_predict with arbitrary views, boxes, region, params and options_json
//   model      model folder loading: model.json + weights.pt bytes written to a temp folder, then
//              cellcount_model_load (and, when it loads, a predict)
//   dataset    points.csv / counts.csv / split.csv / boxes.csv bytes next to the fixture images, then
//              cellcount_dataset_read, cellcount_split and (one input in four) cellcount_evaluate
//   request    request JSON for cellcount_train / evaluate / synthesize / split / metrics /
//              request_defaults / request_options (train made cheap: 1 epoch, "out" in a temp folder)
//
// Choice: a seeded mutation harness in C++ rather than libFuzzer. LibTorch is Debian's g++ build and so is the
// library; libFuzzer (clang) could link the C ABI but its coverage would see only this harness, so its guidance
// would be no better than the cheap feedback used here: an input that gives a new (call, status, message shape)
// joins the corpus. Deterministic by seed: byte flips, sets, inserts, deletes, duplications, splices and tokens
// of a per-target dictionary over the seed corpus (tests/fuzz/corpus/<target>/).
// A failure is a crash (the process dies: the input is in <work>/<target>.current), a hang (an input running
// longer than --timeout: exit 71), or a broken contract of the header (exit 70): a status outside the enum,
// an error without a message, ERR_INTERNAL, a non-finite count returned as OK, result getters that disagree.
//
// usage: cellcount_fuzz TARGET --corpus DIR --model MODEL_DIR --data DATASET_DIR
//                       [--seconds S] [--seed N] [--timeout T] [--work DIR] [--save DIR] [--fix-checksums]
//                       [--run FILE...]
//   --fix-checksums model: mutated weights reach LibTorch's loader too (see run_model; known to crash LibTorch)
//   --run FILE...   run these inputs once each (a reproducer; CTest runs every corpus file this way)
// Prints "<target>: N executions in S s, corpus K, 0 failures".
#include "cellcount/cellcount.h"

#include "core/sha256.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using Bytes = std::string;

namespace {

struct Config {
  std::string target, corpus, model, data, work, save;
  double seconds = 10, timeout = 20;
  uint64_t seed = 1;
  std::vector<std::string> run_files;
};
Config g_cfg;

// ------------------------------------------------------------------ failures and the watchdog

std::atomic<int64_t> g_exec_start_ms{0};  // 0 = idle
std::string g_current_path;               // the input being run (kept on disk: a crash leaves it there)

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "FUZZ FAILURE (%s): %s\n  input: %s\n  reproduce: cellcount_fuzz %s --run %s ...\n",
               g_cfg.target.c_str(), what.c_str(), g_current_path.c_str(), g_cfg.target.c_str(),
               g_current_path.c_str());
  std::fflush(stderr);
  std::_Exit(70);
}

void watchdog() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const int64_t t0 = g_exec_start_ms.load();
    if (t0 != 0 && now_ms() - t0 > int64_t(g_cfg.timeout * 1000)) {
      std::fprintf(stderr, "FUZZ HANG (%s): one input ran longer than %.0f s\n  input: %s\n", g_cfg.target.c_str(),
                   g_cfg.timeout, g_current_path.c_str());
      std::fflush(stderr);
      std::_Exit(71);
    }
  }
}

// The message shape of the last error: digits and quoted parts dropped, so "line 12" and "line 13" are one.
std::string shape(const char* msg) {
  std::string s;
  bool quoted = false;
  for (const char* p = msg; *p && s.size() < 32; ++p) {
    if (*p == '\'' || *p == '"') quoted = !quoted;
    else if (!quoted && !(*p >= '0' && *p <= '9')) s += *p;
  }
  return s;
}

// Checks a status against the header's contract and returns a feedback key.
std::string check(const char* call, cellcount_status s) {
  switch (s) {
    case CELLCOUNT_OK: return std::string(call) + ":OK";
    case CELLCOUNT_CANCELLED: case CELLCOUNT_ERR_INVALID_ARGUMENT: case CELLCOUNT_ERR_BUFFER_TOO_SMALL:
    case CELLCOUNT_ERR_UNSUPPORTED: case CELLCOUNT_ERR_IO: case CELLCOUNT_ERR_MODEL_FORMAT:
    case CELLCOUNT_ERR_WRONG_METHOD: case CELLCOUNT_ERR_DATASET: case CELLCOUNT_ERR_OUT_OF_MEMORY:
    case CELLCOUNT_ERR_DEVICE: break;
    case CELLCOUNT_ERR_INTERNAL:
      fail(std::string(call) + " gave CELLCOUNT_ERR_INTERNAL: " + cellcount_last_error());
    default: fail(std::string(call) + " gave a status outside the enum: " + std::to_string(int(s)));
  }
  const char* msg = cellcount_last_error();
  if (msg == nullptr || *msg == 0) fail(std::string(call) + " failed (" + cellcount_status_name(s) + ") with no message");
  return std::string(call) + ":" + cellcount_status_name(s) + ":" + shape(msg);
}

// ------------------------------------------------------------------ small helpers

void write_file(const fs::path& p, const Bytes& b) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(b.data(), std::streamsize(b.size()));
}

Bytes read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

uint8_t at(const Bytes& b, size_t i) { return i < b.size() ? uint8_t(b[i]) : 0; }

// Splits "#@@ name\n" sections (model and dataset inputs): name -> bytes up to the next marker.
std::map<std::string, Bytes> sections(const Bytes& in) {
  std::map<std::string, Bytes> out;
  const std::string marker = "#@@ ";
  size_t pos = in.find(marker);
  while (pos != std::string::npos) {
    const size_t eol = in.find('\n', pos);
    if (eol == std::string::npos) break;
    const std::string name = in.substr(pos + marker.size(), eol - pos - marker.size());
    size_t next = in.find("\n" + marker, eol);
    const size_t end = next == std::string::npos ? in.size() : next + 1;
    out[name] = in.substr(eol + 1, end - eol - 1);
    pos = next == std::string::npos ? next : next + 1;
  }
  return out;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

// Replaces @MODEL@, @DATA@ and @TMP@ (the corpus files are the same on every machine).
std::string placeholders(std::string s, const fs::path& tmp) {
  replace_all(s, "@MODEL@", g_cfg.model);
  replace_all(s, "@DATA@", g_cfg.data);
  replace_all(s, "@TMP@", tmp.string());
  return s;
}

struct Progress {
  int mode = 0, calls = 0;
};
int32_t progress_cb(float fraction, const char* stage, void* user) {
  auto* p = static_cast<Progress*>(user);
  if (!(fraction >= 0.0f && fraction <= 1.0f)) fail("progress fraction out of [0, 1]: " + std::to_string(fraction));
  if (stage == nullptr) fail("progress stage is NULL");
  ++p->calls;
  return (p->mode == 2 && p->calls >= 1) || (p->mode == 3 && p->calls >= 3) ? 1 : 0;
}

// Reads every part of a result as a caller would, checking that the getters agree.
void inspect_result(cellcount_result* r, int64_t w, int64_t h) {
  const double count = cellcount_result_count(r);
  if (!std::isfinite(count)) fail("predict returned OK with a non-finite count");
  const size_t nc = cellcount_result_n_classes(r);
  if (nc < 1) fail("result has no class");
  double sum = 0;
  for (size_t k = 0; k <= nc; ++k) sum += k < nc ? cellcount_result_class_count(r, k) : 0.0;
  if (cellcount_result_class_count(r, nc) != 0.0) fail("class_count out of range is not 0");
  if (!std::isfinite(sum)) fail("non-finite class counts");
  const size_t np = cellcount_result_n_points(r);
  std::vector<float> xy(2 * np + 2), scores(np + 1);
  std::vector<int32_t> ids(np + 1);
  if (np > 0 && cellcount_result_points(r, xy.data(), ids.data(), scores.data(), np - 1) != CELLCOUNT_ERR_BUFFER_TOO_SMALL)
    fail("result_points with too small a capacity did not say BUFFER_TOO_SMALL");
  if (cellcount_result_points(r, xy.data(), ids.data(), scores.data(), np) != CELLCOUNT_OK) fail("result_points failed");
  for (size_t i = 0; i < np; ++i)
    if (!(xy[2 * i] >= -1 && xy[2 * i] <= w + 1 && xy[2 * i + 1] >= -1 && xy[2 * i + 1] <= h + 1))
      fail("a point lies outside the image");
  if (cellcount_result_device(r) == nullptr || cellcount_result_precision(r) == nullptr) fail("NULL device/precision");
  for (int32_t kind : {int32_t(CELLCOUNT_IMAGE_DENSITY), int32_t(CELLCOUNT_IMAGE_MASK), int32_t(CELLCOUNT_IMAGE_RECONSTRUCTION), 0, 4}) {
    int64_t iw = -1, ih = -1, ic = -1;
    const cellcount_status s = cellcount_result_image_size(r, kind, &iw, &ih, &ic);
    if (kind == 0 || kind == 4) {
      if (s != CELLCOUNT_ERR_INVALID_ARGUMENT) fail("result_image_size accepted an unknown kind");
      continue;
    }
    if (s != CELLCOUNT_OK) fail("result_image_size failed");
    if (iw == 0) continue;
    if (iw < 1 || ih < 1 || ic < 1 || iw * ih * ic > (int64_t(1) << 30)) fail("result image of a strange size");
    std::vector<float> buf(size_t(iw * ih * ic));
    if (cellcount_result_image(r, kind, buf.data(), buf.size() - 1) != CELLCOUNT_ERR_BUFFER_TOO_SMALL)
      fail("result_image with too small a capacity did not say BUFFER_TOO_SMALL");
    if (cellcount_result_image(r, kind, buf.data(), buf.size()) != CELLCOUNT_OK) fail("result_image failed");
    if (kind == CELLCOUNT_IMAGE_DENSITY && (iw != w || ih != h)) fail("density map not of the image's size");
  }
}

// ------------------------------------------------------------------ target: predict

std::vector<cellcount_model*> g_models;

const char* kDevices[] = {"auto", "cpu", "cuda", "cuda:7", "", "cpu ", "bogus", nullptr};
const char* kPrecisions[] = {"fp32", "bf16", "fp16", "FP32", "", "int8", nullptr, "fp32"};
const int32_t kTiles[] = {0, 32, 33, 31, -1, 64, 48, 1 << 30, std::numeric_limits<int32_t>::min(), 16, 40, 0};
const int32_t kOverlaps[] = {-1, 0, 8, 15, 16, 31, -2, std::numeric_limits<int32_t>::max(), 4, -1};
const float kFloats[] = {NAN, 0.0f, 0.5f, -1.0f, INFINITY, -INFINITY, 1e30f, 1e-30f, 0.01f, 3.0f, -0.0f, 100.0f};

// Pixel values from a pattern byte, so that small inputs still make whole images (NaN, inf, huge included).
double pixel(uint8_t pattern, uint8_t param, size_t i, std::mt19937_64& rng) {
  switch (pattern % 9) {
    case 0: return double(rng() % 256);
    case 1: return double(param);
    case 2: return (i % 97 == param % 97) ? NAN : double(rng() % 256);
    case 3: return (i % 89 == param % 89) ? INFINITY : double(rng() % 65536);
    case 4: return double(int64_t(rng() % 2000001) - 1000000) * 1e3;  // beyond the float limit of 1e9
    case 5: return 0.0;
    case 6: return double(i % 256);
    case 7: return double(rng() % 65536);
    default: return std::ldexp(double(rng() % 1000) / 1000.0, int(param % 64) - 32);
  }
}

struct View {
  std::vector<unsigned char> buf;
  cellcount_image_view v{};
};

// Fills a view: (w, h, c) valid and small -> a real buffer of the declared layout; else a tiny buffer that the
// library must refuse without reading.
void make_view(View& out, int64_t w, int64_t h, int64_t c, int32_t dtype, int stride_mode, uint8_t pad, uint8_t pattern,
               uint8_t param, uint64_t seed, bool valid) {
  const size_t px = dtype == CELLCOUNT_DTYPE_U16 ? 2 : dtype == CELLCOUNT_DTYPE_F32 ? 4 : 1;
  const bool sized = valid && c >= 1 && c <= 8;
  int64_t row = sized ? w * c * int64_t(px) : 0, stride = 0;
  switch (stride_mode % 6) {
    case 0: stride = 0; break;
    case 1: stride = row; break;
    case 2: stride = row + pad; break;
    case 3: stride = row - 1 - pad % 4; break;     // too short: refused
    case 4: stride = -int64_t(row) - 1; break;    // negative: refused
    default: stride = std::numeric_limits<int64_t>::max() - pad; break;  // overflows: refused
  }
  if (sized && (stride_mode % 6) <= 2) {
    const size_t step = size_t(stride == 0 ? row : stride);
    out.buf.assign(step * size_t(h) + 16, 0);
    std::mt19937_64 rng(seed);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t i = 0; i < w * c; ++i) {
        const double v = pixel(pattern, param, size_t(y * w * c + i), rng);
        unsigned char* p = out.buf.data() + size_t(y) * step + size_t(i) * px;
        if (dtype == CELLCOUNT_DTYPE_U16) {
          const uint16_t u = uint16_t(std::isfinite(v) ? std::fmod(std::fabs(v), 65536.0) : 0);
          std::memcpy(p, &u, 2);
        } else if (dtype == CELLCOUNT_DTYPE_F32) {
          const float f = float(v);
          std::memcpy(p, &f, 4);
        } else if (dtype == CELLCOUNT_DTYPE_U8) {
          *p = uint8_t(std::isfinite(v) ? std::fmod(std::fabs(v), 256.0) : 0);
        }
      }
  } else {
    // Room for one row: with height 1 any stride is valid (only row 0 is read).
    out.buf.assign(std::max<size_t>(64, sized ? size_t(row) + 16 : 0), 0x7f);
  }
  out.v.data = out.buf.data();
  out.v.width = w;
  out.v.height = h;
  out.v.channels = c;
  out.v.row_stride_bytes = stride;
  out.v.dtype = dtype;
  out.v.reserved = 0;
}

std::string run_predict(const Bytes& in, const fs::path&) {
  // Layout: 48 header bytes (missing ones read as 0), then options_json text. See the decoding below.
  if (g_models.empty()) fail("no model loaded");
  cellcount_model* m = g_models[at(in, 0) % g_models.size()];
  const int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
  const int64_t bad_dims[][2] = {{0, 5}, {5, 0}, {-1, 5}, {5, -3}, {kMax, 1}, {1, kMin}, {(1 << 20) + 1, 1},
                                 {1 << 15, 1 << 14}, {1 << 20, 1 << 20}, {kMax, kMax}, {kMin, kMin}, {3, 1LL << 62}};
  int64_t w = 1 + at(in, 2) % 96, h = 1 + at(in, 3) % 96;
  bool valid = (at(in, 1) & 3) != 3;
  if (!valid) {
    const auto& d = bad_dims[at(in, 2) % (sizeof bad_dims / sizeof bad_dims[0])];
    w = d[0];
    h = d[1];
  }
  const int64_t channels_table[] = {1, 3, 1, 3, 2, 4, 0, -1, 5, int64_t(1) << 40};
  const int64_t c = channels_table[at(in, 4) % 10];
  const int32_t dtypes[] = {1, 2, 3, 1, 3, 0, 4, -1};
  const int32_t dtype = dtypes[at(in, 5) % 8];
  View img;
  make_view(img, w, h, c, dtype, at(in, 6), at(in, 7), at(in, 9), at(in, 10), 0x9e3779b9ULL * (at(in, 11) + 1), valid);
  if (at(in, 8) & 1) img.v.reserved = 1 + at(in, 8);
  if (at(in, 8) == 0xff) img.v.data = nullptr;

  // Boxes: 0..5 from bytes 13..32 (coordinates relative to the image, 0xff / 0xfe = NaN / inf), or odd cases.
  std::vector<cellcount_box> boxes;
  const cellcount_box* box_ptr = nullptr;
  size_t n_boxes = 0;
  const uint8_t bm = at(in, 12) % 10;
  auto coord = [&](uint8_t b, int64_t side) -> float {
    if (b == 0xff) return NAN;
    if (b == 0xfe) return INFINITY;
    if (b == 0xfd) return -1e30f;
    return float((int(b) - 32) * double(std::max<int64_t>(1, std::min<int64_t>(side, 4096))) / 160.0);
  };
  if (bm <= 5) {
    for (size_t k = 0; k < bm; ++k)
      boxes.push_back({coord(at(in, 13 + 4 * k), w), coord(at(in, 14 + 4 * k), h), coord(at(in, 15 + 4 * k), w),
                       coord(at(in, 16 + 4 * k), h)});
    n_boxes = boxes.size();
  } else if (bm == 6) {
    n_boxes = 1;  // NULL with n = 1: refused
  } else if (bm == 7) {
    boxes.assign(65, cellcount_box{1, 1, 5, 5});  // over the limit of 64
    n_boxes = 65;
  } else if (bm == 8) {
    boxes.assign(1, cellcount_box{1, 1, 5, 5});
    n_boxes = std::numeric_limits<size_t>::max();  // refused before reading
  } else {
    boxes.assign(64, cellcount_box{0, 0, float(w), float(h)});
    n_boxes = 64;
  }
  if (!boxes.empty()) box_ptr = boxes.data();

  // Region: none, a valid mask, or one of wrong size / dtype / channels / data.
  View region;
  const cellcount_image_view* region_ptr = nullptr;
  const uint8_t rm = at(in, 33) % 10;
  if (rm >= 4 && valid && c >= 1 && c <= 8) {
    const int64_t rw = rm == 5 ? w + 1 : w, rh = rm == 5 ? std::max<int64_t>(1, h - 1) : h;
    make_view(region, rw, rh, rm == 7 ? 3 : 1, rm == 6 ? CELLCOUNT_DTYPE_F32 : CELLCOUNT_DTYPE_U8, rm == 9 ? 2 : 0, 3,
              at(in, 34) % 2 ? 5 : 0, at(in, 34), 77, true);
    if (rm == 8) region.v.data = nullptr;
    region_ptr = &region.v;
  }

  // Params.
  cellcount_predict_params params = cellcount_predict_default_params();
  const cellcount_predict_params* params_ptr = &params;
  const uint8_t pm = at(in, 35);
  Progress progress;
  std::string options;
  if (pm == 0) {
    params_ptr = nullptr;
  } else {
    const uint8_t sm = at(in, 36) % 8;
    if (sm == 1) params.struct_size = 0;
    else if (sm == 2) params.struct_size = uint32_t(offsetof(cellcount_predict_params, options_json));
    else if (sm == 3) params.struct_size = 8;
    if (pm & 2) params.device = kDevices[at(in, 37) % 8];
    if (pm & 4) params.precision = kPrecisions[at(in, 38) % 8];
    if (pm & 8) params.tile_size = kTiles[at(in, 39) % 12];
    if (pm & 16) params.tile_overlap = kOverlaps[at(in, 40) % 10];
    if (pm & 32) params.peak_threshold = kFloats[at(in, 41) % 12];
    if (pm & 64) params.peak_min_distance = kFloats[at(in, 42) % 12];
    if (pm & 128) params.want_density = int32_t(at(in, 43) % 4) - 1;
    if (at(in, 44) == 0xff) params.reserved = 1;
    progress.mode = at(in, 45) % 4;
    if (progress.mode != 0) {
      params.progress = progress_cb;
      params.progress_user = &progress;
    }
    if (in.size() > 48) {
      options.assign(in.data() + 48, in.size() - 48);
      params.options_json = options.c_str();  // an embedded NUL ends it early, as in C
    }
  }
  // "cuda" devices: a CUDA build would run them; keep the fuzzing on the CPU (an absent device is refused).
  if (params.device != nullptr && std::strncmp(params.device, "cuda", 4) == 0) params.device = "cuda:99";
  cellcount_result* r = nullptr;
  const cellcount_status s = cellcount_predict(m, &img.v, box_ptr, n_boxes, region_ptr, params_ptr, &r);
  const std::string key = check("predict", s);
  if (s == CELLCOUNT_OK) {
    if (r == nullptr) fail("predict OK with a NULL result");
    inspect_result(r, w, h);
  } else if (s != CELLCOUNT_CANCELLED && r != nullptr) {
    fail("predict failed but set a result");
  }
  cellcount_result_free(r);
  return key;
}

// ------------------------------------------------------------------ target: model

// Loads a model and, when it loads, predicts on a small image of the channels it asks for.
std::string load_and_predict(const fs::path& dir) {
  cellcount_model* m = nullptr;
  const cellcount_status s = cellcount_model_load(dir.c_str(), &m);
  std::string key = check("model_load", s);
  if (s != CELLCOUNT_OK) {
    if (m != nullptr) fail("model_load failed but set a model");
    return key;
  }
  const char* info = cellcount_model_info(m);
  if (info == nullptr) fail("model_info NULL");
  const auto j = nlohmann::json::parse(info, nullptr, false);
  if (j.is_discarded()) fail("model_info is not JSON");
  int64_t c = 1;
  bool needs_boxes = false;
  try {
    c = j.at("input").at("channels").get<int64_t>();
    needs_boxes = j.value("needs_exemplars", false);
  } catch (const std::exception& e) {
    fail(std::string("model_info lacks input.channels or needs_exemplars: ") + e.what());
  }
  if (c < 1 || c > 64) fail("model_info input.channels out of range: " + std::to_string(c));
  View img;
  make_view(img, 40, 36, c, CELLCOUNT_DTYPE_U8, 0, 0, 0, 0, 5, true);
  const cellcount_box box{4, 4, 12, 12};
  cellcount_predict_params p = cellcount_predict_default_params();
  p.device = "cpu";
  cellcount_result* r = nullptr;
  const cellcount_status ps = cellcount_predict(m, &img.v, needs_boxes ? &box : nullptr, needs_boxes ? 1 : 0, nullptr, &p, &r);
  key += "|" + check("predict", ps);
  if (ps == CELLCOUNT_OK) inspect_result(r, 40, 36);
  cellcount_result_free(r);
  cellcount_model_free(m);
  return key;
}

// Checksums of the weights sections of the --corpus files (read at the start, in both modes).
std::set<std::string> g_known_weights;
bool g_fix_checksums = false;

std::string run_model(const Bytes& in, const fs::path& tmp) {
  // Sections "#@@ model.json" and "#@@ weights.pt". A well-formed 64-hex "weights_sha256" in model.json is
  // replaced by the checksum of the weights given when those weights are those of a --corpus file (or always
  // with --fix-checksums), so that mutated model.json files reach the loader with real weights; a
  // mutated checksum still reaches the mismatch check, and mutated weights the checksum check.
  // Choice: mutated weights stop at the checksum by default. LibTorch 1.13's archive importer (TorchScript
  // parser, torch::jit::ScriptTypeParser::parseClassConstant) segfaults on some damaged archives, inside
  // LibTorch where the library cannot catch it (tests/fuzz/libtorch-crash/); the checksum is what stops a
  // damaged file, so a model folder must be trusted like any pickle. --fix-checksums explores past it.
  const fs::path dir = tmp / "model";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto sec = sections(in);
  if (sec.count("model.json")) {
    std::string json = sec["model.json"];
    const std::string key = "\"weights_sha256\": \"";
    const size_t p = json.find(key);
    const bool known = sec.count("weights.pt") &&
                       (g_fix_checksums || g_known_weights.count(cellcount::sha256_hex(sec["weights.pt"].data(),
                                                                                       sec["weights.pt"].size())));
    if (p != std::string::npos && known && json.size() >= p + key.size() + 65 &&
        json[p + key.size() + 64] == '"' &&
        std::all_of(json.begin() + long(p + key.size()), json.begin() + long(p + key.size() + 64),
                    [](char ch) { return std::isxdigit(uint8_t(ch)) != 0; }))
      json.replace(p + key.size(), 64, cellcount::sha256_hex(sec["weights.pt"].data(), sec["weights.pt"].size()));
    write_file(dir / "model.json", json);
  }
  if (sec.count("weights.pt")) write_file(dir / "weights.pt", sec["weights.pt"]);
  return load_and_predict(dir);
}

// ------------------------------------------------------------------ target: dataset

std::string run_dataset(const Bytes& in, const fs::path& tmp) {
  // Sections "#@@ points.csv", "counts.csv", "split.csv", "boxes.csv" beside a copy of the fixture's images.
  const fs::path dir = tmp / "dataset";
  for (const char* f : {"points.csv", "counts.csv", "split.csv", "boxes.csv"}) fs::remove(dir / f);
  auto sec = sections(in);
  for (const auto& [name, body] : sec)
    if (name == "points.csv" || name == "counts.csv" || name == "split.csv" || name == "boxes.csv")
      write_file(dir / name, body);
  char* out = nullptr;
  cellcount_status s = cellcount_dataset_read(dir.c_str(), nullptr, &out);
  std::string key = check("dataset_read", s);
  if (s == CELLCOUNT_OK && nlohmann::json::parse(out ? out : "", nullptr, false).is_discarded())
    fail("dataset_read gave no JSON");
  cellcount_string_free(out);
  out = nullptr;
  const std::string split_out = (tmp / "split-out.csv").string();
  fs::remove(split_out);
  const nlohmann::json split_req{{"dataset", dir.string()}, {"out", split_out}, {"seed", at(in, 5)}};
  s = cellcount_split(split_req.dump().c_str(), &out);
  key += "|" + check("split", s);
  cellcount_string_free(out);
  out = nullptr;
  // One input in four (by its bytes) is also evaluated: a predict per image, ~20x the time of the rest.
  uint32_t h = 0;
  for (unsigned char ch : in) h = h * 31 + ch;
  if (h % 4 == 0 && s != CELLCOUNT_ERR_INTERNAL) {
    const nlohmann::json req{{"model", g_cfg.model}, {"dataset", dir.string()}, {"split", h % 8 ? "all" : "test"},
                             {"threads", 1}};
    s = cellcount_evaluate(req.dump().c_str(), nullptr, nullptr, &out);
    key += "|" + check("evaluate", s);
    if (s == CELLCOUNT_OK && nlohmann::json::parse(out ? out : "", nullptr, false).is_discarded())
      fail("evaluate gave no JSON");
    cellcount_string_free(out);
  }
  return key;
}

// ------------------------------------------------------------------ target: request

// Makes a request cheap and harmless: everything written goes under tmp, training runs one epoch on a few
// images, synthesis makes a few small images, threads at most 2.
void tame(nlohmann::json& j, const std::string& api, const fs::path& tmp) {
  if (!j.is_object()) return;
  auto clamp = [&](const char* k, double hi) {
    if (j.contains(k) && j[k].is_number() && j[k].get<double>() > hi) j[k] = hi;
  };
  if (api == "train" || api == "synthesize" || api == "split" || j.contains("out"))
    if (!j.contains("out") || j["out"].is_string()) j["out"] = (tmp / "out").string();
  if (j.contains("checkpoint_dir") && j["checkpoint_dir"].is_string() && !j["checkpoint_dir"].get<std::string>().empty())
    j["checkpoint_dir"] = (tmp / "ckpt").string();
  if (api == "train") {
    if (!j.contains("epochs") || j["epochs"].is_number()) clamp("epochs", 1), j.emplace("epochs", 1);
    if (j.contains("dataset") && j["dataset"].is_string()) j["dataset"] = g_cfg.data;
    clamp("batch_size", 4);
    clamp("crop", 64);
  }
  clamp("n", 4);
  clamp("width", 64);
  clamp("height", 64);
  clamp("threads", 2);
  clamp("max_cells", 50);
}

const char* kApis[] = {"train", "evaluate", "synthesize", "split", "metrics", "defaults", "options"};

std::string run_request(const Bytes& in, const fs::path& tmp) {
  // First line: the call (kApis; another name picks one by its bytes); for defaults/options, lines 2 and 3
  // are the method and the kind. The rest is the request JSON (@MODEL@, @DATA@, @TMP@ replaced).
  std::vector<std::string> lines;
  size_t pos = 0;
  const int head = 3;
  for (int k = 0; k < head && pos <= in.size(); ++k) {
    const size_t eol = in.find('\n', pos);
    lines.push_back(in.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos));
    pos = eol == std::string::npos ? in.size() + 1 : eol + 1;
  }
  std::string api = lines[0];
  if (std::find(std::begin(kApis), std::end(kApis), api) == std::end(kApis)) {
    uint32_t h = 0;
    for (unsigned char ch : api) h += ch;
    api = kApis[h % 7];
  }
  fs::remove_all(tmp / "out");
  fs::remove_all(tmp / "ckpt");
  char* out = nullptr;
  cellcount_status s;
  if (api == "defaults" || api == "options") {
    const std::string method = lines.size() > 1 ? lines[1] : "", kind = lines.size() > 2 ? lines[2] : "";
    s = api == "defaults" ? cellcount_request_defaults(method.c_str(), kind.c_str(), &out)
                          : cellcount_request_options(method.c_str(), kind.c_str(), &out);
    std::string key = check(api.c_str(), s);
    if (s == CELLCOUNT_OK && nlohmann::json::parse(out ? out : "", nullptr, false).is_discarded())
      fail(api + " gave no JSON");
    cellcount_string_free(out);
    return key;
  }
  const size_t body_at = in.find('\n');
  std::string body = placeholders(body_at == std::string::npos ? "" : in.substr(body_at + 1), tmp);
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded()) {
    tame(j, api, tmp);
    body = j.dump();
  }
  Progress progress;
  progress.mode = int(body.size() % 4);
  cellcount_progress_fn cb = progress.mode ? progress_cb : nullptr;
  if (api == "train") s = cellcount_train(body.c_str(), cb, &progress, &out);
  else if (api == "evaluate") s = cellcount_evaluate(body.c_str(), cb, &progress, &out);
  else if (api == "synthesize") s = cellcount_synthesize(body.c_str(), cb, &progress, &out);
  else if (api == "split") s = cellcount_split(body.c_str(), &out);
  else s = cellcount_metrics(body.c_str(), &out);
  std::string key = check(api.c_str(), s);
  if (s == CELLCOUNT_OK && nlohmann::json::parse(out ? out : "", nullptr, false).is_discarded())
    fail(api + " gave no JSON report");
  cellcount_string_free(out);
  if (api == "train" && s == CELLCOUNT_OK) key += "|" + load_and_predict(tmp / "out");
  return key;
}

// ------------------------------------------------------------------ the mutation engine

const std::vector<std::string>& dictionary() {
  static const std::map<std::string, std::vector<std::string>> d = {
      {"predict", {"{", "}", "\"mask_threshold\":", "null", "1e999", "-1", "NaN", "[]", "{}", "\"\"", "true", "0.5",
                   "\"min_area\":", "\"tile_size\":", "1e308", "\xff\xff\xff\xff", std::string(4, '\0')}},
      {"model", {"\"method\":", "\"selftest\"", "\"dcl\"", "\"exemplar\"", "\"architecture\":", "\"width\":",
                 "\"channels\":", "\"format_version\":", "null", "-1", "0", "1e999", "99999999999", "[]", "{}",
                 "\"input\":", "\"sigma\":", "\"thresholds\":", "\"classes\":", "\"tile_size\":", "PK\x03\x04",
                 std::string(8, '\xff'), std::string(8, '\0')}},
      {"dataset", {",", "\n", "\r\n", "\"", "image,x,y", "image,count", "image,split", "image,x0,y0,x1,y1",
                   "images/cells_00000.png", "images/cells_00001.png", "../", "/etc/passwd", "nan", "inf", "-1",
                   "1e999", "train", "test", "val", "class", std::string(1, '\0'), "\xef\xbb\xbf", ",,,,"}},
      {"request", {"\"method\":", "\"selftest\"", "\"dcl\"", "\"exemplar\"", "\"model\":", "\"@MODEL@\"",
                   "\"dataset\":", "\"@DATA@\"", "\"out\":", "\"epochs\":", "\"split\":", "\"seed\":", "\"n\":",
                   "\"threads\":", "\"device\":", "\"cpu\"", "\"cuda\"", "\"precision\":", "\"bf16\"", "null",
                   "-1", "0", "1e999", "1e308", "-0", "[]", "{}", "true", "\"all\"", "\"ratios\":", "[1,1,1]",
                   "\"predicted\":", "\"truth\":", "\"points\":", "\"radius\":", "\"init_from\":", "\"resume\":",
                   "\"overwrite\":", "train\n", "evaluate\n", "synthesize\n", "predict\n"}}};
  return d.at(g_cfg.target);
}

Bytes mutate(const Bytes& base, const std::vector<Bytes>& corpus, std::mt19937_64& rng) {
  Bytes b = base;
  const auto& dict = dictionary();
  const int n = 1 + int(rng() % 6);
  for (int k = 0; k < n; ++k) {
    const size_t len = b.size();
    const size_t i = len ? rng() % len : 0;
    switch (rng() % 10) {
      case 0: if (len) b[i] = char(uint8_t(b[i]) ^ (1u << (rng() % 8))); break;
      case 1: if (len) b[i] = char(rng() % 256); break;
      case 2: {
        static const char interesting[] = {0, char(0xff), 0x7f, char(0x80), '"', '{', '}', ',', '-', '9', '\n', '.',
                                           'e', '[', ']', ':'};
        if (len) b[i] = interesting[rng() % sizeof interesting];
        break;
      }
      case 3: b.insert(i, 1 + rng() % 4, char(rng() % 256)); break;
      case 4: if (len) b.erase(i, 1 + rng() % std::min<size_t>(len - i, 16)); break;
      case 5: if (len) { const size_t l = 1 + rng() % std::min<size_t>(len - i, 32); b.insert(rng() % len, b.substr(i, l)); } break;
      case 6: {  // splice: a piece of another corpus input
        const Bytes& o = corpus[rng() % corpus.size()];
        if (!o.empty()) { const size_t j = rng() % o.size(); b.insert(i, o.substr(j, 1 + rng() % std::min<size_t>(o.size() - j, 64))); }
        break;
      }
      case 7: b.insert(i, dict[rng() % dict.size()]); break;
      case 8: if (len) { const std::string& t = dict[rng() % dict.size()]; b.replace(i, std::min(t.size(), len - i), t); } break;
      default: {  // an ASCII number
        static const char* nums[] = {"0", "1", "-1", "255", "65536", "2147483648", "4294967296", "-2147483649",
                                     "9223372036854775807", "1e9", "1e10", "0.5", "1e-45", "3.4e38"};
        if (len) b.replace(i, std::min<size_t>(len - i, 1 + rng() % 3), nums[rng() % 14]);
        break;
      }
    }
  }
  if (b.size() > 65536) b.resize(65536);
  return b;
}

using Runner = std::string (*)(const Bytes&, const fs::path&);

int usage() {
  std::fprintf(stderr,
               "usage: cellcount_fuzz predict|model|dataset|request --corpus DIR --model MODEL_DIR --data DATASET_DIR\n"
               "         [--seconds S] [--seed N] [--timeout T] [--work DIR] [--save DIR] [--fix-checksums] [--run FILE...]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage();
  g_cfg.target = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) std::exit(usage());
      return argv[++i];
    };
    if (a == "--corpus") g_cfg.corpus = next();
    else if (a == "--model") g_cfg.model = next();
    else if (a == "--data") g_cfg.data = next();
    else if (a == "--seconds") g_cfg.seconds = std::atof(next().c_str());
    else if (a == "--seed") g_cfg.seed = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--timeout") g_cfg.timeout = std::atof(next().c_str());
    else if (a == "--work") g_cfg.work = next();
    else if (a == "--save") g_cfg.save = next();
    else if (a == "--fix-checksums") g_fix_checksums = true;
    else if (a == "--run") { while (i + 1 < argc) g_cfg.run_files.push_back(argv[++i]); }
    else return usage();
  }
  const std::map<std::string, Runner> runners = {
      {"predict", run_predict}, {"model", run_model}, {"dataset", run_dataset}, {"request", run_request}};
  if (!runners.count(g_cfg.target) || g_cfg.model.empty() || g_cfg.data.empty()) return usage();
  const Runner run = runners.at(g_cfg.target);

  // The work folder: this run's own (made here, removed at the end unless a failure left an input in it).
  fs::path work;
  if (g_cfg.work.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "cellcount-fuzz-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) { std::perror("mkdtemp"); return 2; }
    work = tmpl;
  } else {
    work = g_cfg.work;
    fs::create_directories(work);
  }
  const fs::path tmp = work / ("tmp-" + g_cfg.target);
  fs::create_directories(tmp);
  g_current_path = (work / (g_cfg.target + ".current")).string();

  cellcount_log_set(nullptr, nullptr, 4);  // quiet: the library's warnings would flood the output
  cellcount_set_num_threads(1);
  if (g_cfg.target == "predict") {
    cellcount_model* m = nullptr;
    if (cellcount_model_load(g_cfg.model.c_str(), &m) != CELLCOUNT_OK) {
      std::fprintf(stderr, "cellcount_fuzz: cannot load %s: %s\n", g_cfg.model.c_str(), cellcount_last_error());
      return 2;
    }
    g_models.push_back(m);
  }
  if (g_cfg.target == "dataset") {  // the fixture's images, once
    fs::create_directories(tmp / "dataset");
    fs::copy(fs::path(g_cfg.data) / "images", tmp / "dataset" / "images", fs::copy_options::overwrite_existing);
  }
  std::thread(watchdog).detach();

  auto exec = [&](const Bytes& in) {
    write_file(g_current_path, in);
    g_exec_start_ms = now_ms();
    std::string key;
    try {
      key = run(in, tmp);
    } catch (const std::exception& e) {  // the harness's own file handling, never the library's (C ABI)
      fail(std::string("harness exception: ") + e.what());
    }
    g_exec_start_ms = 0;
    return key;
  };

  auto remember_weights = [&](const Bytes& in) {
    if (g_cfg.target != "model") return;
    auto sec = sections(in);
    if (sec.count("weights.pt")) g_known_weights.insert(cellcount::sha256_hex(sec["weights.pt"].data(), sec["weights.pt"].size()));
  };
  if (!g_cfg.corpus.empty())
    for (const auto& e : fs::directory_iterator(g_cfg.corpus))
      if (e.is_regular_file()) remember_weights(read_file(e.path()));

  const auto t0 = std::chrono::steady_clock::now();
  uint64_t execs = 0;
  if (!g_cfg.run_files.empty()) {
    for (const auto& f : g_cfg.run_files) {
      const std::string key = exec(read_file(f));
      std::printf("%s: %s\n", f.c_str(), key.c_str());
      ++execs;
    }
  } else {
    std::vector<Bytes> corpus;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(g_cfg.corpus))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());  // the same order on every machine: deterministic by seed
    for (const auto& f : files) corpus.push_back(read_file(f));
    if (corpus.empty()) { std::fprintf(stderr, "cellcount_fuzz: no files in %s\n", g_cfg.corpus.c_str()); return 2; }
    std::set<std::string> seen;
    for (const auto& c : corpus) seen.insert(exec(c)), ++execs;
    std::mt19937_64 rng(g_cfg.seed);
    const size_t seeds = corpus.size();
    while (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < g_cfg.seconds) {
      const Bytes in = mutate(corpus[rng() % corpus.size()], corpus, rng);
      const std::string key = exec(in);
      ++execs;
      if (seen.insert(key).second && corpus.size() < 4096) {
        corpus.push_back(in);
        if (!g_cfg.save.empty()) {
          fs::create_directories(g_cfg.save);
          write_file(fs::path(g_cfg.save) / (g_cfg.target + "-" + std::to_string(corpus.size() - seeds)), in);
        }
      }
    }
    std::printf("%s: %zu new inputs kept (new call/status/message shapes)\n", g_cfg.target.c_str(), corpus.size() - seeds);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %llu executions in %.1f s, corpus %s, 0 failures\n", g_cfg.target.c_str(),
              static_cast<unsigned long long>(execs), secs, g_cfg.corpus.c_str());
  std::fflush(stdout);
  for (auto& m : g_models) cellcount_model_free(m);
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::remove(g_current_path, ec);
  if (g_cfg.work.empty()) fs::remove(work, ec);
  return 0;
}
