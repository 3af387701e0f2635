// twinvae: layer shapes and parameter counts of CODE-FACTS 4.2, ConvTranspose2d as conv + pixel_shuffle against
// LibTorch's ConvTranspose2d with the same weights (values and gradients), the loss of 4.3 (label 0 =
// unlabelled, beta from the configured batch), the paper's count distribution and generator ranges, both
// renderers deterministic by seed, the transfer schemes' parameter groups, image sizes, and a tiny end-to-end
// synthesize -> train (all natural frames unlabelled: warns) -> predict (translation image) -> evaluate.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <fstream>

#include "cellcount/cellcount.h"
#include "core/device.h"
#include "core/error.h"
#include "core/evaluate.h"
#include "core/image_tensor.h"
#include "core/method.h"
#include "core/model_io.h"
#include "core/train_run.h"
#include "core/types.h"
#include "io/image_file.h"
#include "methods/twinvae/twinvae_data.h"
#include "methods/twinvae/twinvae_net.h"
#include "methods/twinvae/twinvae_render.h"
#include "methods/twinvae/twinvae_train.h"

using namespace cellcount;
using namespace cellcount::twinvae;
namespace fs = std::filesystem;

namespace {
fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / ("cellcount_twinvae_" + name);
  fs::remove_all(d);
  return d;
}
int64_t numel(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}
std::vector<float> flat_background(float v) { return std::vector<float>(size_t(kSide * kSide), v); }
// An assets folder with flat 128x128 backgrounds (the tests do not need the research assets).
fs::path fake_assets() {
  auto d = fresh_dir("assets");
  fs::create_directories(d);
  for (auto [name, v] : {std::pair<const char*, float>{"mean128_bf.png", 200.0f}, {"mean128_pc.png", 60.0f}}) {
    Image img;
    img.width = img.height = kSide;
    img.channels = 1;
    img.data.assign(size_t(kSide * kSide), v);
    io::write_image((d / name).string(), img, 8, true);
  }
  return d;
}
}  // namespace

TEST(TwinVae, ShapesAndParameterCounts) {
  TwinVae net;
  net->eval();
  auto x = torch::rand({2, 1, 128, 128});
  EXPECT_EQ(net->synth_reader->forward(x).sizes(), (std::vector<int64_t>{2, 256, 5, 5}));
  auto o = net->forward(x, Domain::natural, false, true);
  EXPECT_EQ(o.recon.sizes(), (std::vector<int64_t>{2, 1, 128, 128}));
  EXPECT_EQ(o.mu.sizes(), (std::vector<int64_t>{2, 256}));
  EXPECT_EQ(o.count.sizes(), (std::vector<int64_t>{2}));
  EXPECT_TRUE(torch::equal(o.z, o.mu));  // no sampling: z = mu
  EXPECT_GT(o.recon.min().item<float>(), 0.0f);
  EXPECT_LT(o.recon.max().item<float>(), 1.0f);
  // CODE-FACTS 4.2's table.
  EXPECT_EQ(numel(*net), 11363331);
  EXPECT_EQ(numel(*net->natural_reader), 1076480);
  EXPECT_EQ(numel(*net->common_encoder), 3277312);
  EXPECT_EQ(numel(*net->common_decoder), 3277568);
  EXPECT_EQ(numel(*net->synth_writer), 1081217);
  EXPECT_EQ(numel(*net->regressor), 98817);
  EXPECT_EQ(numel(*net->fc1) + numel(*net->fc2) + numel(*net->fc3), 394240);
  // The decoder's intermediate sizes 5 -> 13 -> 29 -> 61 -> 62 -> 128.
  auto h = net->common_decoder->forward(net->fc3->forward(o.mu));
  EXPECT_EQ(h.size(2), 5);
  std::vector<int64_t> sides;
  for (size_t i = 0; i < net->synth_writer->size(); ++i) {
    h = net->synth_writer[i]->as<ConvT2d>() ? net->synth_writer[i]->as<ConvT2d>()->forward(h) : h;
    if (net->synth_writer[i]->as<ConvT2d>()) sides.push_back(h.size(2));
  }
  EXPECT_EQ(sides, (std::vector<int64_t>{13, 29, 61, 62, 128}));
}

TEST(TwinVae, ConvTransposeAsPixelShuffleIsExact) {
  torch::manual_seed(3);
  // Every transposed convolution of the network (channels cut where they do not change the arithmetic).
  const int64_t cfg[][5] = {{16, 8, 5, 2, 1}, {12, 6, 5, 2, 5}, {8, 4, 5, 2, 13}, {6, 5, 5, 2, 29}, {4, 4, 2, 1, 61}, {4, 1, 6, 2, 62}};
  for (const auto& c : cfg) {
    ConvT2d ours(c[0], c[1], c[2], c[3]);
    torch::nn::ConvTranspose2d ref(torch::nn::ConvTranspose2dOptions(c[0], c[1], c[2]).stride(c[3]));
    {
      torch::NoGradGuard ng;
      ref->weight.copy_(ours->weight);
      ref->bias.copy_(ours->bias);
    }
    auto x = torch::randn({2, c[0], c[4], c[4] + 1}, torch::requires_grad());  // non-square on purpose
    auto x2 = x.detach().clone().requires_grad_(true);
    auto a = ours->forward(x), b = ref->forward(x2);
    ASSERT_EQ(a.sizes(), b.sizes()) << "k " << c[2] << " s " << c[3];
    EXPECT_LT((a - b).abs().max().item<double>(), 1e-4) << "k " << c[2] << " s " << c[3];
    auto g = torch::randn_like(a);
    (a * g).sum().backward();
    (b * g).sum().backward();
    EXPECT_LT((ours->weight.grad() - ref->weight.grad()).abs().max().item<double>(), 1e-3);
    EXPECT_LT((ours->bias.grad() - ref->bias.grad()).abs().max().item<double>(), 1e-3);
    EXPECT_LT((x.grad() - x2.grad()).abs().max().item<double>(), 1e-4);
  }
}

TEST(TwinVae, LossMasksUnlabelledAndScalesKl) {
  Output o;
  o.mu = torch::zeros({2, 4});
  o.logvar = torch::zeros({2, 4});
  o.count = torch::tensor({7.0f, 4.0f}, torch::requires_grad());
  auto x = torch::zeros({2, 1, 128, 128});
  LossWeights w;
  w.batch_size = 128;
  auto label = torch::tensor({0.0f, 5.0f});  // the first frame is unlabelled
  auto l = twinvae_loss(o, x, label, w, true);
  // (0 - 0)^2 and (4 - 5)^2 over the batch of 2: the unlabelled frame adds no error but counts in the mean.
  EXPECT_NEAR(l.count.item<double>(), 0.5, 1e-6);
  EXPECT_NEAR(l.rec.item<double>(), 0.0, 1e-12);  // decoder off
  EXPECT_NEAR(l.kl.item<double>(), 0.0, 1e-12);   // mu = 0, logvar = 0
  l.total.backward();
  EXPECT_EQ(o.count.grad()[0].item<float>(), 0.0f);  // no gradient through an unlabelled frame
  EXPECT_NE(o.count.grad()[1].item<float>(), 0.0f);
  // Count off (regressor_start): no count term.
  EXPECT_EQ(twinvae_loss(o, x, label, w, false).count.item<double>(), 0.0);
  // count_mean "labelled": the mean over the labelled frames only, (4 - 5)^2 / 1; a batch without labels gives 0.
  LossWeights wl = w;
  wl.count_over_labelled = true;
  EXPECT_NEAR(twinvae_loss(o, x, label, wl, true).count.item<double>(), 1.0, 1e-6);
  EXPECT_EQ(twinvae_loss(o, x, torch::zeros({2}), wl, true).count.item<double>(), 0.0);
  // KL: -0.5 * beta * sum(1 + logvar - mu^2 - e^logvar), beta = 1/(configured batch * 128^2).
  o.mu = torch::ones({2, 4});
  const double kl = twinvae_loss(o, x, label, w, true).kl.item<double>();
  EXPECT_NEAR(kl, 0.5 * 8 / (128.0 * 16384.0), 1e-12);
  w.batch_size = 64;
  EXPECT_NEAR(twinvae_loss(o, x, label, w, true).kl.item<double>(), 2 * kl, 1e-12);
  // Reconstruction: 1e3 x pixel MSE.
  o.recon = torch::full({2, 1, 128, 128}, 0.1f);
  EXPECT_NEAR(twinvae_loss(o, x, label, w, true).rec.item<double>(), 1e3 * 0.01, 1e-4);
}

TEST(TwinVae, PaperCountDistribution) {
  std::mt19937_64 rng(5);
  std::vector<int> hist(31, 0);
  const int n = 61400;
  double mean = 0;
  for (int i = 0; i < n; ++i) {
    const int k = draw_paper_count(rng);
    ASSERT_GE(k, 1);
    ASSERT_LE(k, 30);
    hist[size_t(k)]++;
    mean += k;
  }
  EXPECT_NEAR(mean / n, 11.82, 0.1);
  EXPECT_NEAR(hist[1] / double(n), 35.0 / 614, 0.004);
  EXPECT_NEAR(hist[30] / double(n), 5.0 / 614, 0.002);
  EXPECT_NEAR(hist[29] / double(n), 7.0 / 614, 0.002);
}

TEST(TwinVae, RenderersAreDeterministicAndKeepTheirRanges) {
  for (Modality m : {Modality::bf, Modality::pc}) {
    const float level = m == Modality::bf ? 200.0f : 60.0f;
    const auto bg = flat_background(level);
    std::mt19937_64 a(11), b(11), c(12);
    const auto f1 = render_synthetic(m, bg, a), f2 = render_synthetic(m, bg, b), f3 = render_synthetic(m, bg, c);
    EXPECT_EQ(f1.pixels, f2.pixels);
    EXPECT_EQ(f1.count, f2.count);
    EXPECT_NE(f1.pixels, f3.pixels);
    // Cells only where the generator's centre ranges put them: BF x >= r + 26 - r - 2 (deformation) = 24,
    // PC x >= 12 - 2 = 10; the blur reaches 3 pixels further. Left of that the frame is the background.
    std::mt19937_64 r(3);
    const auto f = render_synthetic_n(m, bg, 30, r);
    EXPECT_EQ(f.count, 30);
    const int clear = m == Modality::bf ? 20 : 6;
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < clear; ++x) ASSERT_EQ(f.pixels[size_t(y * kSide + x)], level) << x << "," << y;
    float lo = 255, hi = 0;
    for (float v : f.pixels) lo = std::min(lo, v), hi = std::max(hi, v);
    // BF: cells 180..209 with edges 80..129 (darker than the background); PC: edges 160..209 (brighter).
    if (m == Modality::bf) EXPECT_LT(lo, 150.0f);
    else EXPECT_GT(hi, 150.0f);
    std::mt19937_64 n1(21), n2(21);
    const auto g1 = render_natural_n(m, bg, 17, n1), g2 = render_natural_n(m, bg, 17, n2);
    EXPECT_EQ(g1.pixels, g2.pixels);
    EXPECT_EQ(g1.count, 17);
  }
}

TEST(TwinVae, TransferSchemesFreezeTheRightGroups) {
  EXPECT_TRUE(is_outer("natural_reader.0.weight"));
  EXPECT_TRUE(is_outer("synth_writer.12.bias"));
  EXPECT_FALSE(is_outer("common_encoder.0.weight"));
  EXPECT_FALSE(is_outer("regressor.4.weight"));
  EXPECT_EQ(thaw_stage("fc2.0.weight"), 0);
  EXPECT_EQ(thaw_stage("synth_writer.12.weight"), 0);
  EXPECT_EQ(thaw_stage("synth_writer.1.weight"), 3);  // exact paths: writer.1 is not writer.12 (upstream's substring bug)
  EXPECT_EQ(thaw_stage("natural_reader.3.weight"), 1);
  EXPECT_EQ(thaw_stage("common_decoder.1.weight"), 2);
  EXPECT_EQ(thaw_stage("natural_reader.9.bias"), 3);
  EXPECT_EQ(thaw_stage("synth_writer.0.weight"), 4);
  TwinVae net;
  auto trainable = [&](const std::string& name) { return net->named_parameters()[name].requires_grad(); };
  apply_scheme(net, "frozen_outer", 1, 10);
  EXPECT_FALSE(trainable("natural_reader.0.weight"));
  EXPECT_TRUE(trainable("common_encoder.0.weight"));
  apply_scheme(net, "frozen_core", 1, 10);
  EXPECT_TRUE(trainable("natural_reader.0.weight"));
  EXPECT_FALSE(trainable("regressor.0.weight"));
  apply_scheme(net, "thawing", 1, 10);
  EXPECT_TRUE(trainable("fc1.0.weight"));
  EXPECT_FALSE(trainable("regressor.0.weight"));
  apply_scheme(net, "thawing", 2, 10);  // floor(10/5) = 2: the regressor joins
  EXPECT_TRUE(trainable("regressor.0.weight"));
  EXPECT_FALSE(trainable("synth_writer.0.weight"));
  apply_scheme(net, "thawing", 8, 10);
  EXPECT_TRUE(trainable("synth_writer.0.weight"));
  apply_scheme(net, "simultaneous", 1, 10);
  for (const auto& p : net->parameters()) EXPECT_TRUE(p.requires_grad());
}

TEST(TwinVae, AnyChamberSizeIsResizedAndTinyOnesRefused) {
  auto x = to_network_input(torch::full({3, 300, 200}, 255.0f), 1.0 / 255.0);  // RGB -> grey
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{1, 128, 128}));
  EXPECT_NEAR(x.mean().item<double>(), 1.0, 1e-5);
  EXPECT_EQ(to_network_input(torch::zeros({1, 40, 64}), 1.0).sizes(), (std::vector<int64_t>{1, 128, 128}));
  try {
    to_network_input(torch::zeros({1, 8, 8}), 1.0);
    FAIL() << "8x8 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), CELLCOUNT_ERR_INVALID_ARGUMENT);
    EXPECT_NE(std::string(e.what()).find("8x8"), std::string::npos) << e.what();
  }
  // Augmentation keeps the shape, is seeded, and adds the noise.
  std::mt19937_64 r1(1), r2(1);
  at::Generator g1 = at::detail::createCPUGenerator(2), g2 = at::detail::createCPUGenerator(2);
  auto u8 = torch::randint(0, 255, {3, 128, 128}).to(torch::kUInt8);
  auto a = augment(u8, 0.0025, r1, g1), b = augment(u8, 0.0025, r2, g2);
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{3, 1, 128, 128}));
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(TwinVae, LightJitterVariesEachFramesIlluminationAndIsSeeded) {
  // One frame repeated 64 times: without the jitter every copy has about the same mean (geometry only);
  // with it (0.2) the means spread by the drawn gains and offsets, the same seed gives the same batch,
  // and light 0 is the upstream augmentation exactly (same draws, same output).
  auto u8 = torch::full({64, 128, 128}, 150, torch::kUInt8);
  std::mt19937_64 r0(5), r1(5), r2(5), r3(5);
  at::Generator g0 = at::detail::createCPUGenerator(1), g1 = at::detail::createCPUGenerator(1),
                g2 = at::detail::createCPUGenerator(1), g3 = at::detail::createCPUGenerator(1);
  auto plain = augment(u8, 0.0, r0, g0), zero = augment(u8, 0.0, r1, g1, 0.0);
  EXPECT_TRUE(torch::equal(plain, zero));
  auto a = augment(u8, 0.0, r2, g2, 0.2), b = augment(u8, 0.0, r3, g3, 0.2);
  EXPECT_TRUE(torch::equal(a, b));
  const auto means = a.mean({1, 2, 3});
  EXPECT_LT(plain.mean({1, 2, 3}).std().item<double>(), 1e-6);
  EXPECT_GT(means.std().item<double>(), 0.03);  // 150/255 x gain sd 0.115 and offset sd 0.058: about 0.09
  EXPECT_GT(means.min().item<double>(), 150.0 / 255 * 0.8 - 0.1 - 1e-6);
  EXPECT_LT(means.max().item<double>(), 150.0 / 255 * 1.2 + 0.1 + 1e-6);
  // The ramp: within a frame the illumination varies (a flat frame is no longer flat).
  EXPECT_GT(a.std({1, 2, 3}).max().item<double>(), 1e-3);
}

TEST(TwinVae, SynthesizeTrainPredictEvaluate) {
  const auto assets = fake_assets();
  const auto data = fresh_dir("data"), model = fresh_dir("model");
  auto r = synthesize({{"out", data.string()}, {"assets", assets.string()}, {"modality", "pc"}, {"synthetic_train", 6},
                       {"synthetic_val", 2}, {"synthetic_test", 1}, {"natural_train", 6}, {"natural_test", 3},
                       {"labelled_fraction", 0.0}, {"threads", 1}},
                      Progress());
  EXPECT_EQ(r["frames"]["natural_train"]["labelled"], 0);
  EXPECT_TRUE(fs::exists(data / "frames.csv"));
  // Written whole: the same request again is refused (the folder exists), nothing is touched.
  EXPECT_THROW(synthesize({{"out", data.string()}, {"assets", assets.string()}}, Progress()), Error);
  // The same seed gives the same frames.
  const auto data2 = fresh_dir("data2");
  synthesize({{"out", data2.string()}, {"assets", assets.string()}, {"modality", "pc"}, {"synthetic_train", 6},
              {"synthetic_val", 2}, {"synthetic_test", 1}, {"natural_train", 6}, {"natural_test", 3},
              {"labelled_fraction", 0.0}},
             Progress());
  auto i1 = io::read_image((data / "images/nat_train_00003.png").string()), i2 = io::read_image((data2 / "images/nat_train_00003.png").string());
  EXPECT_EQ(i1.data, i2.data);

  // All natural frames unlabelled: trains, with the warning.
  auto t = train({{"method", "twinvae"}, {"dataset", data.string()}, {"out", model.string()}, {"epochs", 1},
                  {"batch_size", 4}, {"synthetic_ratio", 1.0}, {"threads", 1}},
                 Progress());
  ASSERT_EQ(t["warnings"].size(), 1u) << t.dump();
  EXPECT_NE(t["warnings"][0].get<std::string>().find("synthetic frames only"), std::string::npos);
  const auto files = read_model(model.string());
  EXPECT_EQ(files.meta["modality"], "pc");
  // The precision the steps ran in (auto: bf16 where the CPU has AMX, else fp32) is recorded; twinvae training
  // accepts --precision like dcl and exemplar (before, it refused the field).
  EXPECT_EQ(files.meta["settings"]["precision"], precision_name(resolve_precision("auto", torch::kCPU)));
  {
    const auto m32 = fresh_dir("model32");
    train({{"method", "twinvae"}, {"dataset", data.string()}, {"out", m32.string()}, {"epochs", 1}, {"batch_size", 4},
           {"synthetic_ratio", 1.0}, {"threads", 1}, {"precision", "fp32"}},
          Progress());
    EXPECT_EQ(read_model(m32.string()).meta["settings"]["precision"], "fp32");
  }
  const auto& spec = find_method("twinvae");
  auto method = load_method(spec, files);
  PredictOptions po;
  auto p = predict_image(*method, spec, torch::full({1, 60, 90}, 80.0f), {}, {}, po);
  EXPECT_TRUE(std::isfinite(p.count));
  EXPECT_GE(p.count, 0.0);
  ASSERT_TRUE(p.reconstruction.defined());
  EXPECT_EQ(p.reconstruction.sizes(), (std::vector<int64_t>{1, 60, 90}));  // the translation at the input's size
  EXPECT_GE(p.reconstruction.min().item<float>(), 0.0f);
  EXPECT_LE(p.reconstruction.max().item<float>(), 255.0f);
  EXPECT_TRUE(p.points.empty());
  try {
    predict_image(*method, spec, torch::zeros({1, 8, 8}), {}, {}, po);
    FAIL() << "8x8 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), CELLCOUNT_ERR_INVALID_ARGUMENT);
  }
  // Evaluate: both protocols and the baseline on the natural test frames.
  auto ev = spec.evaluate({{"model", model.string()}, {"dataset", data.string()}, {"baseline", true}, {"threads", 1}}, Progress());
  EXPECT_EQ(ev["n"], 3);
  for (const char* k : {"clean", "authors", "baseline"}) {
    ASSERT_TRUE(ev.contains(k)) << ev.dump();
    EXPECT_EQ(ev[k]["n"], 3);
    EXPECT_TRUE(ev[k].contains("mre") && ev[k].contains("rounded_accuracy")) << ev[k].dump();
  }
}

TEST(TwinVae, ASecondSyntheticFolderAddsItsFramesToTheFirstFolders) {
  // dataset: 6 synthetic train + 8 natural train (4 labelled) + 3 natural test; synthetic_dataset: 5 synthetic
  // train (its natural frames ignored). The training must see 11 synthetic and 8 natural frames, each image with
  // its own label. (Before the fix the second folder's reading replaced the first folder's images but appended
  // its labels: 5 synthetic images against 11 labels, and no natural images at all.)
  const auto assets = fake_assets();
  const auto a = fresh_dir("two_a"), b = fresh_dir("two_b");
  synthesize({{"out", a.string()}, {"assets", assets.string()}, {"modality", "bf"}, {"synthetic_train", 6},
              {"synthetic_val", 0}, {"synthetic_test", 0}, {"natural_train", 8}, {"natural_test", 3},
              {"labelled_fraction", 0.5}, {"val_fraction", 0.0}},
             Progress());
  synthesize({{"out", b.string()}, {"assets", assets.string()}, {"modality", "bf"}, {"synthetic_train", 5},
              {"synthetic_val", 0}, {"synthetic_test", 0}, {"natural_train", 2}, {"natural_test", 0}, {"seed", 3}},
             Progress());
  const auto d = load_twin_data(a.string(), b.string(), "natural", Progress());
  for (const auto* f : {&d.syn_train, &d.nat_train, &d.nat_test}) {
    ASSERT_TRUE(f->images.defined());
    EXPECT_EQ(f->images.size(0), int64_t(f->labels.size()));
    EXPECT_EQ(f->names.size(), f->labels.size());
  }
  EXPECT_EQ(d.syn_train.labels.size(), 11u);
  EXPECT_EQ(d.nat_train.labels.size(), 8u);
  EXPECT_EQ(d.nat_train.labelled(), 4u);
  EXPECT_EQ(d.nat_test.labels.size(), 3u);
  // Each frame is its own file's image: the last synthetic frame is the second folder's last.
  auto last = to_network_input(image_to_tensor(io::read_image((b / "images/syn_train_00004.png").string())), 1.0 / 255.0);
  EXPECT_TRUE(torch::equal(d.syn_train.images[10], (last[0] * 255.0).round().clamp(0, 255).to(torch::kUInt8)));
  EXPECT_EQ(d.syn_train.names[10], "images/syn_train_00004.png");
  const auto model = fresh_dir("two_model");
  auto t = train({{"method", "twinvae"}, {"dataset", a.string()}, {"synthetic_dataset", b.string()}, {"out", model.string()},
                  {"epochs", 1}, {"batch_size", 4}, {"synthetic_ratio", 0.0}, {"threads", 1}},
                 Progress());
  const auto frames = read_model(model.string()).meta["provenance"]["frames"];
  EXPECT_EQ(frames["synthetic_train"], 11) << frames.dump();
  EXPECT_EQ(frames["natural_train"], 8) << frames.dump();
}

TEST(TwinVae, ResumedTrainingEqualsUninterruptedRun) {
  const auto assets = fake_assets();
  const auto data = fresh_dir("resume_data");
  // No validation frames: the last epoch is shipped, so the weights compared below are the second epoch's.
  synthesize({{"out", data.string()}, {"assets", assets.string()}, {"modality", "bf"}, {"synthetic_train", 8},
              {"synthetic_val", 0}, {"synthetic_test", 0}, {"natural_train", 8}, {"natural_test", 0},
              {"labelled_fraction", 0.5}, {"val_fraction", 0.0}},
             Progress());
  auto request = [&](const fs::path& out) {
    return nlohmann::json{{"method", "twinvae"}, {"dataset", data.string()}, {"out", out.string()}, {"epochs", 2},
                          {"batch_size", 4}, {"synthetic_ratio", 1.0}, {"threads", 1}, {"seed", 3}};
  };
  const auto a = fresh_dir("resume_a"), b = fresh_dir("resume_b");
  train(request(a), Progress());
  // The same training cancelled in its second epoch, then run again: it resumes from the first epoch's checkpoint.
  bool second_epoch = false;
  Progress cancel_in_epoch_2([&](float f, const std::string&) {
    if (f > 0.6f) second_epoch = true;
    return second_epoch;
  });
  EXPECT_THROW(train(request(b), cancel_in_epoch_2), Cancelled);
  EXPECT_FALSE(fs::exists(b / "model.json"));
  auto r = train(request(b), Progress());
  EXPECT_EQ(r["resumed_from"], 1);  // (a restart from scratch would give the same weights too)
  EXPECT_EQ(r["epochs_run"], 2);
  const auto ma = read_model(a.string()).meta, mb = read_model(b.string()).meta;
  EXPECT_EQ(ma["training"]["best_epoch"], 2);
  EXPECT_EQ(ma["training"]["history"][1]["loss"], mb["training"]["history"][1]["loss"]);
  EXPECT_EQ(ma["weights_sha256"], mb["weights_sha256"]);
}

TEST(TwinVae, IdleDomainStillLeavesTheOtherDomainUntouched) {
  // Mode natural, one epoch: the synthetic reader and writer take no part. "still" leaves them at their seeded
  // initial weights; "momentum" (upstream under PyTorch < 2.0) steps them on zero gradients, so weight decay
  // moves them. The natural side is the same in both runs.
  const auto assets = fake_assets();
  const auto data = fresh_dir("idle_data");
  synthesize({{"out", data.string()}, {"assets", assets.string()}, {"modality", "pc"}, {"synthetic_train", 4},
              {"synthetic_val", 0}, {"synthetic_test", 0}, {"natural_train", 8}, {"natural_test", 0},
              {"labelled_fraction", 0.5}, {"val_fraction", 0.0}},
             Progress());
  auto weights = [&](const std::string& idle) {
    const auto out = fresh_dir("idle_" + idle);
    train({{"method", "twinvae"}, {"dataset", data.string()}, {"out", out.string()}, {"epochs", 1}, {"mode", "natural"},
           {"batch_size", 4}, {"threads", 1}, {"seed", 5}, {"idle_domain", idle}},
          Progress());
    auto net = TwinVae();
    load_weights(*net, read_model(out.string()));
    return net;
  };
  auto still = weights("still"), momentum = weights("momentum");
  auto init = seeded(5, [] { return TwinVae(); });  // the training's own construction (train: seeded(run.seed()))
  auto params = [](TwinVae& n) { return n->named_parameters(); };
  const auto ps = params(still), pm = params(momentum), pi = params(init);
  int synth = 0;
  for (const auto& kv : ps) {
    const auto& k = kv.key();
    if (k.rfind("synth_reader.", 0) == 0 || k.rfind("synth_writer.", 0) == 0) {
      ++synth;
      EXPECT_TRUE(torch::equal(kv.value(), pi[k])) << k << " moved under idle_domain still";
      if (pi[k].abs().sum().item<double>() > 0)  // (weight decay leaves a zero bias at zero)
        EXPECT_FALSE(torch::equal(kv.value(), pm[k])) << k << " did not move under momentum";
    } else if (k.rfind("natural_reader.", 0) == 0) {
      EXPECT_TRUE(torch::equal(kv.value(), pm[k])) << k;
      EXPECT_FALSE(torch::equal(kv.value(), pi[k])) << k << " not trained";
    }
  }
  EXPECT_GT(synth, 0);
}
