// The C ABI: extern "C" shims over the core and the method registry. guard() turns every exception into a
// status and a thread-local message; nothing escapes.
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "cellcount/cellcount.h"
#include "core/bioimageio.h"
#include "core/dataset.h"
#include "core/device.h"
#include "core/domain.h"
#include "core/error.h"
#include "core/hw.h"
#include "core/evaluate.h"
#include "core/image_tensor.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/method.h"
#include "core/metrics.h"
#include "core/options.h"
#include "core/model_io.h"
#include "io/image_file.h"

using namespace cellcount;

struct cellcount_model {
  const MethodSpec* spec = nullptr;
  ModelFiles files;
  std::unique_ptr<Method> method;
  std::string info;  // cache for cellcount_model_info
  InputSpec input;   // model.json "input", for the domain statistics
  nlohmann::json domain;  // model.json "domain" (core/domain), null when absent
};

struct cellcount_image {
  std::vector<cellcount::Image> planes;
};

struct cellcount_result {
  Prediction p;
  std::string device, precision;
  double seconds = 0;
  // For cellcount_result_measure (issue 21): what the prediction saw.
  std::string method;               // the model's method id (why there is no label image)
  double counted_pixels = 0;        // region pixels, else the whole image
  std::vector<float> intensities;   // per point: mean of the original image in a disc of kIntensityRadius
  nlohmann::json warnings = nlohmann::json::array();  // core/domain: out-of-domain warnings
  std::string warnings_text = "[]";                    // cellcount_result_warnings
};

namespace {

thread_local std::string t_last_error;

// The 0-1 scale of the peak threshold (cellcount.h, measurements): logarithmic over the tuner's range
// (core/peaks peak_threshold_grid: 0.0002 up to 0.5).
constexpr double kRelativeMin = 0.0002, kRelativeMax = 0.5;
double threshold_to_relative(double absolute) {
  if (absolute <= kRelativeMin) return 0.0;
  if (absolute >= kRelativeMax) return 1.0;
  return std::log(absolute / kRelativeMin) / std::log(kRelativeMax / kRelativeMin);
}
double threshold_from_relative(double relative) { return kRelativeMin * std::pow(kRelativeMax / kRelativeMin, relative); }
// The generic peak threshold a model uses when the call gives none: model.json's tuned one (dcl, exemplar,
// selftest: "peak_threshold"; llp: its "detect_threshold", which the generic parameter replaces), else the
// core's default (ModelMethod).
std::pair<double, bool> model_peak_threshold(const nlohmann::json& info) {
  const auto th = info.value("thresholds", nlohmann::json::object());
  for (const char* k : {"peak_threshold", "detect_threshold"})
    if (th.is_object() && th.contains(k) && th[k].is_number()) return {th[k].get<double>(), true};
  return {0.01, false};
}

// Radius (pixels) of the disc whose mean is a point's local intensity.
constexpr int kIntensityRadius = 2;

cellcount_status set_error(cellcount_status s, const std::string& msg) {
  t_last_error = msg;
  if (s != CELLCOUNT_CANCELLED) log(CELLCOUNT_LOG_DEBUG, std::string(cellcount_status_name(s)) + ": " + msg);
  return s;
}

template <class F>
cellcount_status guard(F&& f) noexcept {
  try {
    default_threads_once();
    f();
    return CELLCOUNT_OK;
  } catch (const Error& e) {
    return set_error(e.status(), e.what());
  } catch (const c10::Error& e) {
    const std::string m = e.what_without_backtrace();
    if (m.find("out of memory") != std::string::npos || m.find("can't allocate") != std::string::npos)
      return set_error(CELLCOUNT_ERR_OUT_OF_MEMORY, "out of memory: " + m);
    return set_error(CELLCOUNT_ERR_INTERNAL, "LibTorch error: " + m);
  } catch (const std::bad_alloc&) {
    return set_error(CELLCOUNT_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const nlohmann::json::exception& e) {
    return set_error(CELLCOUNT_ERR_INVALID_ARGUMENT, std::string("JSON: ") + e.what());
  } catch (const std::filesystem::filesystem_error& e) {
    return set_error(CELLCOUNT_ERR_IO, e.what());
  } catch (const std::exception& e) {
    return set_error(CELLCOUNT_ERR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return set_error(CELLCOUNT_ERR_INTERNAL, "internal error: unknown exception");
  }
}

Progress make_progress(cellcount_progress_fn fn, void* user) {
  if (!fn) return Progress();
  return Progress([fn, user](float f, const std::string& stage) { return fn(f, stage.c_str(), user) != 0; });
}

char* dup_string(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (!p) throw std::bad_alloc();
  std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

nlohmann::json parse_request(const char* json, const char* what) {
  CC_CHECK(json != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, std::string(what) + ": request_json is NULL");
  nlohmann::json r;
  try {
    r = nlohmann::json::parse(json);
  } catch (const std::exception& e) {
    fail(CELLCOUNT_ERR_INVALID_ARGUMENT, std::string(what) + ": request is not valid JSON: " + e.what());
  }
  CC_CHECK(r.is_object(), CELLCOUNT_ERR_INVALID_ARGUMENT, std::string(what) + ": request must be a JSON object");
  // (an out-of-range value is left to the request's own check, which names the field)
  if (r.contains("threads") && r["threads"].is_number_integer() && r["threads"].get<int64_t>() > 0 &&
      r["threads"].get<int64_t>() <= kMaxThreads)
    set_threads(r["threads"].get<int>());
  return r;
}

void check_kind(const std::string& k, const char* what) {
  CC_CHECK(k == "train" || k == "evaluate" || k == "synthesize" || k == "predict", CELLCOUNT_ERR_INVALID_ARGUMENT,
           std::string(what) + ": kind must be \"train\", \"evaluate\", \"synthesize\" or \"predict\", got \"" + k + "\"");
}

// The generic prediction settings: the fields of cellcount_predict_params (NAN shown as null).
Options generic_predict_options() {
  auto unset = [](OptionSpec o) {  // NAN in the struct: null here
    o.default_value = nullptr;
    return o;
  };
  return {Opt::string("device", "auto").help("\"auto\", \"cpu\", \"cuda\" or \"cuda:N\""),
          Opt::choice("precision", "auto", {"auto", "fp32", "bf16", "fp16"})
              .help("arithmetic precision of the network; auto = bf16 where the hardware has it and the count "
                    "holds (checked once per model), else fp32"),
          Opt::integer("tile_size", 0).at_least(0).help("tile side in pixels; 0 = the model's default, else >= 32").folded(),
          Opt::integer("tile_overlap", -1).at_least(-1).help("tile overlap; -1 = the model's default, else < tile_size/2").folded(),
          unset(Opt::number("peak_threshold_relative", 0).range(0, 1).or_null().help(
              "peak threshold on the 0-1 scale (0 keeps every faint peak, 1 only the strongest); null = the model's "
              "tuned value; passed as options_json's \"peak_threshold_relative\"")),
          unset(Opt::number("peak_threshold", 0).at_least(0).or_null().help("peak height for a point (absolute, density units); null = the model's tuned value").folded()),
          unset(Opt::number("peak_min_distance", 0).at_least(0).or_null().help("minimum distance between points (pixels); null = the model's").folded()),
          Opt::boolean("want_density", true).help("keep the density map in the result").folded(),
          Opt::number_list("normalization_range", {}).help(
              "raw intensities [low, high] that map to 0 and 1 in place of the image's own percentiles (models that "
              "normalise by percentiles; e.g. one large image counted in blocks, or every plane of a stack alike); "
              "[] = the image's own; passed as options_json's \"normalization_range\"").folded()};
}

Options declared_options(const std::string& method, const std::string& kind) {
  if (method.empty()) return kind == "predict" ? generic_predict_options() : Options{};
  return method_options(find_method(method), kind);
}

// The defaults of a request kind; method "" = the core's generic requests.
nlohmann::json request_defaults_of(const std::string& method, const std::string& k, const char* what) {
  check_kind(k, what);
  nlohmann::json j;
  if (method.empty()) {
    if (k == "predict") {
      j = option_defaults(generic_predict_options());
    }
    if (k == "evaluate") j = evaluate_defaults();
    if (k == "synthesize") j = synthesize_defaults();
    CC_CHECK(!j.is_null(), CELLCOUNT_ERR_UNSUPPORTED, std::string(what) + ": method \"\" (generic) has no " + k + " request");
    return j;
  }
  const auto& spec = find_method(method);
  j = method_request_defaults(spec, k);
  if (k == "predict") return j.is_null() ? nlohmann::json::object() : j;
  if (j.is_null() && k == "evaluate") j = evaluate_defaults();
  if (j.is_null() && k == "synthesize") j = synthesize_defaults();
  CC_CHECK(!j.is_null(), CELLCOUNT_ERR_UNSUPPORTED, "method \"" + spec.id + "\" has no " + k + " request");
  j["method"] = spec.id;
  return j;
}

// Metadata of a field a method has not declared: its type from the default value, no range, no doc.
OptionSpec option_from_default(const std::string& name, const nlohmann::json& v) {
  if (v.is_boolean()) return Opt::boolean(name, v.get<bool>());
  if (v.is_number_integer()) return Opt::integer(name, v.get<int64_t>());
  if (v.is_number()) return Opt::number(name, v.get<double>());
  if (v.is_string()) return Opt::string(name, v.get<std::string>());
  if (v.is_object()) return Opt::object(name, v);
  if (v.is_array() && !v.empty()) {
    bool ints = true, nums = true, strs = true;
    for (const auto& x : v) {
      ints = ints && x.is_number_integer();
      nums = nums && x.is_number();
      strs = strs && x.is_string();
    }
    if (ints) return Opt::int_list(name, v.get<std::vector<int64_t>>());
    if (nums) return Opt::number_list(name, v.get<std::vector<double>>());
    if (strs) return Opt::string_list(name, v.get<std::vector<std::string>>());
  }
  return Opt::any(name, v).or_null();
}

std::vector<double> numbers_of(const nlohmann::json& j, const char* key, const std::string& where) {
  CC_CHECK(j.contains(key) && j[key].is_array(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           where + ": \"" + key + "\" must be a list of numbers");
  std::vector<double> out;
  for (size_t i = 0; i < j[key].size(); ++i) {
    const auto& x = j[key][i];
    CC_CHECK(x.is_number() && std::isfinite(x.get<double>()), CELLCOUNT_ERR_INVALID_ARGUMENT,
             where + ": \"" + key + "\" entry " + std::to_string(i) + " must be a finite number, got " + x.dump());
    out.push_back(x.get<double>());
  }
  return out;
}

std::vector<Point> point_list(const nlohmann::json& j, const char* key, const std::string& where) {
  CC_CHECK(j.contains(key) && j[key].is_array(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           where + ": \"" + key + "\" must be a list of [x, y]");
  std::vector<Point> out;
  for (size_t i = 0; i < j[key].size(); ++i) {
    const auto& p = j[key][i];
    const bool ok = p.is_array() && p.size() >= 2 && p[0].is_number() && p[1].is_number() &&
                    std::isfinite(p[0].get<double>()) && std::isfinite(p[1].get<double>());
    CC_CHECK(ok, CELLCOUNT_ERR_INVALID_ARGUMENT,
             where + ": \"" + key + "\" entry " + std::to_string(i) + " must be [x, y] with finite numbers");
    out.push_back(Point{p[0].get<float>(), p[1].get<float>(), 0, 1.0f});
  }
  return out;
}

// An owned float image from a borrowed view (any dtype, any stride; checked), for the file writers.
Image view_to_image(const cellcount_image_view& v) { return tensor_to_image(view_to_tensor(v, "image")); }

// Per point, the mean of `image` ([C,H,W] float, raw values) over every channel and every pixel within
// `radius` of the point's pixel (pixel centres at integer coordinates), clipped to the image.
std::vector<float> local_intensities(const torch::Tensor& image, const std::vector<Point>& points, int radius) {
  std::vector<float> out;
  out.reserve(points.size());
  if (points.empty()) return out;
  const torch::Tensor im = image.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t c = im.size(0), h = im.size(1), w = im.size(2);
  const float* px = im.data_ptr<float>();
  for (const auto& p : points) {
    const int64_t cx = std::llround(double(p.x)), cy = std::llround(double(p.y));
    double sum = 0;
    int64_t n = 0;
    for (int64_t y = std::max<int64_t>(0, cy - radius); y <= std::min<int64_t>(h - 1, cy + radius); ++y)
      for (int64_t x = std::max<int64_t>(0, cx - radius); x <= std::min<int64_t>(w - 1, cx + radius); ++x) {
        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) > int64_t(radius) * radius) continue;
        for (int64_t k = 0; k < c; ++k) sum += px[(k * h + y) * w + x];
        n += c;
      }
    out.push_back(n ? float(sum / double(n)) : NAN);
  }
  return out;
}

// The label image of a mask: pixels > 0.5 split into 8-connected components numbered 1..n in raster order of
// their first pixel, 0 elsewhere. Returns n.
int32_t label_components(const torch::Tensor& mask, std::vector<int32_t>& labels) {
  const torch::Tensor m = mask.to(torch::kCPU, torch::kFloat32).contiguous();
  const int64_t h = m.size(0), w = m.size(1);
  const float* v = m.data_ptr<float>();
  labels.assign(size_t(h * w), 0);
  int32_t n = 0;
  std::vector<int64_t> stack;
  for (int64_t i = 0; i < h * w; ++i) {
    if (!(v[i] > 0.5f) || labels[size_t(i)] != 0) continue;
    labels[size_t(i)] = ++n;
    stack.assign(1, i);
    while (!stack.empty()) {
      const int64_t j = stack.back();
      stack.pop_back();
      const int64_t y = j / w, x = j % w;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t yy = y + dy, xx = x + dx;
          if (yy < 0 || yy >= h || xx < 0 || xx >= w) continue;
          const int64_t k = yy * w + xx;
          if (v[k] > 0.5f && labels[size_t(k)] == 0) {
            labels[size_t(k)] = n;
            stack.push_back(k);
          }
        }
    }
  }
  return n;
}

// Why a result has no label image (the message of cellcount_result_labels and the measure report's reason).
std::string no_labels_reason(const cellcount_result& r) {
  return "method " + r.method + " gives no mask for this result (points only" +
         (r.method == "exemplar" ? "; the mask is kept only with want_density" : "") + ")";
}

double positive_number(const nlohmann::json& j, const char* key, double fallback) {
  if (!j.contains(key)) return fallback;
  const auto& v = j[key];
  CC_CHECK(v.is_number() && std::isfinite(v.get<double>()) && v.get<double>() > 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           std::string("result_measure: \"") + key + "\" must be a finite number > 0, got " + v.dump());
  return v.get<double>();
}

}  // namespace

extern "C" {

uint32_t cellcount_version_number(void) { return CELLCOUNT_VERSION_NUMBER; }
const char* cellcount_version_string(void) { return CELLCOUNT_VERSION_STRING; }
uint32_t cellcount_abi_version(void) { return CELLCOUNT_ABI_VERSION; }

const char* cellcount_status_name(cellcount_status s) {
  switch (s) {
    case CELLCOUNT_OK: return "CELLCOUNT_OK";
    case CELLCOUNT_CANCELLED: return "CELLCOUNT_CANCELLED";
    case CELLCOUNT_ERR_INVALID_ARGUMENT: return "CELLCOUNT_ERR_INVALID_ARGUMENT";
    case CELLCOUNT_ERR_BUFFER_TOO_SMALL: return "CELLCOUNT_ERR_BUFFER_TOO_SMALL";
    case CELLCOUNT_ERR_UNSUPPORTED: return "CELLCOUNT_ERR_UNSUPPORTED";
    case CELLCOUNT_ERR_IO: return "CELLCOUNT_ERR_IO";
    case CELLCOUNT_ERR_MODEL_FORMAT: return "CELLCOUNT_ERR_MODEL_FORMAT";
    case CELLCOUNT_ERR_WRONG_METHOD: return "CELLCOUNT_ERR_WRONG_METHOD";
    case CELLCOUNT_ERR_DATASET: return "CELLCOUNT_ERR_DATASET";
    case CELLCOUNT_ERR_OUT_OF_MEMORY: return "CELLCOUNT_ERR_OUT_OF_MEMORY";
    case CELLCOUNT_ERR_DEVICE: return "CELLCOUNT_ERR_DEVICE";
    case CELLCOUNT_ERR_INTERNAL: return "CELLCOUNT_ERR_INTERNAL";
  }
  return "CELLCOUNT_UNKNOWN_STATUS";
}

const char* cellcount_last_error(void) { return t_last_error.c_str(); }

void cellcount_log_set(cellcount_log_fn fn, void* user, int32_t min_level) { log_set(fn, user, min_level); }

cellcount_status cellcount_set_num_threads(int32_t n) {
  return guard([&] { set_threads(n); });
}

void cellcount_string_free(char* s) { std::free(s); }

cellcount_status cellcount_library_info(char** out_json) {
  if (out_json) *out_json = nullptr;
  return guard([&] {
    CC_CHECK(out_json != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "library_info: out_json is NULL");
    nlohmann::json j;
    j["version"] = CELLCOUNT_VERSION_STRING;
    j["abi"] = CELLCOUNT_ABI_VERSION;
    j["devices"] = device_info();
    j["io"] = io::backends();
    j["methods"] = nlohmann::json::array();
    for (const auto* m : all_methods())
      j["methods"].push_back({{"id", m->id},
                              {"display_name", m->display_name},
                              {"description", m->description},
                              {"needs_exemplars", m->needs_exemplars},
                              {"fixture", m->fixture},
                              {"can_train", bool(m->train)}});
    *out_json = dup_string(j.dump());
  });
}

cellcount_status cellcount_model_load(const char* path, cellcount_model** out) {
  if (out) *out = nullptr;
  return guard([&] {
    CC_CHECK(path != nullptr && out != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "model_load: path or out is NULL");
    auto m = std::make_unique<cellcount_model>();
    m->files = read_model(path);
    m->spec = &find_method(m->files.meta["method"].get<std::string>());
    m->method = load_method(*m->spec, m->files);
    m->input = InputSpec::from_json(m->files.meta.value("input", nlohmann::json::object()));
    m->domain = m->files.meta.value("domain", nlohmann::json());
    // A malformed "domain" section is a model format error at load, not at the first count.
    domain_warnings(m->domain, DomainStats{});
    *out = m.release();
  });
}

void cellcount_model_free(cellcount_model* m) { delete m; }

const char* cellcount_model_info(cellcount_model* m) {
  if (!m) return nullptr;
  cellcount_status s = guard([&] {
    nlohmann::json j = m->method->info();
    // "input" as the method reads it (every method takes InputSpec::from_json of model.json's "input"): a
    // model.json without "channels" loaded with the default, but the info echoed the file and had no
    // input.channels for a front end to read (found by the fuzz target model).
    if (j.contains("input") && j["input"].is_object()) j["input"] = InputSpec::from_json(j["input"]).to_json();
    j["method"] = m->spec->id;
    j["display_name"] = m->spec->display_name;
    j["needs_exemplars"] = m->spec->needs_exemplars;
    j["fixture"] = m->spec->fixture;
    j["path"] = m->files.dir;
    // The threshold on the 0-1 scale front ends show and take (cellcount.h, measurements; issue 21 item 8).
    const auto [thr, tuned] = model_peak_threshold(j);
    j["peak_threshold"] = {{"value", thr},
                           {"relative", threshold_to_relative(thr)},
                           {"tuned", tuned},
                           {"min", kRelativeMin},
                           {"max", kRelativeMax},
                           {"rule", "absolute = min * (max / min)^relative"}};
    m->info = j.dump();
  });
  if (s != CELLCOUNT_OK) m->info = "{}";
  return m->info.c_str();
}

cellcount_predict_params cellcount_predict_default_params(void) {
  cellcount_predict_params p;
  std::memset(&p, 0, sizeof p);
  p.struct_size = sizeof(cellcount_predict_params);
  p.device = "auto";
  p.precision = "auto";
  p.tile_size = 0;
  p.tile_overlap = -1;
  p.peak_threshold = NAN;
  p.peak_min_distance = NAN;
  p.options_json = nullptr;
  p.want_density = 1;
  p.progress = nullptr;
  p.progress_user = nullptr;
  return p;
}

cellcount_status cellcount_predict(cellcount_model* m, const cellcount_image_view* img, const cellcount_box* exemplars,
                                   size_t n_exemplars, const cellcount_image_view* region,
                                   const cellcount_predict_params* params, cellcount_result** out) {
  if (out) *out = nullptr;
  return guard([&] {
    CC_CHECK(m != nullptr && img != nullptr && out != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "predict: model, image and out must not be NULL");
    const auto t0 = std::chrono::steady_clock::now();
    const cellcount_predict_params p = params ? *params : cellcount_predict_default_params();
    CC_CHECK(p.struct_size == sizeof(cellcount_predict_params), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "predict: params.struct_size is " + std::to_string(p.struct_size) + ", expected " +
                 std::to_string(sizeof(cellcount_predict_params)) + " (start from cellcount_predict_default_params())");
    CC_CHECK(p.reserved == 0, CELLCOUNT_ERR_INVALID_ARGUMENT, "predict: params.reserved must be 0");
    CC_CHECK(p.tile_size == 0 || p.tile_size >= 32, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "predict: tile_size must be 0 (model default) or >= 32, got " + std::to_string(p.tile_size));
    CC_CHECK(p.tile_overlap == -1 || (p.tile_overlap >= 0 && (p.tile_size == 0 || p.tile_overlap < p.tile_size / 2)),
             CELLCOUNT_ERR_INVALID_ARGUMENT,
             "predict: tile_overlap must be -1 (model default) or 0 <= overlap < tile_size/2, got " +
                 std::to_string(p.tile_overlap));
    CC_CHECK(std::isnan(p.peak_threshold) || p.peak_threshold >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "predict: peak_threshold must be NAN (model's) or >= 0");
    CC_CHECK(std::isnan(p.peak_min_distance) || p.peak_min_distance >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "predict: peak_min_distance must be NAN (model's) or >= 0");
    nlohmann::json caller_options;  // null = every option at the model's / declared value
    if (p.options_json) {
      try {
        caller_options = nlohmann::json::parse(p.options_json);
      } catch (const std::exception& e) {
        fail(CELLCOUNT_ERR_INVALID_ARGUMENT, std::string("predict: params.options_json is not valid JSON: ") + e.what());
      }
      CC_CHECK(caller_options.is_object(), CELLCOUNT_ERR_INVALID_ARGUMENT,
               "predict: params.options_json must be a JSON object of " + m->spec->id + " prediction options");
    }

    // The generic 0-1 threshold (cellcount.h, measurements) rides in options_json; the method never sees it.
    float peak_threshold = p.peak_threshold;
    if (caller_options.is_object() && caller_options.contains("peak_threshold_relative")) {
      const auto& rel = caller_options["peak_threshold_relative"];
      CC_CHECK(rel.is_number() && rel.get<double>() >= 0 && rel.get<double>() <= 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
               "predict: option \"peak_threshold_relative\" must be a number in [0, 1], got " + rel.dump());
      CC_CHECK(std::isnan(p.peak_threshold), CELLCOUNT_ERR_INVALID_ARGUMENT,
               "predict: give either params.peak_threshold or the option \"peak_threshold_relative\", not both");
      peak_threshold = float(threshold_from_relative(rel.get<double>()));
      caller_options.erase("peak_threshold_relative");
    }
    // The generic intensity range (cellcount.h): the method's normalisation takes it instead of the image's own
    // percentiles; null or [] = the image's own. Its values (finite, low < high) and the model's normalisation
    // mode are checked where it is used, by core normalize.
    IntensityRange normalization_range;
    if (caller_options.is_object() && caller_options.contains("normalization_range")) {
      const auto& nr = caller_options["normalization_range"];
      const bool unset = nr.is_null() || (nr.is_array() && nr.empty());
      CC_CHECK(unset || (nr.is_array() && nr.size() == 2 && nr[0].is_number() && nr[1].is_number()),
               CELLCOUNT_ERR_INVALID_ARGUMENT,
               "predict: option \"normalization_range\" must be [low, high], two numbers (or [] for the image's "
               "own percentiles), got " + nr.dump());
      if (!unset) normalization_range = std::make_pair(nr[0].get<double>(), nr[1].get<double>());
      caller_options.erase("normalization_range");
    }

    PredictOptions opt;
    opt.device = resolve_device(p.device ? p.device : "auto");
    const std::string precision_asked = p.precision ? p.precision : "auto";
    opt.precision = resolve_precision(precision_asked, opt.device);
    opt.tile_size = p.tile_size;
    opt.tile_overlap = p.tile_overlap;
    opt.peak_threshold = peak_threshold;
    opt.peak_min_distance = p.peak_min_distance;
    opt.method_options = resolve_method_options(*m->spec, m->files.meta, caller_options);
    opt.want_density = p.want_density != 0;
    opt.normalization_range = normalization_range;
    opt.progress = make_progress(p.progress, p.progress_user);

    torch::Tensor image = view_to_tensor(*img, "image");
    torch::Tensor reg;
    if (region) {
      CC_CHECK(region->dtype == CELLCOUNT_DTYPE_U8 && region->channels == 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
               "region mask: expected uint8 with 1 channel");
      reg = view_to_tensor(*region, "region mask")[0] > 0;
    }
    std::vector<Box> boxes;
    CC_CHECK(n_exemplars == 0 || exemplars != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "predict: n_exemplars is " + std::to_string(n_exemplars) + " but exemplars is NULL");
    // The limit before the copy: n_exemplars = SIZE_MAX read past the caller's array and grew the vector
    // without end (found by the fuzz target predict).
    CC_CHECK(n_exemplars <= kMaxExemplars, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "predict: got " + std::to_string(n_exemplars) + " exemplar boxes; the limit is " +
                 std::to_string(kMaxExemplars));
    for (size_t i = 0; i < n_exemplars; ++i)
      boxes.push_back(Box{exemplars[i].x0, exemplars[i].y0, exemplars[i].x1, exemplars[i].y1});

    // "auto" is a rule of the hardware alone (core/device: bf16 on CUDA and on CPUs with AMX, else fp32), the
    // same for every call: a per-model timing check once chose bf16 on a busy AVX512-BF16 machine for some runs
    // and not others, so the same image got different counts (issue 25).
    auto r = std::make_unique<cellcount_result>();
    r->p = predict_image(*m->method, *m->spec, image, boxes, reg, opt);
    if (r->p.class_counts.empty()) r->p.class_counts = {r->p.count};
    r->device = device_name(opt.device);
    r->precision = precision_name(r->p.precision.value_or(opt.precision));
    r->method = m->spec->id;
    r->counted_pixels = reg.defined() ? double(reg.sum().item<int64_t>()) : double(image.size(1) * image.size(2));
    r->intensities = local_intensities(image, r->p.points, kIntensityRadius);
    // Out-of-domain warnings (issue 24): against model.json's "domain", kept in the result and not logged: each
    // front end shows a result's warnings once, with the image's name (a log line would say them twice).
    const auto stats = domain_stats(image, m->input, normalization_range, r->p, r->counted_pixels);
    r->warnings = prediction_warnings(m->domain, stats, r->p);
    r->warnings_text = r->warnings.dump();
    r->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    *out = r.release();
  });
}

void cellcount_result_free(cellcount_result* r) { delete r; }

double cellcount_result_count(const cellcount_result* r) { return r ? r->p.count : 0.0; }
size_t cellcount_result_n_classes(const cellcount_result* r) { return r ? r->p.class_counts.size() : 0; }
double cellcount_result_class_count(const cellcount_result* r, size_t k) {
  return r && k < r->p.class_counts.size() ? r->p.class_counts[k] : 0.0;
}
size_t cellcount_result_n_points(const cellcount_result* r) { return r ? r->p.points.size() : 0; }
const char* cellcount_result_device(const cellcount_result* r) { return r ? r->device.c_str() : nullptr; }
const char* cellcount_result_precision(const cellcount_result* r) { return r ? r->precision.c_str() : nullptr; }
double cellcount_result_seconds(const cellcount_result* r) { return r ? r->seconds : 0.0; }
const char* cellcount_result_warnings(const cellcount_result* r) { return r ? r->warnings_text.c_str() : nullptr; }

cellcount_status cellcount_result_points(const cellcount_result* r, float* xy, int32_t* class_ids, float* scores,
                                         size_t capacity) {
  return guard([&] {
    CC_CHECK(r != nullptr && xy != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "result_points: result or xy is NULL");
    const auto& pts = r->p.points;
    CC_CHECK(capacity >= pts.size(), CELLCOUNT_ERR_BUFFER_TOO_SMALL,
             "result_points: capacity " + std::to_string(capacity) + " < " + std::to_string(pts.size()) + " points");
    for (size_t i = 0; i < pts.size(); ++i) {
      xy[2 * i] = pts[i].x;
      xy[2 * i + 1] = pts[i].y;
      if (class_ids) class_ids[i] = pts[i].cls;
      if (scores) scores[i] = pts[i].score;
    }
  });
}

namespace {
const torch::Tensor& result_tensor(const cellcount_result* r, int32_t kind) {
  switch (kind) {
    case CELLCOUNT_IMAGE_DENSITY: return r->p.density;
    case CELLCOUNT_IMAGE_MASK: return r->p.mask;
    case CELLCOUNT_IMAGE_RECONSTRUCTION: return r->p.reconstruction;
  }
  fail(CELLCOUNT_ERR_INVALID_ARGUMENT, "result image: unknown kind " + std::to_string(kind));
}
}  // namespace

cellcount_status cellcount_result_image_size(const cellcount_result* r, int32_t kind, int64_t* width, int64_t* height,
                                             int64_t* channels) {
  return guard([&] {
    CC_CHECK(r && width && height && channels, CELLCOUNT_ERR_INVALID_ARGUMENT, "result_image_size: NULL argument");
    const auto& t = result_tensor(r, kind);
    *width = *height = *channels = 0;
    if (!t.defined()) return;
    *channels = t.dim() == 3 ? t.size(0) : 1;
    *height = t.size(-2);
    *width = t.size(-1);
  });
}

cellcount_status cellcount_result_image(const cellcount_result* r, int32_t kind, float* dst, size_t capacity) {
  return guard([&] {
    CC_CHECK(r && dst, CELLCOUNT_ERR_INVALID_ARGUMENT, "result_image: NULL argument");
    const auto& t = result_tensor(r, kind);
    CC_CHECK(t.defined(), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "result_image: this result has no image of kind " + std::to_string(kind) +
                 (kind == CELLCOUNT_IMAGE_DENSITY ? " (was want_density 0?)" : ""));
    auto hwc = (t.dim() == 3 ? t.permute({1, 2, 0}) : t).to(torch::kCPU, torch::kFloat32).contiguous();
    CC_CHECK(capacity >= size_t(hwc.numel()), CELLCOUNT_ERR_BUFFER_TOO_SMALL,
             "result_image: capacity " + std::to_string(capacity) + " < " + std::to_string(hwc.numel()) + " floats");
    std::memcpy(dst, hwc.data_ptr<float>(), sizeof(float) * hwc.numel());
  });
}

cellcount_status cellcount_train(const char* request_json, cellcount_progress_fn progress, void* user,
                                 char** out_report) {
  if (out_report) *out_report = nullptr;
  return guard([&] {
    CC_CHECK(out_report != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "train: out_report is NULL");
    auto req = parse_request(request_json, "train");
    CC_CHECK(req.contains("method") && req["method"].is_string(), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "train: the request needs a \"method\" string");
    const auto& spec = find_method(req["method"]);
    CC_CHECK(bool(spec.train), CELLCOUNT_ERR_UNSUPPORTED, "method \"" + spec.id + "\" cannot be trained in this build");
    *out_report = dup_string(spec.train(req, make_progress(progress, user)).dump());
  });
}

cellcount_status cellcount_evaluate(const char* request_json, cellcount_progress_fn progress, void* user,
                                    char** out_report) {
  if (out_report) *out_report = nullptr;
  return guard([&] {
    CC_CHECK(out_report != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "evaluate: out_report is NULL");
    auto req = parse_request(request_json, "evaluate");
    std::string method = req.value("method", "");
    if (method.empty() && req.contains("model") && req["model"].is_string())
      method = read_model(req["model"]).meta["method"].get<std::string>();
    CC_CHECK(!method.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, "evaluate: the request needs \"model\" (a model folder)");
    const auto& spec = find_method(method);
    const auto pr = make_progress(progress, user);
    *out_report = dup_string((spec.evaluate ? spec.evaluate(req, pr) : evaluate_counts(req, pr)).dump());
  });
}

cellcount_status cellcount_synthesize(const char* request_json, cellcount_progress_fn progress, void* user,
                                      char** out_report) {
  if (out_report) *out_report = nullptr;
  return guard([&] {
    CC_CHECK(out_report != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "synthesize: out_report is NULL");
    auto req = parse_request(request_json, "synthesize");
    const std::string method = req.value("method", "");
    const auto pr = make_progress(progress, user);
    if (!method.empty() && find_method(method).synthesize) {
      *out_report = dup_string(find_method(method).synthesize(req, pr).dump());
    } else {
      *out_report = dup_string(synthesize_cells(req, pr).dump());
    }
  });
}

cellcount_status cellcount_request_defaults(const char* method, const char* kind, char** out_json) {
  if (out_json) *out_json = nullptr;
  return guard([&] {
    CC_CHECK(method && kind && out_json, CELLCOUNT_ERR_INVALID_ARGUMENT, "request_defaults: NULL argument");
    *out_json = dup_string(request_defaults_of(method, kind, "request_defaults").dump());
  });
}

cellcount_status cellcount_request_options(const char* method, const char* kind, char** out_json) {
  if (out_json) *out_json = nullptr;
  return guard([&] {
    CC_CHECK(method && kind && out_json, CELLCOUNT_ERR_INVALID_ARGUMENT, "request_options: NULL argument");
    const std::string m = method, k = kind;
    check_kind(k, "request_options");
    Options o = declared_options(m, k);
    // Fields not (yet) declared by the method: listed from its defaults, typed by their value.
    const nlohmann::json defaults = request_defaults_of(m, k, "request_options");
    for (const auto& [name, value] : defaults.items())
      if (!find_option(o, name)) o.push_back(option_from_default(name, value));
    *out_json = dup_string(option_metadata(o).dump());
  });
}

cellcount_status cellcount_metrics(const char* request_json, char** out_report) {
  if (out_report) *out_report = nullptr;
  return guard([&] {
    CC_CHECK(out_report != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "metrics: out_report is NULL");
    const auto req = parse_request(request_json, "metrics");
    for (const auto& [k, v] : req.items())
      CC_CHECK(k == "predicted" || k == "truth" || k == "points" || k == "radius", CELLCOUNT_ERR_INVALID_ARGUMENT,
               "metrics: unknown field \"" + k + "\" (known: predicted, truth, points, radius)");
    const auto pred = numbers_of(req, "predicted", "metrics"), truth = numbers_of(req, "truth", "metrics");
    CC_CHECK(pred.size() == truth.size(), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "metrics: \"predicted\" has " + std::to_string(pred.size()) + " counts, \"truth\" " +
                 std::to_string(truth.size()));
    const CountMetrics cm = count_metrics(pred, truth);
    nlohmann::json r{{"n", cm.n},     {"mae", cm.mae}, {"rmse", cm.rmse},         {"nae", cm.nae},
                     {"sre", cm.sre}, {"mre", cm.mre}, {"accuracy", cm.accuracy}};
    if (req.contains("points")) {
      const auto& pts = req["points"];
      CC_CHECK(pts.is_array(), CELLCOUNT_ERR_INVALID_ARGUMENT, "metrics: \"points\" must be a list of {predicted, truth}");
      CC_CHECK(req.contains("radius") && req["radius"].is_number() && req["radius"].get<double>() > 0 &&
                   std::isfinite(req["radius"].get<double>()),
               CELLCOUNT_ERR_INVALID_ARGUMENT, "metrics: \"points\" needs \"radius\" (pixels, > 0)");
      const double radius = req["radius"];
      size_t tp = 0, fp = 0, fn = 0;
      for (size_t i = 0; i < pts.size(); ++i) {
        const std::string where = "metrics: points[" + std::to_string(i) + "]";
        CC_CHECK(pts[i].is_object(), CELLCOUNT_ERR_INVALID_ARGUMENT, where + " must be {\"predicted\", \"truth\"}");
        const auto mr = match_points(point_list(pts[i], "predicted", where), point_list(pts[i], "truth", where), radius);
        tp += mr.tp;
        fp += mr.fp;
        fn += mr.fn;
      }
      const double precision = tp + fp ? double(tp) / double(tp + fp) : 1.0;
      const double recall = tp + fn ? double(tp) / double(tp + fn) : 1.0;
      r.update({{"radius", radius}, {"tp", tp}, {"fp", fp}, {"fn", fn}, {"precision", precision}, {"recall", recall},
                {"f1", precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0}});
    }
    *out_report = dup_string(r.dump());
  });
}

cellcount_status cellcount_dataset_read(const char* dir, const char* split_file, char** out_json) {
  if (out_json) *out_json = nullptr;
  return guard([&] {
    CC_CHECK(dir && out_json, CELLCOUNT_ERR_INVALID_ARGUMENT, "dataset_read: dir or out_json is NULL");
    const Dataset ds = load_dataset(dir, split_file ? split_file : "");
    nlohmann::json j{{"root", ds.root}, {"classes", ds.class_names}, {"split_source", ds.split_source}};
    j["samples"] = nlohmann::json::array();
    for (const auto& s : ds.samples) {
      nlohmann::json o{{"image", s.image}, {"split", s.split}};
      o["count"] = s.count ? nlohmann::json(*s.count) : nlohmann::json();
      if (s.has_points) {
        o["points"] = nlohmann::json::array();
        for (const auto& p : s.points) o["points"].push_back({p.x, p.y, p.cls});
      }
      o["boxes"] = nlohmann::json::array();
      for (const auto& b : s.boxes) o["boxes"].push_back({b.x0, b.y0, b.x1, b.y1});
      j["samples"].push_back(std::move(o));
    }
    *out_json = dup_string(j.dump());
  });
}

cellcount_status cellcount_split(const char* request_json, char** out_report) {
  if (out_report) *out_report = nullptr;
  return guard([&] {
    CC_CHECK(out_report != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "split: out_report is NULL");
    const Options declared = {
        Opt::path("dataset").help("dataset folder (points.csv / counts.csv)"),
        Opt::path("out").help("split CSV to write (image,split); never overwritten unless overwrite"),
        Opt::number_list("ratios", {10, 9, 1}).at_least(0).help("train, test, val proportions"),
        Opt::integer("seed", 0).range(0, INT64_MAX).help("shuffle seed"),
        Opt::boolean("overwrite", false).help("replace an existing out file")};
    const auto req = resolve_options("split", declared, parse_request(request_json, "split"));
    const std::string dataset = req["dataset"], out = req["out"];
    CC_CHECK(!dataset.empty() && !out.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, "split: \"dataset\" and \"out\" are required");
    const auto r = req["ratios"].get<std::vector<double>>();
    CC_CHECK(r.size() == 3 && r[0] + r[1] + r[2] > 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "split: \"ratios\" expects [train, test, val] with a positive sum, e.g. [10, 9, 1]");
    Dataset ds = load_dataset(dataset, "");
    assign_split(ds, r[0], r[1], r[2], req["seed"].get<uint64_t>());
    write_split(ds, out, req["overwrite"].get<bool>());
    *out_report = dup_string(nlohmann::json{{"out", out},
                                            {"train", ds.indices("train").size()},
                                            {"test", ds.indices("test").size()},
                                            {"val", ds.indices("val").size()}}
                                 .dump());
  });
}

cellcount_status cellcount_export(const char* request_json, char** out_report) {
  if (out_report) *out_report = nullptr;
  return guard([&] {
    const auto report = export_model(parse_request(request_json, "export"));
    if (out_report) *out_report = dup_string(report.dump());
  });
}

int32_t cellcount_is_image_file(const char* path) {
  if (!path) return 0;
  try {
    return io::is_image_file(path) ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

cellcount_status cellcount_image_read(const char* path, cellcount_image** out) {
  if (out) *out = nullptr;
  return guard([&] {
    CC_CHECK(path != nullptr && out != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "image_read: path or out is NULL");
    auto im = std::make_unique<cellcount_image>();
    im->planes = io::read_image_stack(path);
    CC_CHECK(!im->planes.empty(), CELLCOUNT_ERR_IO, std::string("'") + path + "' holds no image plane");
    *out = im.release();
  });
}

void cellcount_image_free(cellcount_image* im) { delete im; }

size_t cellcount_image_n_planes(const cellcount_image* im) { return im ? im->planes.size() : 0; }

int32_t cellcount_image_source_dtype(const cellcount_image* im) {
  if (!im || im->planes.empty()) return 0;
  const std::string& d = im->planes[0].source_dtype;
  return d == "u8" ? CELLCOUNT_DTYPE_U8 : d == "u16" ? CELLCOUNT_DTYPE_U16 : CELLCOUNT_DTYPE_F32;
}

cellcount_status cellcount_image_plane(const cellcount_image* im, size_t z, cellcount_image_view* out) {
  return guard([&] {
    CC_CHECK(im != nullptr && out != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "image_plane: image or out is NULL");
    CC_CHECK(z < im->planes.size(), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "image_plane: plane " + std::to_string(z) + " of " + std::to_string(im->planes.size()));
    const Image& p = im->planes[z];
    *out = cellcount_image_view{p.data.data(), p.width, p.height, p.channels, 0, CELLCOUNT_DTYPE_F32, 0};
  });
}

cellcount_status cellcount_image_write(const char* path, const cellcount_image_view* img, int32_t bit_depth,
                                       int32_t overwrite) {
  return guard([&] {
    CC_CHECK(path != nullptr && img != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "image_write: path or image is NULL");
    CC_CHECK(bit_depth == 8 || bit_depth == 16 || bit_depth == 32, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "image_write: bit_depth must be 8, 16 or 32, got " + std::to_string(bit_depth));
    io::write_image(path, view_to_image(*img), bit_depth, overwrite != 0);
  });
}

cellcount_status cellcount_overlay_write(const char* path, const cellcount_image_view* img, const float* xy,
                                         const int32_t* class_ids, size_t n_points, int32_t radius,
                                         int32_t overwrite) {
  return guard([&] {
    CC_CHECK(path != nullptr && img != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "overlay_write: path or image is NULL");
    CC_CHECK(n_points == 0 || xy != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "overlay_write: n_points is " + std::to_string(n_points) + " but xy is NULL");
    CC_CHECK(radius >= 0 && radius <= 1000, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "overlay_write: radius must be in 0..1000, got " + std::to_string(radius));
    std::vector<Point> pts(n_points);
    for (size_t i = 0; i < n_points; ++i) {
      CC_CHECK(std::isfinite(xy[2 * i]) && std::isfinite(xy[2 * i + 1]), CELLCOUNT_ERR_INVALID_ARGUMENT,
               "overlay_write: point " + std::to_string(i) + " is not finite");
      pts[i] = Point{xy[2 * i], xy[2 * i + 1], class_ids ? class_ids[i] : 0, 1.0f};
    }
    io::write_overlay(path, view_to_image(*img), pts, radius, overwrite != 0);
  });
}

cellcount_status cellcount_peak_threshold_convert(double value, int32_t to_relative, double* out) {
  return guard([&] {
    CC_CHECK(out != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "peak_threshold_convert: out is NULL");
    CC_CHECK(std::isfinite(value) && value >= 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "peak_threshold_convert: the threshold must be a finite number >= 0, got " + std::to_string(value));
    CC_CHECK(to_relative || value <= 1, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "peak_threshold_convert: a relative threshold must be in [0, 1], got " + std::to_string(value));
    *out = to_relative ? threshold_to_relative(value) : threshold_from_relative(value);
  });
}

cellcount_status cellcount_result_measure(const cellcount_result* r, const char* request_json, char** out_json) {
  if (out_json) *out_json = nullptr;
  return guard([&] {
    CC_CHECK(r != nullptr && out_json != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "result_measure: result or out is NULL");
    nlohmann::json req = nlohmann::json::object();
    if (request_json) {
      try {
        req = nlohmann::json::parse(request_json);
      } catch (const std::exception& e) {
        fail(CELLCOUNT_ERR_INVALID_ARGUMENT, std::string("result_measure: request is not valid JSON: ") + e.what());
      }
      CC_CHECK(req.is_object(), CELLCOUNT_ERR_INVALID_ARGUMENT, "result_measure: request must be a JSON object");
    }
    for (const auto& [k, v] : req.items())
      CC_CHECK(k == "pixel_width" || k == "pixel_height" || k == "unit" || k == "points", CELLCOUNT_ERR_INVALID_ARGUMENT,
               "result_measure: unknown field \"" + k + "\" (pixel_width, pixel_height, unit, points)");
    CC_CHECK(!req.contains("points") || req["points"].is_boolean(), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "result_measure: \"points\" must be true or false, got " + req.value("points", nlohmann::json()).dump());
    const bool with_points = req.value("points", true);
    const double pw = positive_number(req, "pixel_width", 1.0), ph = positive_number(req, "pixel_height", 1.0);
    std::string unit = "pixel";
    if (req.contains("unit")) {
      CC_CHECK(req["unit"].is_string(), CELLCOUNT_ERR_INVALID_ARGUMENT, "result_measure: \"unit\" must be a string");
      unit = req["unit"].get<std::string>();
    }
    // As ImageJ's Calibration.scaled() and napari's layer scale: a unit other than pixels, or a pixel size
    // other than 1.
    const bool calibrated = !(unit.empty() || unit == "pixel" || unit == "pixels" || unit == "px") || pw != 1.0 || ph != 1.0;
    const double area = r->counted_pixels * pw * ph;
    nlohmann::json rep{{"count", r->p.count},
                       {"n_points", r->p.points.size()},
                       {"counted_pixels", r->counted_pixels},
                       {"area", area},
                       {"unit", unit},
                       {"calibrated", calibrated},
                       {"cells_per_unit2", calibrated && area > 0 ? nlohmann::json(r->p.count / area) : nlohmann::json()},
                       {"intensity_radius", kIntensityRadius},
                       // the cell-size setting of models with one (issue 24): the diameter counted with, in pixels,
                       // "given" or "estimated"; null for the others
                       {"diameter", r->p.diameter_json()}};
    // Each class's share of the classified cells (issue 22: per-class counts and proportions in every front
    // end's table), in the model's class order; null for every class when no cell was counted.
    double class_total = 0;
    for (double c : r->p.class_counts) class_total += c;
    nlohmann::json fractions = nlohmann::json::array();
    for (double c : r->p.class_counts) fractions.push_back(class_total > 0 ? nlohmann::json(c / class_total) : nlohmann::json());
    rep["class_fractions"] = fractions;
    std::vector<int32_t> labels;
    int32_t n_labels = 0;
    const bool has_mask = r->p.mask.defined() && r->p.mask.dim() == 2;
    if (has_mask) {
      n_labels = label_components(r->p.mask, labels);
      rep["labels"] = {{"available", true}, {"n", n_labels}, {"source", r->method + " mask > 0.5, 8-connected components"}};
    } else {
      rep["labels"] = {{"available", false}, {"n", 0}, {"reason", no_labels_reason(*r)}};
    }
    nlohmann::json pts = nlohmann::json::array();
    const auto& ps = r->p.points;
    for (size_t i = 0; with_points && i < ps.size(); ++i) {
      const double in = i < r->intensities.size() ? double(r->intensities[i]) : NAN;
      int32_t label = 0;
      if (has_mask) {
        const int64_t h = r->p.mask.size(0), w = r->p.mask.size(1);
        const int64_t x = std::llround(double(ps[i].x)), y = std::llround(double(ps[i].y));
        if (x >= 0 && x < w && y >= 0 && y < h) label = labels[size_t(y * w + x)];
      }
      pts.push_back({{"x", ps[i].x}, {"y", ps[i].y}, {"class", ps[i].cls}, {"score", ps[i].score},
                     {"intensity", std::isfinite(in) ? nlohmann::json(in) : nlohmann::json()}, {"label", label}});
    }
    rep["points"] = std::move(pts);
    rep["warnings"] = r->warnings;
    *out_json = dup_string(rep.dump());
  });
}

cellcount_status cellcount_result_labels(const cellcount_result* r, int32_t* dst, size_t capacity) {
  return guard([&] {
    CC_CHECK(r != nullptr && dst != nullptr, CELLCOUNT_ERR_INVALID_ARGUMENT, "result_labels: result or dst is NULL");
    CC_CHECK(r->p.mask.defined() && r->p.mask.dim() == 2, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "result_labels: " + no_labels_reason(*r));
    const size_t need = size_t(r->p.mask.numel());
    CC_CHECK(capacity >= need, CELLCOUNT_ERR_BUFFER_TOO_SMALL,
             "result_labels: capacity " + std::to_string(capacity) + " < " + std::to_string(need) + " pixels");
    std::vector<int32_t> labels;
    label_components(r->p.mask, labels);
    std::memcpy(dst, labels.data(), labels.size() * sizeof(int32_t));
  });
}

}  // extern "C"
