// A model is a folder: model.json (method, format version, architecture config, input normalisation,
// tuned thresholds, class names, training provenance, metrics, sha256 of the weights) + weights.pt.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>

namespace cellcount {

constexpr int kModelFormatVersion = 1;

struct ModelFiles {
  std::string dir;
  nlohmann::json meta;  // parsed model.json
  std::string weights_path() const;
};

// Reads and checks model.json and the weights' sha256.
// Errors: CELLCOUNT_ERR_IO (folder, model.json or weights.pt missing/unreadable),
// CELLCOUNT_ERR_MODEL_FORMAT (bad JSON, missing "method", format_version newer than this library,
// checksum mismatch).
// model.json and weights.pt must be regular files (a FIFO or a link to /dev/zero is refused before it is
// opened) within kMaxJsonFileBytes / kMaxWeightsBytes (core/limits.h); model.json at most kMaxJsonDepth deep;
// a "tiling" section, when present, as check_tiling_meta wants it.
ModelFiles read_model(const std::string& dir);

// The smallest tile a caller or a model.json may ask for.
constexpr int64_t kMinTileSize = 32;

// model.json's "tiling" {tile_size, overlap}: integers, kMinTileSize <= tile_size <= kMaxImageSide and
// 0 <= overlap < tile_size/2. Errors: CELLCOUNT_ERR_MODEL_FORMAT naming the file and the field.
void check_tiling_meta(const nlohmann::json& meta, const std::string& json_path);

// Loads the weights into a module built from meta; CELLCOUNT_ERR_MODEL_FORMAT naming the tensor when one of
// the module's parameters or buffers is missing or has another shape or type (load_module checks the same).
void load_weights(torch::nn::Module& module, const ModelFiles& files);

// Writes dir/model.json and dir/weights.pt atomically (to a sibling temp folder, then rename).
// Fills meta's format_version, library_version, created and weights_sha256. An existing folder is
// replaced only when overwrite is true (else CELLCOUNT_ERR_IO), and only when it is an empty folder or a
// model folder (check_replaceable_model_dir). Returns the final meta.
nlohmann::json save_model(const std::string& dir, nlohmann::json meta, torch::nn::Module& module, bool overwrite);

// Refuses (CELLCOUNT_ERR_IO) to replace `dir` unless it is missing, an empty folder, or a model folder
// (model.json, regular files only). `what` names the caller in the message.
void check_replaceable_model_dir(const std::string& dir, const std::string& what);


// read_init_model's two halves, for any Config: the model of `method` in dir (with an "architecture"), and the
// refusal when its architecture in full form (`theirs`) is not `ours`.
ModelFiles read_model_of_method(const std::string& dir, const std::string& method);
void check_same_architecture(const std::string& dir, const std::string& method, const nlohmann::json& theirs,
                             const nlohmann::json& ours);

// The model in `dir` that a training of `method` starts from (the request's "init_from"). Refused with
// CELLCOUNT_ERR_INVALID_ARGUMENT, naming init_from, when it is another method's model or when its architecture,
// read into the method's Config and written back in full, differs from `cfg`'s; the message carries the JSON
// diff. Read errors as read_model.
template <class Config>
ModelFiles read_init_model(const std::string& dir, const std::string& method, const Config& cfg) {
  ModelFiles init = read_model_of_method(dir, method);
  check_same_architecture(dir, method, Config::from_json(init.meta.at("architecture")).to_json(), cfg.to_json());
  return init;
}

// What provenance records of that model: {model, weights_sha256, command (its training command)}.
nlohmann::json init_provenance(const ModelFiles& init);

// Merges `patch` into an existing model.json (e.g. metrics measured after training); the weights and
// their checksum are untouched. Written atomically.
void update_model_meta(const std::string& dir, const nlohmann::json& patch);

// Module state to/from a single archive file (checkpoints use it too).
void save_module(torch::nn::Module& module, const std::string& path);
// Copies every parameter and buffer of `src` into `dst` (same architecture), e.g. to keep the best epoch.
void copy_state(torch::nn::Module& dst, const torch::nn::Module& src);
void load_module(torch::nn::Module& module, const std::string& path);

// UTC time as ISO 8601, for provenance.
std::string utc_now_iso();

}  // namespace cellcount
