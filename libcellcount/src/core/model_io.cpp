#include "core/model_io.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>

#include "cellcount/cellcount.h"
#include "core/error.h"
#include "core/sha256.h"

namespace fs = std::filesystem;

namespace cellcount {

std::string ModelFiles::weights_path() const { return (fs::path(dir) / "weights.pt").string(); }

ModelFiles read_model(const std::string& dir) {
  CC_CHECK(fs::is_directory(dir), CELLCOUNT_ERR_IO, "model folder '" + dir + "' does not exist");
  const fs::path json_path = fs::path(dir) / "model.json";
  CC_CHECK(fs::exists(json_path), CELLCOUNT_ERR_IO, "model folder '" + dir + "' has no model.json");
  std::ifstream f(json_path);
  CC_CHECK(f.good(), CELLCOUNT_ERR_IO, "cannot read '" + json_path.string() + "'");
  ModelFiles m;
  m.dir = dir;
  try {
    m.meta = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    fail(CELLCOUNT_ERR_MODEL_FORMAT, "'" + json_path.string() + "' is not valid JSON: " + e.what());
  }
  CC_CHECK(m.meta.is_object() && m.meta.contains("method") && m.meta["method"].is_string(),
           CELLCOUNT_ERR_MODEL_FORMAT, "'" + json_path.string() + "' has no \"method\" string");
  CC_CHECK(m.meta.contains("format_version") && m.meta["format_version"].is_number_integer(),
           CELLCOUNT_ERR_MODEL_FORMAT, "'" + json_path.string() + "' has no integer \"format_version\"");
  const int v = m.meta["format_version"].get<int>();
  CC_CHECK(v >= 1 && v <= kModelFormatVersion, CELLCOUNT_ERR_MODEL_FORMAT,
           "'" + json_path.string() + "' has format_version " + std::to_string(v) + "; this library reads 1.." +
               std::to_string(kModelFormatVersion) + " (upgrade cellcount)");
  CC_CHECK(fs::exists(m.weights_path()), CELLCOUNT_ERR_IO, "model folder '" + dir + "' has no weights.pt");
  const std::string want = m.meta.value("weights_sha256", "");
  CC_CHECK(!want.empty(), CELLCOUNT_ERR_MODEL_FORMAT, "'" + json_path.string() + "' has no \"weights_sha256\"");
  const std::string got = sha256_file(m.weights_path());
  CC_CHECK(got == want, CELLCOUNT_ERR_MODEL_FORMAT,
           "weights.pt in '" + dir + "' is corrupt or was replaced: sha256 " + got + ", model.json expects " + want);
  return m;
}

ModelFiles read_model_of_method(const std::string& dir, const std::string& method) {
  ModelFiles init = read_model(dir);
  const std::string theirs_method = init.meta.value("method", "?");
  CC_CHECK(theirs_method == method, CELLCOUNT_ERR_INVALID_ARGUMENT,
           method + " train: init_from '" + dir + "' is a " + theirs_method + " model, not " + method);
  CC_CHECK(init.meta.contains("architecture"), CELLCOUNT_ERR_MODEL_FORMAT,
           "model '" + dir + "': model.json has no \"architecture\"");
  return init;
}

void check_same_architecture(const std::string& dir, const std::string& method, const nlohmann::json& theirs,
                             const nlohmann::json& ours) {
  CC_CHECK(theirs == ours, CELLCOUNT_ERR_INVALID_ARGUMENT,
           method + " train: init_from '" + dir + "' has another architecture (" +
               nlohmann::json::diff(theirs, ours).dump() +
               "); set \"architecture\" (and the input channels) as that model has them");
}

nlohmann::json init_provenance(const ModelFiles& init) {
  const auto provenance = init.meta.value("provenance", nlohmann::json::object());
  return {{"model", init.dir},
          {"weights_sha256", init.meta.value("weights_sha256", "")},
          {"command", provenance.value("request", nlohmann::json::object()).value("command", "")}};
}

void update_model_meta(const std::string& dir, const nlohmann::json& patch) {
  auto m = read_model(dir);
  m.meta.merge_patch(patch);
  const fs::path p = fs::path(dir) / "model.json", tmp = fs::path(dir) / "model.json.tmp";
  {
    std::ofstream f(tmp);
    f << m.meta.dump(2) << "\n";
    CC_CHECK(f.good(), CELLCOUNT_ERR_IO, "cannot write '" + tmp.string() + "'");
  }
  fs::rename(tmp, p);
}

void save_module(torch::nn::Module& module, const std::string& path) {
  torch::serialize::OutputArchive archive;
  module.save(archive);
  archive.save_to(path);
}

void load_module(torch::nn::Module& module, const std::string& path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    module.load(archive);
  } catch (const c10::Error& e) {
    fail(CELLCOUNT_ERR_MODEL_FORMAT,
         "'" + path + "' does not fit the network described by model.json: " + e.what_without_backtrace());
  }
}

void load_weights(torch::nn::Module& module, const ModelFiles& files) { load_module(module, files.weights_path()); }

std::string utc_now_iso() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

nlohmann::json save_model(const std::string& dir, nlohmann::json meta, torch::nn::Module& module, bool overwrite) {
  const fs::path target(dir);
  CC_CHECK(overwrite || !fs::exists(target), CELLCOUNT_ERR_IO,
           "'" + dir + "' exists; pass \"overwrite\": true (CLI --overwrite) to replace it");
  if (overwrite) check_replaceable_model_dir(dir, "save model");
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  std::random_device rd;
  const fs::path tmp = target.string() + ".tmp-" + std::to_string(rd());
  fs::create_directories(tmp);
  try {
    const std::string weights = (tmp / "weights.pt").string();
    save_module(module, weights);
    meta["format_version"] = kModelFormatVersion;
    meta["library_version"] = CELLCOUNT_VERSION_STRING;
    if (!meta.contains("created")) meta["created"] = utc_now_iso();
    meta["weights_sha256"] = sha256_file(weights);
    std::ofstream f(tmp / "model.json");
    f << meta.dump(2) << "\n";
    f.close();
    CC_CHECK(f.good(), CELLCOUNT_ERR_IO, "error writing model.json in '" + tmp.string() + "'");
    if (fs::exists(target)) fs::remove_all(target);
    fs::rename(tmp, target);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return meta;
}

void check_replaceable_model_dir(const std::string& dir, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return;
  CC_CHECK(fs::is_directory(dir, ec), CELLCOUNT_ERR_IO, what + ": '" + dir + "' exists and is not a folder; refusing to replace it");
  bool model_json = false, other = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().filename() == "model.json" && e.is_regular_file()) model_json = true;
    if (!e.is_regular_file()) other = true;
  }
  const bool empty = fs::is_empty(dir, ec);
  CC_CHECK(empty || (model_json && !other), CELLCOUNT_ERR_IO,
           what + ": '" + dir + "' is not a cellcount model folder (no model.json, or it holds subfolders); " +
               "refusing to replace it under \"overwrite\" — name a new folder");
}

void copy_state(torch::nn::Module& dst, const torch::nn::Module& src) {
  torch::NoGradGuard ng;
  auto sp = src.named_parameters(true), sb = src.named_buffers(true);
  for (auto& p : dst.named_parameters(true)) p.value().copy_(sp[p.key()]);
  for (auto& b : dst.named_buffers(true)) b.value().copy_(sb[b.key()]);
}

}  // namespace cellcount
