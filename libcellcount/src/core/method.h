// The method interface and registry. The core knows no method: each method folder defines a factory
// `MethodSpec cellcount::method_spec_<id>()`, the build generates the list of them (libcellcount/CMakeLists.txt,
// from src/methods/*/method.cmake), and the C ABI, CLI and front ends dispatch through the registry by the
// "method" string of model.json or of a request.
#pragma once
#include <cmath>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/image_tensor.h"
#include "core/model_io.h"
#include "core/options.h"
#include "core/progress.h"
#include "core/types.h"

namespace cellcount {

struct PredictInput {
  torch::Tensor image;           // [C,H,W] float32, raw values (not normalised), CPU
  std::vector<Box> exemplars;    // already checked and clipped to the image
  torch::Tensor region;          // [H,W] bool (true = count here), or undefined = whole image
};

struct PredictOptions {
  torch::Device device = torch::kCPU;
  torch::ScalarType precision = torch::kFloat32;
  int64_t tile_size = 0;         // 0 = model default
  int64_t tile_overlap = -1;     // -1 = model default
  float peak_threshold = NAN;    // NAN = model's tuned value
  float peak_min_distance = NAN;
  // The method's own prediction options (MethodSpec::options("predict")), each resolved once by
  // resolve_method_options: the caller's value, else model.json's "thresholds", else the declared default.
  // Empty when the caller is not the C ABI (an evaluation passes its own settings to the method).
  nlohmann::json method_options = nlohmann::json::object();
  bool want_density = true;
  // The generic option "normalization_range" (options_json): raw intensities for 0 and 1 instead of the image's
  // own percentiles; methods pass it to InputSpec::prepare. Unset = the image's percentiles.
  IntensityRange normalization_range;
  Progress progress;
};

struct Prediction {
  double count = 0;
  std::vector<double> class_counts;  // one per class (size >= 1)
  std::vector<Point> points;
  torch::Tensor density;             // [H,W] float CPU or undefined
  torch::Tensor mask;                // [H,W] float CPU or undefined
  torch::Tensor reconstruction;      // [C,H,W] float CPU or undefined
  // The precision the network computed in, where it differs from the one asked (a method that computes in
  // fp32 whatever the caller asks sets kFloat32); unset = as asked. The result reports this.
  std::optional<torch::ScalarType> precision;
  // The cell-size setting (issue 24), for methods that rescale the image to a cell size: the diameter used
  // (pixels of the caller's image; 0 = none) and whether it was "given" or "estimated" ("" = none), and the
  // linear zoom it meant (the statistics of core/domain count cells per pixel at that zoom).
  double diameter = 0;
  std::string diameter_source;
  double cell_zoom = 1.0;
  // {"value", "source"} of that setting, null when none (the result's measurements and the evaluation rows).
  nlohmann::json diameter_json() const {
    return diameter_source.empty() ? nlohmann::json() : nlohmann::json{{"value", diameter}, {"source", diameter_source}};
  }
  // The method's own warnings about this prediction ({"code", "message", "value", "limit"}, as core/domain's),
  // added to the result's warnings.
  std::vector<nlohmann::json> notes;
  // False when the caller asked for the count alone (dcl's localize false): no points were looked for, so count
  // and points are not compared.
  bool located = true;
};

// What a model takes as input, from model.json "input".
struct InputSpec {
  int64_t channels = 1;              // what the network sees
  std::string rgb_rule;              // "" = only `channels` accepted; else how a 3-channel image is reduced
                                     // ("grey", "red", "green", "blue") for a 1-channel model, or, for a
                                     // 3-channel model, "replicate": a 1-channel image is repeated into the
                                     // three channels (what a 3-channel model trained on grey crops expects)
                                     // and an RGBA image loses its alpha
  Normalization normalization;
  int64_t align = 16;                // network input sides must be multiples of this
  int64_t min_side = 8;              // smaller images are refused
  nlohmann::json to_json() const;
  static InputSpec from_json(const nlohmann::json& j);
  // Checks channels (CELLCOUNT_ERR_INVALID_ARGUMENT with expected/actual) and converts/normalises; `range` as
  // normalize's (a prediction passes PredictOptions::normalization_range).
  torch::Tensor prepare(const torch::Tensor& raw, const IntensityRange& range = std::nullopt) const;
  // The channels the network sees (the conversion prepare applies before normalising), without normalising.
  torch::Tensor convert(const torch::Tensor& raw) const;
  // convert's channel rule alone (no size check): the channels the network sees.
  torch::Tensor convert_channels_of(const torch::Tensor& raw) const;
};

class Method {
 public:
  virtual ~Method() = default;
  // model.json plus what the method adds (device in use etc.); the C ABI returns it as info.
  virtual nlohmann::json info() const = 0;
  virtual Prediction predict(const PredictInput& input, const PredictOptions& options) = 0;
};

// What every loaded model's Method shares: its model.json (info() returns it with the device in use), its input
// spec, the peak settings of model.json's "thresholds", and the device its network is on.
class ModelMethod : public Method {
 public:
  explicit ModelMethod(nlohmann::json meta);
  nlohmann::json info() const override;

 protected:
  // The call's peak threshold and minimum distance, else model.json's "thresholds" (read at load, where a
  // malformed value is a model format error), else 0.01 and 3 pixels.
  std::pair<float, float> peak_settings(const PredictOptions& o) const;
  // Moves `module` (the fp32 network) to `device` when it is elsewhere.
  void move_to(torch::nn::Module& module, const torch::Device& device);

  nlohmann::json meta_;
  InputSpec spec_;
  torch::Device device_ = torch::kCPU;
  float peak_threshold_ = 0.01f, peak_min_distance_ = 3.0f;
};

using RequestFn = std::function<nlohmann::json(const nlohmann::json& request, const Progress& progress)>;

struct MethodSpec {
  MethodSpec() = default;
  MethodSpec(std::string id_, std::string display_name_, std::string description_)
      : id(std::move(id_)), display_name(std::move(display_name_)), description(std::move(description_)) {}
  std::string id;               // "dcl", "exemplar", "llp", "twinvae"
  std::string display_name;     // "Count cells (density)"
  std::string description;
  bool needs_exemplars = false;
  bool fixture = false;         // test fixture: hidden from front ends' method lists
  std::function<std::unique_ptr<Method>(const ModelFiles&)> load;
  RequestFn train;              // empty = CELLCOUNT_ERR_UNSUPPORTED
  RequestFn evaluate;           // empty = the core's evaluate_counts()
  RequestFn synthesize;         // empty = the core's cell renderer
  std::function<nlohmann::json(const std::string& kind)> request_defaults;  // kind: train/evaluate/synthesize
  // The declared fields of a kind ("train", "evaluate", "synthesize", and "predict": the method's own prediction
  // options beside the generic params); empty = none declared. When set, it is the one source of that kind's
  // defaults and metadata (request_defaults is then derived from it).
  std::function<Options(const std::string& kind)> options;
};

// The defaults of a request kind: from the declared options when the method has them, else request_defaults;
// null when the method has no such request.
nlohmann::json method_request_defaults(const MethodSpec& spec, const std::string& kind);
// The declared options of a kind (empty when none are declared).
Options method_options(const MethodSpec& spec, const std::string& kind);

// The registry holds every built-in method (from builtin_method_factories(), on first use) plus any that
// register_method adds (a test's own method); a spec with a known id replaces the old one.
// The method's prediction options for one call: `caller` (null or a JSON object of options) is checked against
// the declared "predict" options (unknown option, type, range: CELLCOUNT_ERR_INVALID_ARGUMENT naming it), and
// every declared option is resolved by resolve_setting (caller, then model_meta["thresholds"][name], then the
// declared default).
nlohmann::json resolve_method_options(const MethodSpec& spec, const nlohmann::json& model_meta,
                                      const nlohmann::json& caller);

bool register_method(MethodSpec spec);
// Errors: CELLCOUNT_ERR_WRONG_METHOD naming the known methods.
const MethodSpec& find_method(const std::string& id);
std::vector<const MethodSpec*> all_methods();

// Generated at configure time (build/libcellcount/generated/methods_list.cpp): method_spec_<id> of every
// folder with a method.cmake, in sorted order. Referencing them here is what keeps every method in a static build.
using MethodFactory = MethodSpec (*)();
std::vector<MethodFactory> builtin_method_factories();

// Builds a loaded model's method (spec.load) under the lock of LibTorch's global generator (torch_rng_mutex in
// core/train_run.h): a network's constructor draws initial weights from it, which must not disturb a training
// in another thread that builds its network from its seed. What a malformed model.json makes spec.load throw
// (a missing section, a field of the wrong type, a network LibTorch cannot build) is turned into
// CELLCOUNT_ERR_MODEL_FORMAT naming the file (and the key, where the JSON library names it). A model to
// predict with needs a "tiling" section (checked by read_model when present).
std::unique_ptr<Method> load_method(const MethodSpec& spec, const ModelFiles& files);

// The one definition of "counted in a region" ([H,W] bool, true = count here; undefined = the whole image),
// for every method: the density is zero outside it, and a point counts when the pixel nearest to it
// (rounded, clamped to the image) is inside it.
torch::Tensor mask_density(const torch::Tensor& density, const torch::Tensor& region);
std::vector<Point> points_in_region(const std::vector<Point>& points, const torch::Tensor& region);

// Tile size and overlap of a prediction from the caller's options and the model's "tiling" section
// (model_tiling: {tile_size, overlap} or null when the model has none). Choice: the caller's tile with no
// overlap takes the model's overlap, shrunk in proportion when the tile is smaller than the model's
// (overlap * tile / model tile), so that overlap < tile/2 and the step between tiles (tile - overlap) stays
// above tile/2 (the model's default overlap 32 on a tile of 33 stepped one pixel: millions of tiles).
// A caller's overlap must be < tile/2 of the tile used (the model's when tile_size is 0).
// Returns {tile, overlap}; {0, -1} left as given when the model has no tiling section and the caller set
// neither. Errors: CELLCOUNT_ERR_INVALID_ARGUMENT naming both values.
std::pair<int64_t, int64_t> resolve_tiling(int64_t tile_size, int64_t tile_overlap, const nlohmann::json& model_tiling);

// Post-processing shared by methods whose output is a full-resolution density map: zero it outside the
// region, count = its sum, points = find_peaks(threshold, min_distance) inside the region (as above).
Prediction density_prediction(torch::Tensor density, const torch::Tensor& region, float peak_threshold,
                              float peak_min_distance, bool want_density);

// Reads a typed field of a request with a default, and rejects fields the method does not know
// (a typo must not silently train with the default). Errors: CELLCOUNT_ERR_INVALID_ARGUMENT.
void check_request_fields(const nlohmann::json& request, const nlohmann::json& defaults);

}  // namespace cellcount
