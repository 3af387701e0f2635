// exemplar training: counter batches, validation errors, mask tuning, train_options() and train().
#include "methods/exemplar/exemplar_train.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/dataset.h"
#include "core/density_map.h"
#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/model_io.h"
#include "core/snapshots.h"
#include "core/train.h"
#include "core/train_run.h"
#include "methods/exemplar/exemplar_data.h"
#include "methods/exemplar/exemplar_net.h"
#include "methods/exemplar/exemplar_predict.h"
#include "core/kinds.h"
#include "methods/exemplar/masks.h"

namespace F = torch::nn::functional;

namespace cellcount::exemplar {
namespace {

// Batched single-kind training samples: dihedral transform, exemplars from the points, a random crop.
struct CounterBatch {
  torch::Tensor x, crops, target;
};

// Choice: intensity augmentation. A tile normalised inside a two-kind image is an affine squash of the
// same tile normalised alone (the image's percentiles come from both kinds): measured on the benchmark, the
// ADI half of a two-kind image counted 8..30 cells inside it and 57..75 alone (true ~83). With probability
// `p`, the normalised tile becomes b + a x, a ~ U(0.35, 1), b ~ U(0, 1 - a).
torch::Tensor squash_intensity(const torch::Tensor& img, double p, std::mt19937_64& rng) {
  if (uniform01(rng()) >= p) return img;
  const double a = 0.35 + 0.65 * uniform01(rng()), b = (1.0 - a) * uniform01(rng());
  return img * a + b;
}

CounterBatch counter_batch(const std::vector<TrainTile>& tiles, const std::vector<size_t>& batch, int64_t crop,
                           int64_t n_ex, double jitter, double squash, int64_t ex_size, std::mt19937_64& rng,
                           const torch::Device& device) {
  std::vector<torch::Tensor> xs, cs, ts;
  for (size_t i : batch) {
    const auto& t = tiles[i];
    const auto d = Dihedral::random(rng());
    const int64_t S = t.image.size(1);
    auto img = squash_intensity(d.apply(t.image), squash, rng), den = d.apply(t.density);
    std::vector<Point> pts;
    for (const auto& p : t.points) pts.push_back(d.apply(p, S, S));
    const double u = uniform01(rng());
    const float box = float(t.box * (1.0 - jitter + 2.0 * jitter * u));
    auto boxes = boxes_from_points(pts, size_t(n_ex), box, S, S, rng());
    while (int64_t(boxes.size()) < n_ex) boxes.push_back(boxes[boxes.size() % std::max<size_t>(1, boxes.size())]);
    cs.push_back(crop_boxes(img, as_arrays(boxes), ex_size));
    const int64_t c = std::min(crop, S);
    const int64_t y0 = int64_t(uniform_index(rng(), uint64_t(S - c + 1))), x0 = int64_t(uniform_index(rng(), uint64_t(S - c + 1)));
    xs.push_back(img.slice(1, y0, y0 + c).slice(2, x0, x0 + c));
    ts.push_back(den.slice(1, y0, y0 + c).slice(2, x0, x0 + c));
  }
  return {torch::stack(xs).to(device), torch::cat(cs).to(device), torch::stack(ts).to(device)};
}

// Counter MAE on whole tiles (no mask), exemplars drawn with a fixed seed. Like bench_error, it leaves the
// networks in eval mode; inside an epoch callback Trainer::fit puts the trained module back in train mode.
double counter_val_mae(ExemplarNet& net, const std::vector<TrainTile>& tiles, int64_t n_ex, const torch::Device& device) {
  torch::NoGradGuard ng;
  net->eval();
  double err = 0;
  for (size_t i = 0; i < tiles.size(); ++i) {
    const auto& t = tiles[i];
    const int64_t S = t.image.size(1);
    auto boxes = as_arrays(boxes_from_points(t.points, size_t(n_ex), t.box, S, S, 1000 + i));
    auto x = t.image.to(device);
    auto b = net->counter->exemplar_vectors(crop_boxes(x, boxes, net->config.exemplar_size));
    auto f = net->counter->features(x.unsqueeze(0));
    auto d = net->counter->density(f, net->counter->similarity(f, b.unsqueeze(0)));
    err += std::abs(d.sum().item<double>() / net->config.target_scale - double(t.points.size()));
  }
  return tiles.empty() ? 0.0 : err / double(tiles.size());
}

// Seg-then-count error on benchmark items (whole images, one tile each).
double bench_error(ExemplarNet& net, const std::vector<BenchItem>& items, MaskMode mode, const MaskSettings& ms,
                   const torch::Device& device) {
  torch::NoGradGuard ng;
  net->eval();
  double err = 0;
  for (const auto& it : items) {
    auto x = it.image.to(device);
    const auto boxes = as_arrays(it.boxes);
    auto [b, v] = exemplar_vectors(net, x, boxes);
    auto maps = run_tile(net, x.unsqueeze(0), b, v, mode, ms, boxes)[0].to(torch::kCPU);
    double yi, ye;
    err += benchmark_error(maps[0], it.interest, yi, ye);
  }
  return items.empty() ? 0.0 : err / double(items.size());
}

// Picks the mask threshold and dilation from the request's grids on validation data: the lowest two-kind
// error (bench) among the settings whose single-kind relative error (sum |y_hat - y| / sum y over `single`)
// is at most max(0.15, unmasked + single_kind_tolerance); the lowest single-kind error if none qualifies.
// Writes the choice into `ms` and returns the table it was chosen from.
nlohmann::json tune_mask(ExemplarNet& net, const std::vector<BenchItem>& bench, const std::vector<BenchItem>& single,
                         const nlohmann::json& req, MaskSettings& ms) {
  const auto thresholds = req["mask_threshold_grid"].get<std::vector<double>>();
  const auto dilations = req["mask_dilate_grid"].get<std::vector<int64_t>>();
  if (thresholds.empty()) return {{"rule", "fixed by the request"}};
  double total = 0;
  for (const auto& it : single) total += double(it.interest.points.size());
  total = std::max(total, 1.0);
  const auto device = torch::Device(torch::kCPU);
  const double none_rel = bench_error(net, single, MaskMode::kNone, ms, device) * double(single.size()) / total;
  const double limit = std::max(0.15, none_rel + req["single_kind_tolerance"].get<double>());
  nlohmann::json rows = nlohmann::json::array();
  double best = INFINITY, best_rel = INFINITY, fallback_rel = INFINITY;
  MaskSettings chosen = ms, fallback = ms;
  for (const int64_t dl : dilations) {
    for (const double th : thresholds) {
      MaskSettings m = ms;
      m.mask_threshold = th;
      m.dilate = dl;
      const double err = bench_error(net, bench, MaskMode::kSeg, m, device);
      const double rel = bench_error(net, single, MaskMode::kSeg, m, device) * double(single.size()) / total;
      rows.push_back({{"mask_threshold", th}, {"mask_dilate", dl}, {"val_error", err}, {"single_kind_rel_error", rel}});
      log_info("exemplar train: mask threshold " + std::to_string(th) + " dilate " + std::to_string(dl) +
               ": val error " + std::to_string(err) + ", single-kind relative error " + std::to_string(rel));
      if (rel <= limit && err < best) {
        best = err;
        best_rel = rel;
        chosen = m;
      }
      if (rel < fallback_rel) {
        fallback_rel = rel;
        fallback = m;
      }
    }
  }
  const bool qualified = std::isfinite(best);
  ms = qualified ? chosen : fallback;
  return {{"rule", "lowest two-kind val error with single-kind val relative error <= max(0.15, unmasked + tolerance)"},
          {"unmasked_single_kind_rel_error", none_rel}, {"limit", limit}, {"qualified", qualified},
          {"chosen", {{"mask_threshold", ms.mask_threshold}, {"mask_dilate", ms.dilate},
                      {"single_kind_rel_error", qualified ? best_rel : fallback_rel}}},
          {"grid", rows}};
}

}  // namespace

Options train_options() {
  // init_from: an exemplar model whose counter starts stage 1 (recorded in provenance); crop: random square crops
  // of the single-kind tiles for the counter.
  Options o = density_train_options("exemplar");
  add_options(o, {
      Opt::path("recipe").help("datasets/recipes/*.json: the kinds, tiles and benchmark recipe").needed(),
      Opt::path("benchmark").help("the benchmark folder `cellcount synth --method exemplar` wrote").needed(),
      Opt::integer("counter_epochs", 60).range(0, 100000).help("epochs of the counter stage (0 only with init_from)"),
      Opt::integer("seg_epochs", 20).range(0, 100000).help("epochs of the segmenter stage (paper: 20)"),
      Opt::integer("localizer_epochs", 20).range(0, 100000)
          .help("epochs of the localizer stage (architecture.localizer_base > 0; the points come from it)"),
      // Choice: one Gaussian for every kind in the localizer's targets, so that one peak threshold fits them all
      // (with the kinds' own sigmas, 2 to 4 px, the adipocytes' flat peaks fell under the threshold the small
      // cells chose: 1.8 points for 59 counted on the benchmark's val ADI halves).
      Opt::number("localizer_sigma", 2.0).range(0.5, 20.0).help("Gaussian (pixels) of the localizer's target maps").folded(),
      Opt::integer("exemplars", 3).range(1, 64).help("exemplar boxes per training image"),
      Opt::number("box_jitter", 0.2).range(0.0, 0.9).help("exemplar box side x U(1 - j, 1 + j) while training the counter").folded(),
      Opt::number("intensity_squash", 0.5).range(0.0, 1.0).help("probability of the counter's intensity augmentation").folded(),
      Opt::choice("pseudo_mask", "kmeans", {"kmeans", "dotbox", "similarity"})
          .help("pseudo masks: \"kmeans\" (the paper), or the ablations \"dotbox\", \"similarity\"")
          .folded(),
      // Option: the segmenter also trains on the single-kind tiles (measured worse: their K-means masks cut
      // cells away; see README).
      Opt::boolean("seg_single_kind", false).help("the segmenter also trains on the single-kind tiles").folded(),
      Opt::integer("k_min", 2).range(2, 32).help("smallest K of the K-means pseudo masks").folded(),
      Opt::integer("k_max", 6).range(2, 32).help("largest K of the K-means pseudo masks").folded(),
      Opt::number("delta", 0.0).range(-10.0, 10.0).help("similarity offset outside the mask (paper's delta)").folded(),
      Opt::number("mask_threshold", 0.6).range(0.0, 1.0).help("mask binarisation threshold, used as is when mask_threshold_grid is empty").folded(),
      // Choice: the binarisation threshold and the mask dilation are tuned on the val splits after
      // training (the paper fixes 0.6): the lowest two-kind val error among the grid whose single-kind
      // val relative error stays within single_kind_tolerance of the unmasked counter's (or <= 0.15).
      Opt::number_list("mask_threshold_grid", {0.3, 0.4, 0.5, 0.6}).range(0.0, 1.0).help("mask thresholds tried on the val splits").folded(),
      Opt::int_list("mask_dilate_grid", {0, 1}).range(0, 8).help("mask dilations tried on the val splits").folded(),
      Opt::number("single_kind_tolerance", 0.05).range(0.0, 1.0).help("allowed rise of the single-kind val relative error").folded(),
      Opt::boolean("init_segmenter", false).help("with init_from: the segmenter starts from that model too").folded(),
      Opt::number("similarity_threshold", 0.6).range(-1.0, 1.0).help("threshold of the similarity pseudo masks").folded(),
      Opt::boolean("mask_output", true).help("multiply the output density by the mask").folded(),
      Opt::object("architecture", [] {
        ExemplarConfig c;
        c.localizer_base = 16;  // new models have a localizer (ExemplarConfig's 0 reads models made before it)
        return c.to_json();
      }()).help("network shape").folded(),
  });
  // Choice: from-scratch training needs a larger step than the paper's fine-tuning rate (AdamW 1e-5).
  set_default(o, "validate_every", 5);
  set_default(o, "eval_radius", 6.0);
  set_default(o, "optimizer", "adamw");
  set_default(o, "lr", 1e-3);
  set_default(o, "weight_decay", 1e-4);
  set_default(o, "batch_size", 8);
  set_default(o, "restart_epochs", 0.0);  // 0 = one cosine decay over each stage
  set_default(o, "restart_mult", 1.0);
  return o;
}

nlohmann::json train(const nlohmann::json& req0, const Progress& progress) {
  TrainRun run("exemplar", train_options(), req0,
               checkpoint_files({"counter.ckpt", "segmenter.ckpt", "localizer.ckpt"}, {"counter", "segmenter", "localizer"}),
               {"counter_epochs", "seg_epochs", "localizer_epochs", "validate_every"});
  nlohmann::json& req = run.request();
  const std::string out = run.out(), recipe_path = req["recipe"], bench_dir = req["benchmark"];
  CC_CHECK(req["counter_epochs"].get<int64_t>() > 0 || !req["init_from"].get<std::string>().empty(),
           CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar train: counter_epochs 0 needs init_from (it would ship an untrained counter)");
  // Ranges and choices are checked by the driver against the declared options; what they cannot say, here
  // (the tuning grids before any training).
  CC_CHECK(req["mask_threshold_grid"].empty() || !req["mask_dilate_grid"].empty(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar train: mask_dilate_grid must not be empty");
  const std::string pm = req["pseudo_mask"];
  const int64_t k_min = req["k_min"], k_max = req["k_max"], n_ex = req["exemplars"], crop = req["crop"];
  CC_CHECK(k_max >= k_min && crop % 16 == 0, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar train: need k_min <= k_max and crop a multiple of 16");
  const auto device = resolve_device(req["device"]);
  const auto precision = resolve_precision(req["precision"], device);
  const auto spec = exemplar_input_spec();
  ExemplarConfig cfg = ExemplarConfig::from_json(req["architecture"]);
  cfg.in_channels = 3;
  const int64_t loc_epochs = req["localizer_epochs"];
  MaskSettings ms;
  ms.mask_threshold = req["mask_threshold"];
  ms.delta = req["delta"];
  ms.similarity_threshold = req["similarity_threshold"];
  ms.mask_output = req["mask_output"];

  const Recipe recipe = load_recipe(recipe_path);
  auto train_tiles = training_tiles(recipe, "train", spec, progress.sub(0, 0.02));
  auto val_tiles = training_tiles(recipe, "val", spec, progress.sub(0.02, 0.03));
  CC_CHECK(!train_tiles.empty(), CELLCOUNT_ERR_DATASET, "exemplar train: no training tiles with cells");
  const auto bench = load_dataset(bench_dir);
  auto bench_train = benchmark_items(bench, "train", recipe, spec, progress.sub(0.03, 0.04));
  auto bench_val = benchmark_items(bench, "val", recipe, spec, progress.sub(0.04, 0.05));
  CC_CHECK(!bench_train.empty(), CELLCOUNT_ERR_DATASET, "exemplar train: the benchmark's train split is empty");
  if (req["seg_single_kind"].get<bool>()) {
    for (auto& it : tiles_as_items(train_tiles, n_ex, 5000)) bench_train.push_back(std::move(it));
    for (auto& it : tiles_as_items(val_tiles, n_ex, 9000)) bench_val.push_back(std::move(it));
  }
  log_info("exemplar train: " + std::to_string(train_tiles.size()) + " single-kind tiles, " +
           std::to_string(bench_train.size()) + " segmenter training items (two-kind images + single-kind tiles)");

  auto net = seeded(run.seed(), [&] { return ExemplarNet(cfg); });
  const std::string init_from = req["init_from"];
  nlohmann::json init_meta = nullptr;
  bool localizer_copied = false;
  if (!init_from.empty()) {
    // The localizer's width may differ from the source's (or the source may have none): it is then trained anew.
    const auto init = read_model_of_method(init_from, "exemplar");
    const auto init_cfg = ExemplarConfig::from_json(init.meta.at("architecture"));
    auto theirs = init_cfg.to_json(), ours = cfg.to_json();
    theirs.erase("localizer_base");
    ours.erase("localizer_base");
    check_same_architecture(init_from, "exemplar", theirs, ours);
    auto other = seeded(run.seed(), [&] { return ExemplarNet(init_cfg); });
    load_weights(*other, init);
    copy_state(*net->counter, *other->counter);
    if (req["init_segmenter"].get<bool>()) copy_state(*net->segmenter, *other->segmenter);
    // Re-tuning (localizer_epochs 0) keeps the source's localizer when it has one of this width.
    localizer_copied = loc_epochs == 0 && net->localizer && other->localizer && init_cfg.localizer_base == cfg.localizer_base;
    if (localizer_copied) copy_state(*net->localizer, *other->localizer);
    init_meta = init_provenance(init);
    // Provenance only: a source model without this record (hand-made, older) still starts the training.
    const nlohmann::json::json_pointer epochs_run("/training/counter/epochs_run");
    init_meta["counter_epochs"] = init.meta.contains(epochs_run) ? init.meta.at(epochs_run) : nlohmann::json();
    init_meta["segmenter_too"] = req["init_segmenter"].get<bool>();
    log_info("exemplar train: the counter starts from '" + init_from + "'");
  }
  CC_CHECK(cfg.localizer_base == 0 || loc_epochs > 0 || localizer_copied, CELLCOUNT_ERR_INVALID_ARGUMENT,
           "exemplar train: localizer_epochs 0 with architecture.localizer_base > 0 would ship an untrained localizer "
           "(give epochs, an init_from model with a localizer of that width, or localizer_base 0 for points from the "
           "density)");
  net->to(device);
  const int64_t every = req["validate_every"];

  // Stage 1: the base counter on single-kind tiles. L2 to the Gaussian dot maps.
  // restart_epochs 0 = one cosine decay over each stage.
  TrainConfig tc = run.stage_config("counter", req["counter_epochs"]);
  const double jitter = req["box_jitter"], squash = req["intensity_squash"];
  SnapshotKeeper best_counter(*net->counter, run, "counter");  // kept across a resume
  auto counter_report = Trainer(tc, *net->counter).fit(
      train_tiles.size(),
      [&](const std::vector<size_t>& batch, std::mt19937_64& rng) {
        auto b = counter_batch(train_tiles, batch, crop, n_ex, jitter, squash, cfg.exemplar_size, rng, device);
        AutocastGuard amp(device, precision);
        auto f = net->counter->features(b.x);
        auto ev = net->counter->exemplar_vectors(b.crops).view({b.x.size(0), n_ex, -1});
        auto d = net->counter->density(f, net->counter->similarity(f, ev)).to(torch::kFloat32);
        return torch::mse_loss(d, b.target * cfg.target_scale);
      },
      progress.sub(0.05, 0.6), [&](const EpochStats& st) -> nlohmann::json {
        if (st.epoch % every != 0 && st.epoch != tc.epochs) return nullptr;
        const double mae = counter_val_mae(net, val_tiles.empty() ? train_tiles : val_tiles, n_ex, device);
        best_counter.offer(st.epoch, mae);
        log_info("exemplar train: counter epoch " + std::to_string(st.epoch) + " loss " + std::to_string(st.loss) +
                 " val MAE " + std::to_string(mae));
        return {{"val_mae", mae}};
      });
  best_counter.restore_best();
  const double best_mae = best_counter.best_score();
  const int64_t best_epoch = best_counter.best_epoch();
  net->counter->eval();
  for (auto& p : net->counter->parameters()) p.set_requires_grad(false);

  // Stage 2: pseudo masks for the two-kind training images (eq. 5: the K whose masked density is closest
  // to the ground truth of the kind of interest).
  std::map<int64_t, int64_t> k_histogram;
  double pseudo_err_none = 0, pseudo_err_best = 0;
  const int64_t seg_epochs = req["seg_epochs"];
  if (seg_epochs > 0) {  // no segmenter training (e.g. only re-tuning an init_from model): no masks needed
    torch::NoGradGuard ng;
    for (size_t i = 0; i < bench_train.size(); ++i) {
      progress.report(0.6f + 0.1f * float(i) / bench_train.size(), "pseudo masks");
      auto& it = bench_train[i];
      auto x = it.image.to(device);
      const auto boxes = as_arrays(it.boxes);
      auto f = net->counter->features(x.unsqueeze(0));
      auto b = net->counter->exemplar_vectors(crop_boxes(x, boxes, cfg.exemplar_size));
      auto s = net->counter->similarity(f, b.unsqueeze(0));
      const int64_t mh = f.size(2), mw = f.size(3);
      auto target = it.density.to(device).unsqueeze(0);
      auto err_of = [&](const torch::Tensor& m) {
        auto d = net->counter->density(f, apply_mask(s, m, ms.delta)) / cfg.target_scale;
        if (ms.mask_output) d = d * nearest_up(m, d.size(2), d.size(3));  // as inference applies it
        return (d - target).pow(2).sum().item<double>();
      };
      pseudo_err_none += err_of(torch::ones({1, 1, mh, mw}, s.options()));
      if (pm == "kmeans") {
        auto [pe, ex] = patch_embeddings(net->counter, x, boxes, cfg.exemplar_size);
        std::vector<double> errs;
        std::vector<torch::Tensor> masks;
        for (int64_t k = k_min; k <= k_max; ++k) {
          masks.push_back(cluster_mask(pe, ex, k, req["seed"].get<uint64_t>() + i).view({1, 1, mh, mw}).to(device));
          errs.push_back(err_of(masks.back()));
        }
        const size_t best = select_k(errs);
        ++k_histogram[k_min + int64_t(best)];
        pseudo_err_best += errs[best];
        it.mask = masks[best][0].cpu();
      } else if (pm == "dotbox") {
        float bw = 0, bh = 0;
        for (const auto& bx : it.boxes) {
          bw += (bx.x1 - bx.x0) / it.boxes.size();
          bh += (bx.y1 - bx.y0) / it.boxes.size();
        }
        it.mask = dot_box_mask(it.interest.points, bw, bh, mh, mw, kStride).unsqueeze(0);
        pseudo_err_best += err_of(it.mask.unsqueeze(0).to(device));
      } else {
        auto fb = F::normalize(f, F::NormalizeFuncOptions().dim(1));
        auto bn = F::normalize(b.mean(0, true), F::NormalizeFuncOptions().dim(1));
        it.mask = (torch::einsum("ndhw,nd->nhw", {fb, bn}) >= ms.similarity_threshold).to(torch::kFloat32).cpu();
        pseudo_err_best += err_of(it.mask.unsqueeze(0).to(device));
      }
    }
  }
  nlohmann::json khist = nlohmann::json::object();
  for (auto& [k, c] : k_histogram) khist[std::to_string(k)] = c;
  log_info("exemplar train: pseudo masks done; mean L2 density error no mask " +
           std::to_string(pseudo_err_none / bench_train.size()) + ", chosen masks " +
           std::to_string(pseudo_err_best / bench_train.size()));

  // Stage 3: the segmentation model, L2 between cos(P(I), v) and the pseudo mask (eq. 7).
  TrainConfig ts = run.stage_config("segmenter", seg_epochs);
  SnapshotKeeper best_seg_net(*net->segmenter, run, "segmenter");
  auto seg_report = Trainer(ts, *net->segmenter).fit(
      bench_train.size(),
      [&](const std::vector<size_t>& batch, std::mt19937_64& rng) {
        std::vector<torch::Tensor> xs, cs, ms_;
        for (size_t i : batch) {
          const auto& it = bench_train[i];
          const auto d = Dihedral::random(rng());
          const int64_t H = it.image.size(1), W = it.image.size(2);
          auto img = d.apply(it.image);
          std::vector<std::array<float, 4>> boxes;
          for (const auto& bx : it.boxes) {
            auto tb = d.apply(bx, H, W);
            boxes.push_back({tb.x0, tb.y0, tb.x1, tb.y1});
          }
          while (int64_t(boxes.size()) < n_ex) boxes.push_back(boxes[boxes.size() % std::max<size_t>(1, boxes.size())]);
          boxes.resize(size_t(n_ex));
          xs.push_back(img);
          cs.push_back(crop_boxes(img, boxes, cfg.exemplar_size));
          ms_.push_back(d.apply(it.mask));
        }
        auto x = torch::stack(xs).to(device);
        auto crops = torch::cat(cs).to(device);
        AutocastGuard amp(device, precision);
        auto p = net->segmenter->features(x);
        auto v = net->segmenter->exemplar_vectors(crops).view({x.size(0), n_ex, -1});
        return torch::mse_loss(SegmenterImpl::mask(p, v), torch::stack(ms_).to(device));
      },
      progress.sub(0.7, 0.93), [&](const EpochStats& e) -> nlohmann::json {
        if (e.epoch % every != 0 && e.epoch != ts.epochs) return nullptr;
        const double err = bench_error(net, bench_val.empty() ? bench_train : bench_val, MaskMode::kSeg, ms, device);
        best_seg_net.offer(e.epoch, err);
        log_info("exemplar train: segmenter epoch " + std::to_string(e.epoch) + " loss " + std::to_string(e.loss) +
                 " val seg-then-count error " + std::to_string(err));
        return {{"val_error", err}};
      });
  best_seg_net.restore_best();
  const double best_seg = best_seg_net.best_score();
  const int64_t best_seg_epoch = best_seg_net.best_epoch();
  net->segmenter->eval();
  for (auto& p : net->segmenter->parameters()) p.set_requires_grad(false);

  // Stage 4 (choice, issue 24): the localizer on the single-kind tiles, conditioned on the frozen counter's
  // density (unmasked: one kind), MSE to the scaled Gaussian dot maps; the epoch with the lowest val MSE is kept.
  nlohmann::json loc_training = nullptr;
  if (localizer_copied) loc_training = {{"copied_from", init_from}};
  if (net->localizer && !localizer_copied) {
    // The same tiles with targets of one Gaussian (localizer_sigma) for every kind.
    auto sharpened = [&](std::vector<TrainTile> tiles) {
      const double sigma = req["localizer_sigma"];
      for (auto& t : tiles) {
        const int64_t H = t.image.size(1), W = t.image.size(2);
        auto v = gaussian_density(t.points, H, W, sigma);
        t.density = torch::from_blob(v.data(), {1, H, W}, torch::kFloat32).clone();
      }
      return tiles;
    };
    const auto loc_train = sharpened(train_tiles);
    const auto loc_val = sharpened(val_tiles.empty() ? train_tiles : val_tiles);
    auto density_of = [&](const torch::Tensor& x, const torch::Tensor& crops) {
      torch::NoGradGuard ng;
      auto f = net->counter->features(x);
      auto ev = net->counter->exemplar_vectors(crops).view({x.size(0), -1, cfg.dim});
      return (net->counter->density(f, net->counter->similarity(f, ev)) / cfg.target_scale).to(torch::kFloat32);
    };
    TrainConfig tl = run.stage_config("localizer", loc_epochs);
    SnapshotKeeper best_loc(*net->localizer, run, "localizer");
    auto loc_report = Trainer(tl, *net->localizer).fit(
        loc_train.size(),
        [&](const std::vector<size_t>& batch, std::mt19937_64& rng) {
          auto b = counter_batch(loc_train, batch, crop, n_ex, jitter, squash, cfg.exemplar_size, rng, device);
          auto d = density_of(b.x, b.crops);
          AutocastGuard amp(device, precision);
          return torch::mse_loss(net->localize(b.x, d).to(torch::kFloat32) * cfg.target_scale,
                                 b.target * cfg.target_scale);
        },
        progress.sub(0.93, 0.97), [&](const EpochStats& e) -> nlohmann::json {
          if (e.epoch % every != 0 && e.epoch != tl.epochs) return nullptr;
          torch::NoGradGuard ng;
          net->localizer->eval();
          double mse = 0;
          for (size_t i = 0; i < loc_val.size(); ++i) {
            const auto& t = loc_val[i];
            const int64_t S = t.image.size(1);
            const auto boxes = as_arrays(boxes_from_points(t.points, size_t(n_ex), t.box, S, S, 1000 + i));
            auto x = t.image.to(device).unsqueeze(0);
            auto fine = net->localize(x, density_of(x, crop_boxes(x[0], boxes, cfg.exemplar_size)));
            mse += torch::mse_loss(fine.to(torch::kFloat32) * cfg.target_scale,
                                   t.density.to(device).unsqueeze(0) * cfg.target_scale).item<double>();
          }
          mse /= double(std::max<size_t>(1, loc_val.size()));
          best_loc.offer(e.epoch, mse);
          log_info("exemplar train: localizer epoch " + std::to_string(e.epoch) + " loss " + std::to_string(e.loss) +
                   " val MSE " + std::to_string(mse));
          return {{"val_mse", mse}};
        });
    best_loc.restore_best();
    loc_training = {{"epochs_run", loc_report["epochs_run"]}, {"seconds", loc_report["seconds"]},
                    {"best_val_mse", best_loc.best_score()}, {"best_epoch", best_loc.best_epoch()},
                    {"history", loc_report["history"]}};
  }
  net->eval();
  net->to(torch::kCPU);

  // Mask threshold and dilation, tuned on the val splits (see train_options).
  const auto mask_tuning = tune_mask(net, bench_val.empty() ? bench_train : bench_val,
                                     tiles_as_items(val_tiles.empty() ? train_tiles : val_tiles, n_ex, 1000), req, ms);

  // Peak threshold tuned on the single-kind validation tiles (whole tiles, the model's density).
  const float md = req["peak_min_distance"];
  std::vector<torch::Tensor> maps;
  std::vector<std::vector<Point>> truth;
  {
    torch::NoGradGuard ng;
    const auto& tune = val_tiles.empty() ? train_tiles : val_tiles;
    for (size_t i = 0; i < tune.size(); ++i) {
      const auto& t = tune[i];
      const int64_t S = t.image.size(1);
      const auto boxes = as_arrays(boxes_from_points(t.points, size_t(n_ex), t.box, S, S, 1000 + i));
      auto [b, v] = exemplar_vectors(net, t.image, boxes);
      maps.push_back(point_map(run_tile(net, t.image.unsqueeze(0), b, v, MaskMode::kSeg, ms, boxes)[0]));
      truth.push_back(t.points);
    }
  }
  const float thr = tune_peak_threshold_on(maps, truth, md, req["eval_radius"].get<double>());

  nlohmann::json kinds = nlohmann::json::array();
  for (const auto& k : recipe.kinds) kinds.push_back({{"name", k.name}, {"box", k.box}, {"sigma", k.sigma}});
  nlohmann::json meta{
      {"architecture", cfg.to_json()},
      {"input", spec.to_json()},
      {"tiling", {{"tile_size", 512}, {"overlap", 96}}},
      {"thresholds",
       {{"mask_threshold", ms.mask_threshold}, {"delta", ms.delta}, {"similarity_threshold", ms.similarity_threshold},
        {"mask_output", ms.mask_output}, {"mask_dilate", ms.dilate}, {"peak_threshold", thr}, {"peak_min_distance", md},
        {"tuned_on", std::string("peak_threshold: single-kind val tiles, max point F1 (") +
                         (net->localizer ? "the localizer's map" : "the density") + ")"},
        {"mask_tuning", mask_tuning}}},
      {"kmeans", {{"k_min", k_min}, {"k_max", k_max}, {"n_init", 3}, {"embedding", "counter backbone, pooled, L2-normalised"}}},
      {"classes", {"cell"}},
      {"eval_radius", req["eval_radius"]},
      {"kinds", kinds},
      {"provenance",
       {{"recipe", recipe.json}, {"train_tiles", train_tiles.size()}, {"val_tiles", val_tiles.size()},
        {"segmenter_train_items", bench_train.size()}, {"segmenter_val_items", bench_val.size()},
        {"counter_initialised_from", init_meta}}},
      {"training",
       {{"counter", {{"epochs_run", counter_report["epochs_run"]}, {"seconds", counter_report["seconds"]},
                     {"best_val_mae", best_mae}, {"best_epoch", best_epoch}, {"history", counter_report["history"]}}},
        {"pseudo_masks", {{"kind", pm}, {"k_histogram", khist},
                          {"mean_l2_no_mask", pseudo_err_none / bench_train.size()},
                          {"mean_l2_chosen", pseudo_err_best / bench_train.size()}}},
        {"segmenter", {{"epochs_run", seg_report["epochs_run"]}, {"seconds", seg_report["seconds"]},
                       {"best_val_error", best_seg}, {"best_epoch", best_seg_epoch}, {"history", seg_report["history"]}}},
        {"localizer", loc_training}}}};
  run.save(meta, *net, device_name(device));
  return {{"out", out}, {"seconds", run.seconds()}, {"best_val_mae", best_mae}, {"best_seg_val_error", best_seg},
          {"k_histogram", khist}, {"peak_threshold", thr}};
}

}  // namespace cellcount::exemplar
