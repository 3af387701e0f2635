// The weights a training stage ships: the snapshot with the best validation score, or the weight average of
// chosen epochs (stochastic weight averaging, Izmailov et al. 2018). Every method keeps one per stage; they
// live in the run's checkpoint folder beside the trainer's checkpoint, so that a resumed run keeps them (a
// stage that held its best snapshot in memory only shipped, after a resume, the best of the resumed epochs).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <vector>

namespace cellcount {

class TrainRun;

class SnapshotKeeper {
 public:
  // The checkpoint files a keeper named `stem` writes (declare them to TrainRun): <stem>_picks.json,
  // <stem>_best.pt, <stem>_swa.pt.
  static std::vector<std::string> files(const std::string& stem);

  // Tracks `module` (its parameters and buffers); reloads what an earlier run of the same training kept.
  SnapshotKeeper(torch::nn::Module& module, const TrainRun& run, const std::string& stem);

  // A validation score of the module as it is now (lower is better); kept (and written) when it beats the
  // best so far. Returns true when it did.
  bool offer(int64_t epoch, double score);
  // Adds the module's current parameters to the running weight average (epoch recorded; an epoch already
  // averaged, as after a resume, is skipped).
  void average_in(int64_t epoch);

  bool has_best() const { return best_epoch_ > 0; }
  int64_t best_epoch() const { return best_epoch_; }
  double best_score() const { return best_score_; }
  const std::vector<int64_t>& averaged_epochs() const { return averaged_; }

  // Copies the best snapshot (parameters and buffers) into the module; false (module unchanged) when none.
  bool restore_best();
  // Copies the weight average's parameters into the module; buffers (BatchNorm statistics) are left as they
  // are, for the caller to recompute (core/train.h recompute_batchnorm). False when nothing was averaged.
  bool restore_average();

 private:
  void write_picks() const;

  torch::nn::Module& module_;
  std::string picks_path_, best_path_, swa_path_;
  std::vector<torch::Tensor> best_;  // parameters then buffers, in module order
  std::vector<torch::Tensor> swa_;   // parameters
  double best_score_;
  int64_t best_epoch_ = 0;
  std::vector<int64_t> averaged_;
};

// The checkpoint files of a run for TrainRun: `files` (the trainers') plus those of the keepers `keeper_stems`.
std::vector<std::string> checkpoint_files(std::vector<std::string> files, const std::vector<std::string>& keeper_stems);

}  // namespace cellcount
