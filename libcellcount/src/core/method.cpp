#include "core/method.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/device.h"
#include "core/error.h"
#include "core/limits.h"
#include "core/peaks.h"
#include "core/train_run.h"

namespace cellcount {

namespace {
// Never destroyed: a front end's thread may still ask for methods (library info, defaults) while the process
// exits. A destroyed map there crashed ImageJ (SIGSEGV in cellcount_library_info) when it was killed
// during a count; a map that outlives the static destructors cannot.
// The built-in methods are added once, before the first lookup or registration (a function-local static:
// thread-safe, and no static-initialisation order to depend on).
std::map<std::string, MethodSpec>& registry() {
  static auto* r = [] {
    auto* m = new std::map<std::string, MethodSpec>;
    for (MethodFactory make : builtin_method_factories()) {
      MethodSpec s = make();
      (*m)[s.id] = std::move(s);
    }
    return m;
  }();
  return *r;
}
}  // namespace

bool register_method(MethodSpec spec) {
  registry()[spec.id] = std::move(spec);
  return true;
}

const MethodSpec& find_method(const std::string& id) {
  auto it = registry().find(id);
  if (it == registry().end()) {
    std::string known;
    for (const auto& [k, v] : registry())
      if (!v.fixture) known += (known.empty() ? "" : ", ") + k;
    fail(CELLCOUNT_ERR_WRONG_METHOD, "unknown method \"" + id + "\"; this build has: " + known);
  }
  return it->second;
}

std::vector<const MethodSpec*> all_methods() {
  std::vector<const MethodSpec*> out;
  for (const auto& [k, v] : registry()) out.push_back(&v);
  return out;
}

nlohmann::json InputSpec::to_json() const {
  nlohmann::json j{{"channels", channels}, {"normalization", normalization.to_json()}, {"align", align},
                   {"min_side", min_side}};
  j["rgb_rule"] = rgb_rule;
  return j;
}

InputSpec InputSpec::from_json(const nlohmann::json& j) {
  InputSpec s;
  check_field_types(j, s.to_json(), "input");
  s.channels = j.value("channels", s.channels);
  s.rgb_rule = j.value("rgb_rule", s.rgb_rule);
  if (j.contains("normalization")) s.normalization = Normalization::from_json(j["normalization"]);
  s.align = j.value("align", s.align);
  s.min_side = j.value("min_side", s.min_side);
  // A model no image can feed (channels beyond the views' limit) is refused at load (the fuzz target model
  // found channels 9223372036854775807 loaded and reported by model_info).
  CC_CHECK(s.channels >= 1 && s.channels <= kMaxChannels && s.align >= 1 && s.align <= 4096 && s.min_side >= 1,
           CELLCOUNT_ERR_MODEL_FORMAT,
           "model.json input: channels must be in 1.." + std::to_string(kMaxChannels) +
               ", align in 1..4096 and min_side >= 1; got channels " + std::to_string(s.channels) + ", align " +
               std::to_string(s.align) + ", min_side " + std::to_string(s.min_side));
  return s;
}

torch::Tensor InputSpec::prepare(const torch::Tensor& raw, const IntensityRange& range) const {
  return normalize(convert(raw), normalization, range);
}

torch::Tensor InputSpec::convert(const torch::Tensor& raw) const {
  const int64_t h = raw.size(1), w = raw.size(2);
  CC_CHECK(h >= min_side && w >= min_side, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "image: expected at least " + std::to_string(min_side) + " x " + std::to_string(min_side) + " pixels, got " +
               std::to_string(w) + " x " + std::to_string(h));
  return convert_channels_of(raw);
}

torch::Tensor InputSpec::convert_channels_of(const torch::Tensor& raw) const {
  const int64_t c = raw.size(0);
  if (c == channels) return raw;
  if (channels == 3 && rgb_rule == "replicate" && (c == 1 || c == 4))  // convert_channels' "rgb" rule, RGBA as RGB
    return convert_channels(raw.slice(0, 0, std::min<int64_t>(c, 3)), "rgb");
  const bool reducible = channels == 1 && !rgb_rule.empty() && (c == 3 || c == 4);
  CC_CHECK(reducible, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "image: this model takes " + std::to_string(channels) + " channel(s)" +
               (channels == 1 && !rgb_rule.empty() ? " (or RGB)" : channels == 3 && rgb_rule == "replicate" ? " (or 1)" : "") +
               ", got " + std::to_string(c));
  return convert_channels(raw.slice(0, 0, 3), rgb_rule);
}

std::unique_ptr<Method> load_method(const MethodSpec& spec, const ModelFiles& files) {
  const std::string json_path = (std::filesystem::path(files.dir) / "model.json").string();
  // Every method predicts through run_tiled with the model's tiling (resolve_tiling): without the section
  // a model loaded and failed at its first predict with a raw JSON message.
  CC_CHECK(files.meta.contains("tiling"), CELLCOUNT_ERR_MODEL_FORMAT,
           "'" + json_path + "' has no \"tiling\" section ({\"tile_size\", \"overlap\"})");
  std::lock_guard<std::mutex> lock(torch_rng_mutex());
  try {
    return spec.load(files);
  } catch (const nlohmann::json::exception& e) {
    fail(CELLCOUNT_ERR_MODEL_FORMAT, "'" + json_path + "': a " + spec.id +
                                         " model.json field is missing or has the wrong type: " + e.what());
  } catch (const c10::Error& e) {
    const std::string m = e.what_without_backtrace();
    if (m.find("out of memory") != std::string::npos || m.find("can't allocate") != std::string::npos) throw;
    fail(CELLCOUNT_ERR_MODEL_FORMAT, "'" + json_path + "' describes a " + spec.id +
                                         " network that cannot be built: " + m.substr(0, m.find('\n')));
  }
}

torch::Tensor mask_density(const torch::Tensor& density, const torch::Tensor& region) {
  return region.defined() ? density * region.to(density.device(), density.scalar_type()) : density;
}

std::vector<Point> points_in_region(const std::vector<Point>& points, const torch::Tensor& region) {
  if (!region.defined()) return points;
  const auto r = region.to(torch::kCPU, torch::kBool).contiguous();
  const int64_t H = r.size(0), W = r.size(1);
  const bool* m = r.data_ptr<bool>();
  std::vector<Point> out;
  for (const auto& q : points) {
    const int64_t ix = std::clamp<int64_t>(std::llround(q.x), 0, W - 1), iy = std::clamp<int64_t>(std::llround(q.y), 0, H - 1);
    if (m[iy * W + ix]) out.push_back(q);
  }
  return out;
}

std::pair<int64_t, int64_t> resolve_tiling(int64_t tile_size, int64_t tile_overlap, const nlohmann::json& model_tiling) {
  const bool has = model_tiling.is_object();  // checked by read_model: tile >= 32, overlap < tile/2
  const int64_t model_tile = has ? model_tiling.at("tile_size").get<int64_t>() : 0;
  const int64_t model_overlap = has ? model_tiling.at("overlap").get<int64_t>() : -1;
  const int64_t tile = tile_size > 0 ? tile_size : model_tile;
  int64_t overlap = tile_overlap;
  if (overlap < 0 && has) overlap = tile >= model_tile ? model_overlap : model_overlap * tile / model_tile;
  if (overlap < 0 && tile > 0) overlap = tile / 8;  // a tile asked of a model without a tiling section
  if (tile > 0)
    CC_CHECK(overlap >= 0 && 2 * overlap < tile, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "predict: tile_overlap " + std::to_string(overlap) + " must be < tile_size/2 with tile_size " +
                 std::to_string(tile) + (tile_size > 0 ? "" : " (the model's default)"));
  return {tile, tile > 0 ? overlap : tile_overlap};
}

Prediction density_prediction(torch::Tensor density, const torch::Tensor& region, float peak_threshold,
                              float peak_min_distance, bool want_density) {
  density = mask_density(density.to(torch::kCPU, torch::kFloat32), region).contiguous();
  Prediction p;
  p.count = density.sum().item<double>();
  p.class_counts = {p.count};
  // Peaks are found on the masked map, then kept by the same rule as every method's: with threshold 0 the
  // zeros outside the region are local maxima too.
  p.points = points_in_region(find_peaks(density.data_ptr<float>(), density.size(0), density.size(1), peak_threshold,
                                         peak_min_distance),
                              region);
  if (want_density) p.density = density;
  return p;
}

Options method_options(const MethodSpec& spec, const std::string& kind) {
  return spec.options ? spec.options(kind) : Options{};
}

nlohmann::json method_request_defaults(const MethodSpec& spec, const std::string& kind) {
  const Options o = method_options(spec, kind);
  if (!o.empty()) return option_defaults(o);
  return spec.request_defaults ? spec.request_defaults(kind) : nlohmann::json();
}

nlohmann::json resolve_method_options(const MethodSpec& spec, const nlohmann::json& model_meta,
                                      const nlohmann::json& caller) {
  const Options declared = method_options(spec, "predict");
  const std::string context = spec.id + " prediction options";
  CC_CHECK(caller.is_null() || caller.is_object(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           context + ": expected a JSON object, got " + std::string(caller.type_name()));
  if (caller.is_object())
    for (const auto& [k, v] : caller.items())
      if (!find_option(declared, k)) {
        std::string known;
        for (const auto& o : declared) known += (known.empty() ? "" : ", ") + o.name;
        fail(CELLCOUNT_ERR_INVALID_ARGUMENT, context + ": unknown option \"" +
                                                 (k.size() > 64 ? k.substr(0, 61) + "..." : k) + "\" (known: " +
                                                 (known.empty() ? "none" : known) + ")");
      }
  const nlohmann::json* thresholds =
      model_meta.is_object() && model_meta.contains("thresholds") && model_meta["thresholds"].is_object()
          ? &model_meta["thresholds"]
          : nullptr;
  nlohmann::json out = nlohmann::json::object();
  for (const auto& o : declared) {
    const nlohmann::json c = caller.is_object() && caller.contains(o.name) ? caller[o.name] : nlohmann::json();
    const nlohmann::json mv = thresholds && thresholds->contains(o.name) ? (*thresholds)[o.name] : nlohmann::json();
    out[o.name] = resolve_setting(context, o, c, mv);
  }
  return out;
}

void check_request_fields(const nlohmann::json& request, const nlohmann::json& defaults) {
  CC_CHECK(request.is_object(), CELLCOUNT_ERR_INVALID_ARGUMENT, "request: expected a JSON object");
  for (const auto& [k, v] : request.items()) {
    CC_CHECK(defaults.contains(k), CELLCOUNT_ERR_INVALID_ARGUMENT,
             "request: unknown field \"" + k + "\" (known: " + [&] {
               std::string s;
               for (const auto& [dk, dv] : defaults.items()) s += (s.empty() ? "" : ", ") + dk;
               return s;
             }() + ")");
    const auto& d = defaults[k];
    const bool ok = d.is_null() || v.is_null() || (d.is_number() && v.is_number()) ||
                    (d.is_string() && v.is_string()) || (d.is_boolean() && v.is_boolean()) ||
                    (d.is_array() && v.is_array()) || (d.is_object() && v.is_object());
    CC_CHECK(ok, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "request: field \"" + k + "\" expected " + d.type_name() + ", got " + v.type_name());
  }
}

ModelMethod::ModelMethod(nlohmann::json meta) : meta_(std::move(meta)) {
  spec_ = InputSpec::from_json(meta_.at("input"));
  const auto th = meta_.value("thresholds", nlohmann::json::object());
  peak_threshold_ = th.value("peak_threshold", peak_threshold_);
  peak_min_distance_ = th.value("peak_min_distance", peak_min_distance_);
}

nlohmann::json ModelMethod::info() const {
  nlohmann::json j = meta_;
  j["device"] = device_name(device_);
  return j;
}

std::pair<float, float> ModelMethod::peak_settings(const PredictOptions& o) const {
  return {std::isnan(o.peak_threshold) ? peak_threshold_ : o.peak_threshold,
          std::isnan(o.peak_min_distance) ? peak_min_distance_ : o.peak_min_distance};
}

void ModelMethod::move_to(torch::nn::Module& module, const torch::Device& device) {
  if (device == device_) return;
  module.to(device);
  device_ = device;
}

}  // namespace cellcount
