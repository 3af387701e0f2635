// The C ABI: extern "C" shims over the core and the method registry. guard() turns every exception into a
// status and a thread-local message; nothing escapes.
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>
#include <string>

#include "cellcount/cellcount.h"
#include "core/device.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/image_tensor.h"
#include "core/log.h"
#include "core/method.h"
#include "core/model_io.h"
#include "io/image_file.h"

using namespace cellcount;

struct cellcount_model {
  const MethodSpec* spec = nullptr;
  ModelFiles files;
  std::unique_ptr<Method> method;
  std::string info;  // cache for cellcount_model_info
};

struct cellcount_result {
  Prediction p;
  std::string device, precision;
  double seconds = 0;
};

namespace {

thread_local std::string t_last_error;

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
      r["threads"].get<int64_t>() <= 256)
    set_threads(r["threads"].get<int>());
  return r;
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
    *out = m.release();
  });
}

void cellcount_model_free(cellcount_model* m) { delete m; }

const char* cellcount_model_info(cellcount_model* m) {
  if (!m) return nullptr;
  cellcount_status s = guard([&] {
    nlohmann::json j = m->method->info();
    j["method"] = m->spec->id;
    j["display_name"] = m->spec->display_name;
    j["needs_exemplars"] = m->spec->needs_exemplars;
    j["fixture"] = m->spec->fixture;
    j["path"] = m->files.dir;
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
  p.precision = "fp32";
  p.tile_size = 0;
  p.tile_overlap = -1;
  p.peak_threshold = NAN;
  p.peak_min_distance = NAN;
  p.mask_threshold = NAN;
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
    CC_CHECK(std::isnan(p.mask_threshold) || (p.mask_threshold >= 0 && p.mask_threshold <= 1),
             CELLCOUNT_ERR_INVALID_ARGUMENT, "predict: mask_threshold must be NAN (model's) or in [0,1]");

    PredictOptions opt;
    opt.device = resolve_device(p.device ? p.device : "auto");
    opt.precision = resolve_precision(p.precision ? p.precision : "fp32", opt.device);
    opt.tile_size = p.tile_size;
    opt.tile_overlap = p.tile_overlap;
    opt.peak_threshold = p.peak_threshold;
    opt.peak_min_distance = p.peak_min_distance;
    opt.mask_threshold = p.mask_threshold;
    opt.want_density = p.want_density != 0;
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
    for (size_t i = 0; i < n_exemplars; ++i)
      boxes.push_back(Box{exemplars[i].x0, exemplars[i].y0, exemplars[i].x1, exemplars[i].y1});

    auto r = std::make_unique<cellcount_result>();
    r->p = predict_image(*m->method, *m->spec, image, boxes, reg, opt);
    if (r->p.class_counts.empty()) r->p.class_counts = {r->p.count};
    r->device = device_name(opt.device);
    r->precision = precision_name(opt.precision);
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
    const std::string k = kind;
    CC_CHECK(k == "train" || k == "evaluate" || k == "synthesize", CELLCOUNT_ERR_INVALID_ARGUMENT,
             "request_defaults: kind must be \"train\", \"evaluate\" or \"synthesize\", got \"" + k + "\"");
    const auto& spec = find_method(method);
    nlohmann::json j = method_request_defaults(spec, k);
    if (j.is_null() && k == "evaluate") j = evaluate_defaults();
    if (j.is_null() && k == "synthesize") j = synthesize_defaults();
    CC_CHECK(!j.is_null(), CELLCOUNT_ERR_UNSUPPORTED, "method \"" + spec.id + "\" has no " + k + " request");
    j["method"] = spec.id;
    *out_json = dup_string(j.dump());
  });
}

}  // extern "C"
