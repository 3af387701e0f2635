#include "methods/twinvae/twinvae_train.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "core/dataset.h"
#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/method.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "core/train_run.h"

namespace cellcount::twinvae {

namespace fs = std::filesystem;

Options train_options() {
  Options o = common_train_options("twinvae");
  add_options(o, {
      Opt::path("dataset").help("dataset folder: frames.csv (image,domain,split) + counts.csv of the labelled frames "
                                "(`cellcount synth --method twinvae`); without frames.csv all frames are `domain`").needed(),
      Opt::path("synthetic_dataset").help("a second folder whose synthetic frames join the training (\"\" = none)"),
      Opt::choice("domain", "natural", {"natural", "synthetic"}).help("domain of the frames of a folder without frames.csv").folded(),
      Opt::choice("mode", "twin", {"twin", "natural", "synthetic"})
          .help("twin: a synthetic pass then a natural pass per epoch; natural / synthetic: that domain only"),
      Opt::integer("epochs", 100).range(1, 1000000).help("training epochs"),
      Opt::number("synthetic_ratio", 2.0).range(0.0, 1000.0)
          .help("synthetic frames per epoch = ratio x natural training frames (the paper's best 2:1; 0 = the whole synthetic pool)"),
      Opt::number("rec_weight", 1e3).range(0.0, 1e9).help("weight of the pixel MSE (code default 1e3; the paper's PC setting 100)"),
      Opt::number("kl_weight", 1.0).range(0.0, 1e9).help("KLD factor (code default 1; the paper's PC setting 2)"),
      Opt::number("count_weight", 1.0).range(0.0, 1e9).help("weight of the count MSE (code default 1; the paper's PC setting 3)"),
      Opt::integer("regressor_start", 0).range(0, 1000000).help("first epoch with the count loss (code default 0; the paper: 100)"),
      Opt::number("noise", 0.0025).range(0.0, 1.0).help("sigma of the Gaussian noise added to training frames (upstream --n)"),
      Opt::path("transfer_from").help("model folder to start from (a twinvae model of the other modality); \"\" = from scratch"),
      Opt::choice("transfer_scheme", "simultaneous", {"frozen_outer", "frozen_core", "simultaneous", "thawing"})
          .help("with transfer_from: frozen_outer (readers/writers fixed), frozen_core (shared layers fixed), "
                "simultaneous (nothing fixed), thawing (layers freed in five stages)"),
      Opt::boolean("transfer_decoder", false).help("with transfer_from: train the decoder/writers too (false = decoder off: no reconstruction term)"),
      Opt::choice("idle_domain", "momentum", {"momentum", "still"})
          .help("the other domain's reader and writer during a pass: momentum (Adam keeps moving them on zero "
                "gradients, as upstream under PyTorch < 2.0) or still (not stepped, as PyTorch >= 2.0's zero_grad)").folded(),
      Opt::choice("precision", "auto", {"auto", "fp32", "bf16"})
          .help("training steps under autocast (bf16 convs and linears, fp32 weights and losses); \"auto\" = bf16 "
                "where the CPU has AMX, else fp32")
          .folded(),
      Opt::choice("count_mean", "batch", {"batch", "labelled"})
          .help("the count MSE's mean: over the batch, unlabelled frames included (upstream), or over its labelled frames")
          .folded(),
      Opt::number("light_jitter", 0.0).range(0.0, 0.5)
          .help("random illumination of each training frame: gain 1 +- j, offset +- j/2, a ramp of slope up to j/2 "
                "(0 = off, as upstream; our addition against reading the count off the frame's brightness)").folded(),
      Opt::number("clip_grad_norm", 0.0).range(0.0, 1e9).help("clip the gradient's norm to this (0 = off, as upstream)").folded(),
      Opt::integer("validate_every", 1).range(1, 1000000).help("epochs between validations (checkpoint selection on the validation frames, never test)"),
  });
  set_default(o, "batch_size", 128);
  set_default(o, "lr", 1e-4);
  set_default(o, "weight_decay", 1e-4);
  set_default(o, "schedule", "constant");
  set_default(o, "device", "cpu");
  return o;
}

bool is_outer(const std::string& n) {
  for (const char* p : {"synth_reader.", "natural_reader.", "synth_writer.", "natural_writer."})
    if (n.rfind(p, 0) == 0) return true;
  return false;
}

int thaw_stage(const std::string& n) {
  // Upstream's intended schedule (learner.py), matched by exact module path (upstream matches substrings, so
  // writer.1 also caught .10 and .12: 4.8 item 3). Choice: stage 0 is trainable from the first epoch (upstream's
  // "epoch == 0" step never fires since epochs start at 1).
  auto in = [&](std::initializer_list<const char*> mods) {
    for (const char* m : mods) {
      const std::string mm = m;
      for (const char* side : {"synth_", "natural_"}) {
        const std::string full = (mm.find("reader") == 0 || mm.find("writer") == 0) ? side + mm + "." : mm + ".";
        if (n.rfind(full, 0) == 0) return true;
      }
    }
    return false;
  };
  if (in({"fc1", "fc2", "fc3", "reader.0", "writer.12", "writer.10"})) return 0;
  if (in({"regressor", "reader.3", "writer.9", "writer.7"})) return 1;
  if (in({"common_encoder", "common_decoder", "reader.6", "writer.4", "writer.6"})) return 2;
  if (in({"reader.9", "writer.3", "writer.1"})) return 3;
  return 4;
}

void apply_scheme(TwinVae& net, const std::string& scheme, int64_t epoch, int64_t epochs) {
  // Stage reached at this (1-based) epoch: floor(k * epochs / 5) for k = 1..4.
  int stage = 0;
  for (int k = 1; k <= 4; ++k)
    if (epoch >= std::max<int64_t>(1, k * epochs / 5)) stage = k;
  for (auto& p : net->named_parameters()) {
    bool train = true;
    if (scheme == "frozen_outer") train = !is_outer(p.key());
    else if (scheme == "frozen_core") train = is_outer(p.key());
    else if (scheme == "thawing") train = thaw_stage(p.key()) <= stage;
    p.value().set_requires_grad(train);
  }
}

nlohmann::json score(TwinVae& net, const Frames& f, Domain d, const std::string& protocol, double noise, uint64_t seed,
                     torch::Device device) {
  torch::NoGradGuard ng;
  net->eval();
  const bool authors = protocol == "authors";
  std::mt19937_64 rng(seed);
  at::Generator gen = at::detail::createCPUGenerator(seed + 1);
  std::vector<double> pred, truth;
  const int64_t n = f.images.defined() ? f.images.size(0) : 0;
  for (int64_t i0 = 0; i0 < n; i0 += 64) {
    const int64_t i1 = std::min(n, i0 + 64);
    std::vector<int64_t> idx;
    for (int64_t i = i0; i < i1; ++i)
      if (f.labels[size_t(i)] != 0) idx.push_back(i);
    if (idx.empty()) continue;
    auto imgs = f.images.index_select(0, torch::tensor(idx));
    auto x = authors ? augment(imgs, noise, rng, gen) : clean(imgs);
    auto eps_gen = gen;
    auto o = net->forward(x.to(device), d, authors, false, eps_gen);
    auto c = o.count.to(torch::kCPU);
    for (size_t k = 0; k < idx.size(); ++k) {
      pred.push_back(std::round(c[int64_t(k)].item<double>()));  // the paper rounds before every metric
      truth.push_back(f.labels[size_t(idx[k])]);
    }
  }
  if (pred.empty()) return {{"n", 0}};
  const auto m = count_metrics(pred, truth);
  return {{"n", m.n}, {"mae", m.mae}, {"mre", m.mre}, {"accuracy", m.accuracy}, {"rmse", m.rmse}};
}

namespace {

struct PassSums {
  double total = 0, rec = 0, kl = 0, count = 0;
  int64_t images = 0;
};

// With idle_domain "still": the other domain's reader and writer get no gradient (undefined), so Adam skips them
// for this pass, as PyTorch >= 2.0's zero_grad(set_to_none=True) makes upstream's loop do.
void still_other_domain(TwinVae& net, Domain d) {
  const std::string other = d == Domain::synthetic ? "natural_" : "synth_";
  for (auto& p : net->named_parameters())
    if (p.key().rfind(other + "reader.", 0) == 0 || p.key().rfind(other + "writer.", 0) == 0) p.value().mutable_grad() = torch::Tensor();
}

// One pass over `order` of a domain's frames in batches; returns the loss sums (x images) and the images.
PassSums run_pass(TwinVae& net, torch::optim::Optimizer& opt, const Frames& f,
                                    const std::vector<int64_t>& order, Domain d, bool decode, bool count_on,
                                    const LossWeights& w, double noise, std::mt19937_64& rng, at::Generator& gen,
                                    torch::Device device, torch::ScalarType precision, const Progress& progress, float p0,
                                    float p1, double clip, bool still, double light) {
  net->train();
  if (still) still_other_domain(net, d);
  PassSums sums;
  const int64_t b = w.batch_size, n = int64_t(order.size());
  for (int64_t i0 = 0; i0 < n; i0 += b) {
    progress.report(p0 + (p1 - p0) * float(i0) / float(std::max<int64_t>(1, n)), std::string("training ") + domain_name(d));
    const int64_t i1 = std::min(n, i0 + b);
    std::vector<int64_t> idx(order.begin() + i0, order.begin() + i1);
    auto x = augment(f.images.index_select(0, torch::tensor(idx)), noise, rng, gen, light).to(device);
    std::vector<float> lab;
    for (auto i : idx) lab.push_back(f.labels[size_t(i)]);
    auto label = torch::tensor(lab).to(device);
    Output o;
    {
      // Mixed precision (bf16 autocast where the CPU has AMX, `precision` auto): the network's convolutions and
      // linears in bf16; its outputs go back to fp32 before the loss, so the MSEs and the KL sum are fp32.
      AutocastGuard amp(device, precision);
      o = net->forward(x, d, true, decode, gen);
    }
    for (auto* t : {&o.recon, &o.mu, &o.logvar, &o.z, &o.count})
      if (t->defined()) *t = t->to(torch::kFloat32);
    auto loss = twinvae_loss(o, x, label, w, count_on);
    CC_CHECK(loss.kl.item<double>() < 1e10, CELLCOUNT_ERR_INTERNAL, "twinvae: the KL term diverged (> 1e10), as upstream aborts");
    opt.zero_grad();
    loss.total.backward();
    if (clip > 0) torch::nn::utils::clip_grad_norm_(net->parameters(), clip);
    opt.step();
    const double k = double(i1 - i0);
    sums.total += loss.total.item<double>() * k;
    sums.rec += loss.rec.item<double>() * k;
    sums.kl += loss.kl.item<double>() * k;
    sums.count += loss.count.item<double>() * k;
    sums.images += i1 - i0;
  }
  return sums;
}

// Choice: every trainable parameter holds a (zero) gradient from the start. zero_grad() zeroes gradients rather
// than dropping them (LibTorch 1.13, and upstream's PyTorch before 2.0), so after its first step of each domain
// upstream's Adam keeps moving the other domain's reader/writer during a pass (zero gradient: momentum and weight
// decay). Defining them up front does the same from the first step, and makes a resumed run (whose loaded
// parameters have no gradients) equal to an uninterrupted one.
void define_grads(TwinVae& net) {
  for (auto& p : net->parameters())
    if (p.requires_grad() && !p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
}

std::vector<torch::Tensor> snapshot(TwinVae& net) {
  std::vector<torch::Tensor> s;
  for (auto& p : net->parameters()) s.push_back(p.detach().clone());
  for (auto& b : net->buffers()) s.push_back(b.detach().clone());
  return s;
}
void restore(TwinVae& net, const std::vector<torch::Tensor>& s) {
  torch::NoGradGuard ng;
  size_t k = 0;
  for (auto& p : net->parameters()) p.copy_(s[k++]);
  for (auto& b : net->buffers()) b.copy_(s[k++]);
}

// Epochs to convergence: the first validated epoch whose validation MAE is within 10 % (and 0.05) of the best.
int64_t converged_at(const nlohmann::json& history, double best) {
  for (const auto& h : history)
    if (h.contains("val_mae") && h["val_mae"].get<double>() <= best * 1.1 + 0.05) return h["epoch"];
  return -1;
}

}  // namespace

nlohmann::json train(const nlohmann::json& request, const Progress& progress) {
  TrainRun run("twinvae", train_options(), request, {"model.ckpt", "best.ckpt", "state.json"}, {"epochs"});
  const auto& req = run.request();
  CC_CHECK(req["schedule"] == "constant" && req["optimizer"] == "adam", CELLCOUNT_ERR_INVALID_ARGUMENT,
           "twinvae train: only optimizer \"adam\" with schedule \"constant\" (upstream's) is implemented");
  const auto device = resolve_device(req["device"]);
  const auto precision = resolve_precision(req["precision"], device);
  const std::string mode = req["mode"], scheme = req["transfer_scheme"], from = req["transfer_from"];
  const bool transfer = !from.empty();
  const bool decode = !transfer || req["transfer_decoder"].get<bool>();
  const int64_t epochs = req["epochs"];
  const double noise = req["noise"];
  const double clip = req["clip_grad_norm"];
  const bool still = req["idle_domain"] == "still";
  const double light = req["light_jitter"];
  LossWeights w;
  w.rec = req["rec_weight"];
  w.kl = req["kl_weight"];
  w.count = req["count_weight"];
  w.batch_size = req["batch_size"];
  w.count_over_labelled = req["count_mean"] == "labelled";

  auto data = load_twin_data(req["dataset"], req["synthetic_dataset"], req["domain"], progress.sub(0, 0.05));
  const bool use_syn = mode != "natural", use_nat = mode != "synthetic";
  CC_CHECK(!use_syn || data.syn_train.labels.size() > 0, CELLCOUNT_ERR_DATASET,
           "twinvae train: mode \"" + mode + "\" needs synthetic training frames (frames.csv domain synthetic, or synthetic_dataset)");
  CC_CHECK(!use_nat || data.nat_train.labels.size() > 0, CELLCOUNT_ERR_DATASET,
           "twinvae train: mode \"" + mode + "\" needs natural training frames");
  nlohmann::json warnings = nlohmann::json::array();
  if (use_nat && data.nat_train.labelled() == 0) {
    const std::string msg = use_syn
        ? "twinvae train: none of the " + std::to_string(data.nat_train.labels.size()) +
              " natural training frames is labelled: the regressor is fed by the synthetic frames only"
        : "twinvae train: none of the natural training frames is labelled and mode is \"natural\": the regressor gets no count signal";
    log_warn(msg);
    warnings.push_back(msg);
  }
  // Checkpoint selection: the labelled natural validation frames (the synthetic ones in mode synthetic, or when
  // there are no natural ones); never the test frames.
  const bool val_nat = use_nat && data.nat_val.labelled() > 0;
  const Frames& val = val_nat ? data.nat_val : data.syn_val;
  const Domain val_domain = val_nat ? Domain::natural : Domain::synthetic;
  if (val.labelled() == 0) {
    warnings.push_back("twinvae train: no labelled validation frames: the last epoch is shipped");
    log_warn(warnings.back());
  }

  auto net = seeded(run.seed(), [] { return TwinVae(); });
  nlohmann::json transfer_info = nullptr;
  if (transfer) {
    const auto files = read_model(from);
    CC_CHECK(files.meta.value("method", "") == "twinvae", CELLCOUNT_ERR_WRONG_METHOD,
             "twinvae train: transfer_from '" + from + "' is not a twinvae model");
    load_weights(*net, files);
    transfer_info = {{"model", from}, {"weights_sha256", files.meta.value("weights_sha256", "")},
                     {"modality", files.meta.value("modality", "")}, {"scheme", scheme}, {"decoder", decode},
                     {"command", files.meta.contains("provenance") ? files.meta["provenance"].value("command", nlohmann::json("")) : nlohmann::json("")}};
  }
  net->to(device);
  if (transfer) apply_scheme(net, scheme, 1, epochs);
  // Choice (4.8 item 1): a transfer starts a fresh Adam at the request's lr and weight decay; upstream loads the
  // checkpoint's optimiser state, which silently replaces --lr and --weight_decay.
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(req["lr"].get<double>()).weight_decay(req["weight_decay"].get<double>()));

  // Seeded everything (4.8 item 7): batches and augmentation from `rng`, noise and z from `gen`. Dropout draws
  // from LibTorch's global generator, seeded here from the run's seed (a concurrent training in the same
  // process shares that generator).
  std::mt19937_64 rng(run.seed() * 7919 + 17);
  at::Generator gen = at::detail::createCPUGenerator(run.seed() + 12345);
  {
    std::lock_guard<std::mutex> lock(torch_rng_mutex());
    torch::manual_seed(run.seed() + 777);
  }
  nlohmann::json history = nlohmann::json::array();
  int64_t start = 1, syn_cursor = 0;
  double best = INFINITY;
  int64_t best_epoch = 0;
  std::vector<torch::Tensor> best_state = snapshot(net);
  std::vector<int64_t> syn_perm;
  const auto ck_model = run.checkpoint("model.ckpt"), ck_best = run.checkpoint("best.ckpt"), ck_state = run.checkpoint("state.json");
  if (run.resuming() && fs::exists(ck_state) && req["resume"].get<bool>()) {
    std::ifstream in(ck_state);
    nlohmann::json st = nlohmann::json::parse(in);
    torch::serialize::InputArchive a;
    a.load_from(ck_model);
    net->load(a);
    torch::serialize::InputArchive ao;
    a.read("optimizer", ao);
    opt.load(ao);
    torch::Tensor gs, ggs;
    a.read("gen_state", gs);
    gen.set_state(gs);
    a.read("global_gen_state", ggs);  // dropout's generator, where the interrupted run left it
    {
      std::lock_guard<std::mutex> lock(torch_rng_mutex());
      at::Generator global = at::detail::getDefaultCPUGenerator();  // (shares the default generator)
      global.set_state(ggs);
    }
    std::istringstream(st["rng"].get<std::string>()) >> rng;
    {
      // (tensors, not a network: building one would draw from the global generator restored above)
      torch::serialize::InputArchive ab;
      ab.load_from(ck_best);
      for (size_t i = 0; i < best_state.size(); ++i) ab.read("t" + std::to_string(i), best_state[i]);
    }
    start = st["epoch"].get<int64_t>() + 1;
    history = st["history"];
    best = st["best"].is_null() ? INFINITY : st["best"].get<double>();
    best_epoch = st["best_epoch"];
    syn_cursor = st["syn_cursor"];
    syn_perm = st["syn_perm"].get<std::vector<int64_t>>();
    log_info("twinvae train: resumed after epoch " + std::to_string(start - 1));
  }
  const int64_t n_syn_pool = data.syn_train.images.defined() ? data.syn_train.images.size(0) : 0;
  const int64_t n_nat = data.nat_train.images.defined() ? data.nat_train.images.size(0) : 0;
  const double ratio = req["synthetic_ratio"];
  const int64_t n_syn_epoch = !use_syn ? 0 : (!use_nat || ratio == 0) ? n_syn_pool
                                                                      : std::min<int64_t>(n_syn_pool, std::llround(ratio * double(n_nat)));
  if (use_syn && use_nat && ratio > 0 && std::llround(ratio * double(n_nat)) > n_syn_pool) {
    warnings.push_back("twinvae train: the synthetic pool (" + std::to_string(n_syn_pool) + ") is smaller than ratio x natural (" +
                       std::to_string(std::llround(ratio * double(n_nat))) + "): each epoch uses the whole pool");
    log_warn(warnings.back());
  }
  auto shuffled = [&](int64_t n) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[size_t(i)] = i;
    for (int64_t i = n - 1; i > 0; --i) std::swap(v[size_t(i)], v[uniform_index(rng(), uint64_t(i + 1))]);
    return v;
  };
  double train_seconds = 0;
  int64_t train_images = 0;
  for (int64_t e = start; e <= epochs; ++e) {
    const auto t0 = std::chrono::steady_clock::now();
    if (transfer) apply_scheme(net, scheme, e, epochs);
    define_grads(net);
    const bool count_on = e > req["regressor_start"].get<int64_t>() || req["regressor_start"].get<int64_t>() == 0;
    const float p0 = 0.05f + 0.9f * float(e - 1) / float(epochs), p1 = 0.05f + 0.9f * float(e) / float(epochs);
    double loss_sum = 0;
    int64_t seen = 0;
    nlohmann::json row{{"epoch", e}};
    if (use_syn) {  // 1. synthetic pass: the next n_syn_epoch frames of a shuffled cycle through the pool
      std::vector<int64_t> order;
      while (int64_t(order.size()) < n_syn_epoch) {
        if (syn_cursor >= int64_t(syn_perm.size())) {
          syn_perm = shuffled(n_syn_pool);
          syn_cursor = 0;
        }
        order.push_back(syn_perm[size_t(syn_cursor++)]);
      }
      const auto ps = run_pass(net, opt, data.syn_train, order, Domain::synthetic, decode, count_on, w, noise, rng, gen, device,
                               precision, progress, p0, use_nat ? (p0 + p1) / 2 : p1, clip, still, light);
      const double k = double(std::max<int64_t>(1, ps.images));
      row["synthetic_loss"] = ps.total / k;
      row["synthetic_terms"] = {{"rec", ps.rec / k}, {"kl", ps.kl / k}, {"count", ps.count / k}};
      loss_sum += ps.total;
      seen += ps.images;
    }
    if (use_nat) {  // 2. natural pass over every natural training frame, labelled or not
      const auto ps = run_pass(net, opt, data.nat_train, shuffled(n_nat), Domain::natural, decode, count_on, w, noise, rng, gen,
                               device, precision, progress, use_syn ? (p0 + p1) / 2 : p0, p1, clip, still, light);
      const double k = double(std::max<int64_t>(1, ps.images));
      row["natural_loss"] = ps.total / k;
      row["natural_terms"] = {{"rec", ps.rec / k}, {"kl", ps.kl / k}, {"count", ps.count / k}};
      loss_sum += ps.total;
      seen += ps.images;
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    train_seconds += secs;
    train_images += seen;
    row["loss"] = loss_sum / double(std::max<int64_t>(1, seen));
    row["seconds"] = secs;
    if (val.labelled() > 0 && (e % req["validate_every"].get<int64_t>() == 0 || e == epochs)) {
      const auto s = score(net, val, val_domain, "clean", noise, 4242, device);
      row["val_mae"] = s["mae"];
      row["val_accuracy"] = s["accuracy"];
      if (s["mae"].get<double>() < best) {
        best = s["mae"];
        best_epoch = e;
        best_state = snapshot(net);
      }
    } else if (val.labelled() == 0) {
      best_state = snapshot(net);
      best_epoch = e;
    }
    history.push_back(row);
    log_info("twinvae epoch " + std::to_string(e) + "/" + std::to_string(epochs) + ": " + row.dump());
    if (e % req["checkpoint_every"].get<int64_t>() == 0 || e == epochs) {
      torch::serialize::OutputArchive a, ao;
      net->save(a);
      opt.save(ao);
      a.write("optimizer", ao);
      a.write("gen_state", gen.get_state());
      {
        std::lock_guard<std::mutex> lock(torch_rng_mutex());
        a.write("global_gen_state", at::detail::getDefaultCPUGenerator().get_state());
      }
      a.save_to(ck_model);
      {
        torch::serialize::OutputArchive ab;
        for (size_t i = 0; i < best_state.size(); ++i) ab.write("t" + std::to_string(i), best_state[i]);
        ab.save_to(ck_best);
      }
      std::ostringstream rs;
      rs << rng;
      std::ofstream(ck_state) << nlohmann::json{{"epoch", e}, {"history", history}, {"best", std::isfinite(best) ? nlohmann::json(best) : nlohmann::json()},
                                                {"best_epoch", best_epoch}, {"syn_cursor", syn_cursor}, {"syn_perm", syn_perm},
                                                {"rng", rs.str()}}.dump();
    }
  }
  restore(net, best_state);
  net->to(torch::kCPU);
  net->eval();
  for (auto& p : net->parameters()) p.set_requires_grad(true);
  // The record (not used for any choice): the shipped network's scores on the natural test frames.
  nlohmann::json metrics = nlohmann::json::object();
  const auto cpu = torch::Device(torch::kCPU);
  if (val.labelled() > 0) metrics["val"] = {{"domain", domain_name(val_domain)}, {"clean", score(net, val, val_domain, "clean", noise, 4242, cpu)}};
  if (data.nat_test.labelled() > 0)
    metrics["test"] = {{"domain", "natural"},
                       {"clean", score(net, data.nat_test, Domain::natural, "clean", noise, 1, cpu)},
                       {"authors", score(net, data.nat_test, Domain::natural, "authors", noise, 1, cpu)}};
  const double img_per_s = train_seconds > 0 ? double(train_images) / train_seconds : 0;
  nlohmann::json report{{"epochs_run", int64_t(history.size())},
                        {"resumed_from", start - 1},
                        {"best_epoch", best_epoch},
                        {"best_val_mae", std::isfinite(best) ? nlohmann::json(best) : nlohmann::json()},
                        {"converged_epoch", std::isfinite(best) ? converged_at(history, best) : -1},
                        {"train_seconds", train_seconds},
                        {"images_per_second", img_per_s},
                        {"history", history}};
  InputSpec spec;
  spec.channels = 1;
  spec.rgb_rule = "grey";  // upstream converts every image to 'L'
  spec.normalization.mode = "fixed";
  spec.normalization.scale = 1.0 / 255.0;
  spec.align = 1;
  spec.min_side = kMinSide;
  // The modality, from the synthesize record of the dataset when it has one (provenance and transfer checks).
  std::string modality;
  {
    const auto rec = fs::path(req["dataset"].get<std::string>()) / "synthesis.json";
    if (fs::exists(rec)) {
      std::ifstream in(rec);
      const auto j = nlohmann::json::parse(in, nullptr, false);
      if (j.is_object() && j.contains("request") && j["request"].contains("modality")) modality = j["request"]["modality"];
    }
  }
  nlohmann::json meta{
      {"modality", modality},
      {"architecture", {{"h_dim", 512}, {"z_dim", 256}, {"dropout", 0.1}, {"leak", 0.2}, {"input_side", kSide},
                        {"conv_transpose", "conv + pixel_shuffle (exact)"}}},
      {"input", spec.to_json()},
      // Not tiled: every chamber image is resized to 128x128 whole (the section is required of every model).
      {"tiling", {{"tile_size", 128}, {"overlap", 0}}},
      {"thresholds", nlohmann::json::object()},
      {"classes", {"cell"}},
      {"count_range", {1, 30}},
      {"settings", {{"which", w.rec == 1e3 && w.kl == 1 && w.count == 1 && req["lr"] == 1e-4 && req["weight_decay"] == 1e-4 &&
                                      req["batch_size"] == 128 && req["regressor_start"] == 0 && clip == 0
                                  ? "code defaults"
                                  : "own (see loss and request)"},
                    {"loss", {{"rec_weight", w.rec}, {"kl_weight", w.kl}, {"count_weight", w.count}, {"reconstruction", "mse"},
                              {"beta", "1/(batch_size*128*128), configured batch size"}}},
                    {"optimizer", "adam"}, {"precision", precision_name(precision)}, {"clip_grad_norm", clip}, {"light_jitter", light}, {"count_mean", req["count_mean"]}, {"lr", req["lr"]}, {"weight_decay", req["weight_decay"]}, {"batch_size", req["batch_size"]},
                    {"mode", mode}, {"synthetic_ratio", ratio}, {"synthetic_frames_per_epoch", n_syn_epoch},
                    {"natural_frames_per_epoch", use_nat ? n_nat : 0}}},
      {"choices", {
          {"logvar_clamp", "logvar <= 15 (transfer repo)"},
          {"transfer_optimizer", "fresh Adam at the request's lr/weight_decay (upstream reuses the checkpoint's optimiser state, 4.8.1)"},
          {"thawing", "stage 0 trainable from epoch 1; exact module paths (upstream's epoch-0 step never fires and matches substrings, 4.8.3)"},
          {"test_protocols", "clean (mu, clean frames) and authors (sampled z, augmented frames), 4.8.4"},
          {"beta", "configured batch size, as upstream (4.8.5)"},
          {"seeds", "every draw seeded from the request's seed (upstream seeds neither the generator nor Python's random, 4.8.7)"},
          {"checkpoint_selection", "best clean MAE on the labelled validation frames"},
          {"label_zero", "label 0 = unlabelled (upstream): a natural frame with 0 cells cannot be a labelled training frame"}}},
      {"provenance", {{"dataset_split", data.split_source},
                      {"frames", {{"synthetic_train", n_syn_pool}, {"natural_train", n_nat}, {"natural_train_labelled", data.nat_train.labelled()},
                                  {"natural_val_labelled", data.nat_val.labelled()}, {"natural_test_labelled", data.nat_test.labelled()}}},
                      {"transfer", transfer_info},
                      {"warnings", warnings}}},
      {"metrics", metrics},
      {"training", report}};
  auto saved = run.save(meta, *net, device_name(device));
  return {{"out", run.out()}, {"epochs_run", report["epochs_run"]}, {"resumed_from", start - 1}, {"best_epoch", best_epoch}, {"seconds", train_seconds},
          {"images_per_second", img_per_s}, {"metrics", metrics}, {"warnings", warnings}};
}

}  // namespace cellcount::twinvae
