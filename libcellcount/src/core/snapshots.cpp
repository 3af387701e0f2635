#include "core/snapshots.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/files.h"
#include "core/train_run.h"

namespace cellcount {

namespace {

std::vector<torch::Tensor> state_of(torch::nn::Module& m, bool buffers) {
  std::vector<torch::Tensor> s;
  for (auto& p : m.parameters(true)) s.push_back(p.detach().clone());
  if (buffers)
    for (auto& b : m.buffers(true)) s.push_back(b.detach().clone());
  return s;
}

void copy_into(torch::nn::Module& m, const std::vector<torch::Tensor>& s, bool buffers) {
  torch::NoGradGuard ng;
  size_t i = 0;
  for (auto& p : m.parameters(true)) p.copy_(s[i++]);
  if (buffers)
    for (auto& b : m.buffers(true)) b.copy_(s[i++]);
}

// A kept state read back: exactly the module's tensors (count, shapes, types), else the checkpoint folder is
// not this training's.
std::vector<torch::Tensor> load_state(torch::nn::Module& m, const std::string& path, bool buffers) {
  std::vector<torch::Tensor> s;
  torch::load(s, path);
  const auto want = state_of(m, buffers);
  bool same = s.size() == want.size();
  for (size_t i = 0; same && i < s.size(); ++i)
    same = s[i].sizes() == want[i].sizes() && s[i].scalar_type() == want[i].scalar_type();
  CC_CHECK(same, CELLCOUNT_ERR_IO, "checkpoint '" + path + "' does not fit this training's network");
  for (size_t i = 0; i < s.size(); ++i) s[i] = s[i].to(want[i].device());
  return s;
}

}  // namespace

std::vector<std::string> SnapshotKeeper::files(const std::string& stem) {
  return {stem + "_picks.json", stem + "_best.pt", stem + "_swa.pt"};
}

std::vector<std::string> checkpoint_files(std::vector<std::string> files, const std::vector<std::string>& keeper_stems) {
  for (const auto& stem : keeper_stems)
    for (auto& f : SnapshotKeeper::files(stem)) files.push_back(std::move(f));
  return files;
}

SnapshotKeeper::SnapshotKeeper(torch::nn::Module& module, const TrainRun& run, const std::string& stem)
    : module_(module),
      picks_path_(run.checkpoint(stem + "_picks.json")),
      best_path_(run.checkpoint(stem + "_best.pt")),
      swa_path_(run.checkpoint(stem + "_swa.pt")),
      best_score_(INFINITY) {
  if (!std::filesystem::exists(picks_path_)) return;
  nlohmann::json picks;
  try {
    std::ifstream f(picks_path_);
    picks = nlohmann::json::parse(f);
    best_epoch_ = picks.at("best_epoch").get<int64_t>();
    if (picks.at("best_score").is_number()) best_score_ = picks["best_score"].get<double>();
    averaged_ = picks.at("averaged_epochs").get<std::vector<int64_t>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(CELLCOUNT_ERR_IO, "checkpoint '" + picks_path_ + "' is damaged: " + e.what());
  }
  if (best_epoch_ > 0) best_ = load_state(module_, best_path_, true);
  if (!averaged_.empty()) swa_ = load_state(module_, swa_path_, false);
}

void SnapshotKeeper::write_picks() const {
  const nlohmann::json picks{{"best_epoch", best_epoch_},
                             {"best_score", best_epoch_ > 0 ? nlohmann::json(best_score_) : nlohmann::json()},
                             {"averaged_epochs", averaged_}};
  std::ofstream(picks_path_ + ".tmp") << picks.dump() << "\n";
  std::filesystem::rename(picks_path_ + ".tmp", picks_path_);
}

bool SnapshotKeeper::offer(int64_t epoch, double score) {
  if (!(score < best_score_)) return false;
  best_ = state_of(module_, true);
  torch::save(best_, best_path_);
  best_score_ = score;
  best_epoch_ = epoch;
  write_picks();
  return true;
}

void SnapshotKeeper::average_in(int64_t epoch) {
  if (!averaged_.empty() && epoch <= averaged_.back()) return;
  auto cur = state_of(module_, false);
  if (swa_.empty()) {
    swa_ = cur;
  } else {
    const double k = double(averaged_.size());
    for (size_t i = 0; i < swa_.size(); ++i) swa_[i].mul_(k / (k + 1)).add_(cur[i] / (k + 1));
  }
  torch::save(swa_, swa_path_);
  averaged_.push_back(epoch);
  write_picks();
}

bool SnapshotKeeper::restore_best() {
  if (best_epoch_ == 0) return false;
  copy_into(module_, best_, true);
  return true;
}

bool SnapshotKeeper::restore_average() {
  if (averaged_.empty()) return false;
  copy_into(module_, swa_, false);
  return true;
}

}  // namespace cellcount
