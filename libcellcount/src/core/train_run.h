// One train-run driver for every method. A method declares its fields (Options) and supplies its stages and
// losses; the driver owns what every training shares, so that it is written (and tested) once:
//  - the request is checked before any work (unknown fields, types, ranges: core/options.h);
//  - `out` is never overwritten unless "overwrite" is true, and even then only an empty folder or a model
//    folder is replaced (never a folder of other files);
//  - the checkpoint folder ("checkpoint_dir", default out + ".ckpt") is created by the driver when missing; a
//    marker file (cellcount-run.json) holds the request the checkpoints belong to, and a run resumes only under
//    the same request (less the fields that may change between runs of one training, e.g. epochs, threads);
//  - at the end of a successful run the driver deletes only the files it wrote there (declared up front) and
//    the folder only when it created it and it is then empty: a folder the user named is never removed, and a
//    file of the user's that has the name of a checkpoint file is refused before any work, never overwritten;
//  - random draws are per run: the network's initial weights come from the run's seed under a process-wide lock
//    on LibTorch's global generator (seeded()), everything else from generators the run owns, so two trainings
//    in two threads give the models each gives alone;
//  - provenance (request, library version, threads, device) and the training report go into model.json.
#pragma once
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/dataset.h"
#include "core/options.h"
#include "core/train.h"
#include "core/types.h"

namespace cellcount {

// The fields every training request has: method, out, overwrite, device, threads, seed, checkpoint_dir,
// command, and the trainer's (batch_size, lr, weight_decay, optimizer, schedule, restart_epochs, restart_mult,
// lr_min, checkpoint_every, resume). A method adds its own with add_options and sets its own defaults with
// set_default.
Options common_train_options(const std::string& method);

// common_train_options plus the fields shared by the methods that learn density maps and detect points (dcl,
// exemplar; each sets its own defaults with set_default): precision, init_from, validate_every, crop,
// eval_radius, peak_min_distance.
Options density_train_options(const std::string& method);

// The lock every use of LibTorch's global random generator takes (network construction in training and in
// model loading: a module's constructor draws its initial weights from it).
std::mutex& torch_rng_mutex();

// make() run with LibTorch's global generator seeded by `seed`, under torch_rng_mutex(): a network built in
// it has initial weights that depend on the seed alone, whatever other threads do meanwhile.
template <class F>
auto seeded(uint64_t seed, F&& make) {
  std::lock_guard<std::mutex> lock(torch_rng_mutex());
  torch::manual_seed(seed);
  return make();
}

class TrainRun {
 public:
  // Checks `request` against `options` (common_train_options + the method's) and the out folder, then opens
  // the checkpoint folder, all before any work. `checkpoint_files`: every file name the method will write there
  // (the driver refuses a foreign folder that already holds one of them, and deletes exactly these at the end).
  // `may_change`: fields that may differ between the runs of one training (a resumed run may change them).
  // Errors: CELLCOUNT_ERR_INVALID_ARGUMENT (request; resuming under another request), CELLCOUNT_ERR_IO (out
  // exists, or is not a model folder under overwrite; a checkpoint file name taken by a file of the user's).
  TrainRun(const std::string& method, const Options& options, const nlohmann::json& request,
           std::vector<std::string> checkpoint_files, std::vector<std::string> may_change = {});
  // An unfinished run (failed or cancelled) keeps the checkpoints it wrote (they resume it); when it wrote
  // none, its marker goes, and the folder too when the driver created it and it is empty.
  ~TrainRun();
  TrainRun(const TrainRun&) = delete;
  TrainRun& operator=(const TrainRun&) = delete;

  nlohmann::json& request() { return request_; }
  const nlohmann::json& request() const { return request_; }
  const std::string& method() const { return method_; }
  const std::string& out() const { return out_; }
  const std::string& checkpoint_dir() const { return ckpt_dir_; }
  uint64_t seed() const { return seed_; }
  bool resuming() const { return resuming_; }
  // A dataset without a split gets one by the run's seed (80 % train, 20 % val; a warning says so, and the
  // provenance's split names it), so that a training never needs a split file; a dataset with one is left as is.
  void split_if_unsplit(Dataset& ds) const;
  // Path of a declared checkpoint file (std::logic_error for an undeclared name: a programming error).
  std::string checkpoint(const std::string& file) const;
  // The trainer's settings for one stage: the request's trainer fields, `epochs`, and the checkpoint file
  // <stage>.ckpt (declare it). restart_epochs 0 = one cosine decay over the stage.
  TrainConfig stage_config(const std::string& stage, int64_t epochs) const;

  // Saves the model: fills provenance (the request less "overwrite", library version, threads, device,
  // seconds) into meta, writes out/ atomically (save_model), and deletes the run's checkpoint files (and the
  // folder when the driver created it and it is then empty). Returns the saved meta.
  nlohmann::json save(nlohmann::json meta, torch::nn::Module& module, const std::string& device);
  // Seconds since the run was constructed.
  double seconds() const;

 private:
  void open_checkpoints();
  void remove_own_files(bool checkpoints_too);

  std::string method_, out_, ckpt_dir_;
  nlohmann::json request_, key_, defaults_;
  std::vector<std::string> files_;
  uint64_t seed_ = 0;
  bool resuming_ = false, created_dir_ = false, finished_ = false;
  std::chrono::steady_clock::time_point t0_;
};

// The key a checkpoint folder is tied to: the request less the fields that may change between runs.
nlohmann::json run_key(const nlohmann::json& request, const std::vector<std::string>& may_change);

// The one peak-threshold tuner of every method: `maps` are full-resolution density maps ([H,W] float, CPU) of the
// validation images exactly as predict makes them, `truth` their points; the threshold among `candidates`
// (default peak_threshold_grid()) with the best point F1 within `radius` (tune_peak_threshold in core/peaks).
float tune_peak_threshold_on(const std::vector<torch::Tensor>& maps, const std::vector<std::vector<Point>>& truth,
                             float min_distance, double radius, std::vector<float> candidates = {});

}  // namespace cellcount
