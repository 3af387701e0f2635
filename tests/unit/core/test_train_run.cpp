// The train-run driver (core/train_run) and the option declarations (core/options), through the selftest
// fixture method: request checks before any work, the out and checkpoint folders (a user's folder is never
// removed or overwritten), resume only under the same request, per-run randomness.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cellcount/cellcount.h"
#include "core/evaluate.h"
#include "core/method.h"
#include "core/model_io.h"
#include "core/options.h"
#include "core/train_run.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace cellcount;
using cellcount::test_util::status_of;

namespace {

fs::path fresh(const std::string& name) {
  auto d = fs::temp_directory_path() / ("cellcount-trainrun-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A dataset of 8 small synthetic images, made once per test binary.
const fs::path& dataset() {
  static const fs::path d = [] {
    auto root = fresh("data");
    synthesize_cells({{"out", (root / "data").string()}, {"n", 8}, {"width", 48}, {"height", 48}, {"min_cells", 2},
                      {"max_cells", 6}, {"seed", 5}},
                     Progress());
    return root / "data";
  }();
  return d;
}

nlohmann::json selftest_request(const fs::path& out, nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json r{{"method", "selftest"}, {"dataset", dataset().string()}, {"out", out.string()},
                   {"epochs", 2},          {"width", 4},                    {"threads", 1}};
  r.update(extra);
  return r;
}

cellcount_status train(const nlohmann::json& req, cellcount_progress_fn progress = nullptr) {
  char* rep = nullptr;
  const auto s = cellcount_train(req.dump().c_str(), progress, nullptr, &rep);
  cellcount_string_free(rep);
  return s;
}

std::string file_text(const fs::path& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

TEST(Options, ResolveChecksTypesRangesChoicesAndUnknownFields) {
  Options o = {Opt::integer("epochs", 10).range(0, 100), Opt::number("sigma", 2.0).range(0.1, 10.0),
               Opt::choice("rule", "grey", {"grey", "rgb"}), Opt::int_list("levels", {}).range(1, 64),
               Opt::object("architecture", {{"width", 0.25}, {"depth", 3}}), Opt::integer("seed", 0).range(0, INT64_MAX)};
  auto r = resolve_options("t", o, {{"epochs", 5}, {"architecture", {{"depth", 4}}}});
  EXPECT_EQ(r["epochs"], 5);
  EXPECT_EQ(r["sigma"], 2.0);
  EXPECT_EQ(r["architecture"]["width"], 0.25) << "a partial object keeps the other fields";
  EXPECT_EQ(r["architecture"]["depth"], 4);
  std::string msg;
  for (const auto& bad : std::vector<nlohmann::json>{
           {{"epochs", -1}}, {{"epochs", 1.5}}, {{"epochs", "3"}}, {{"sigma", 0}}, {{"rule", "purple"}},
           {{"levels", {1, 0}}}, {{"architecture", {{"colour", 1}}}}, {{"seed", -1}}, {{"seed", 18446744073709551615ULL}},
           {{"epochs", nullptr}}, {{"epoch", 3}}}) {
    EXPECT_EQ(status_of([&] { resolve_options("t", o, bad); }, &msg), CELLCOUNT_ERR_INVALID_ARGUMENT) << bad.dump();
    EXPECT_NE(msg.find(bad.begin().key().substr(0, 4)), std::string::npos) << "names the field: " << msg;
  }
  EXPECT_EQ(status_of([&] { resolve_options("t", o, nlohmann::json::array()); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
  // The metadata carries what a form needs.
  auto m = option_metadata(o);
  EXPECT_EQ(m[0]["name"], "epochs");
  EXPECT_EQ(m[0]["type"], "int");
  EXPECT_EQ(m[0]["min"], 0);
  EXPECT_EQ(m[2]["choices"], nlohmann::json({"grey", "rgb"}));
  // One place resolves a setting: caller, then model.json, then the declared default.
  EXPECT_EQ(resolve_setting("t", o[1], 3.0, 4.0), 3.0);
  EXPECT_EQ(resolve_setting("t", o[1], nullptr, 4.0), 4.0);
  EXPECT_EQ(resolve_setting("t", o[1], nullptr, nullptr), 2.0);
  EXPECT_EQ(status_of([&] { resolve_setting("t", o[1], 50.0, 4.0); }), CELLCOUNT_ERR_INVALID_ARGUMENT);
}

// Every method's train request is declared: its defaults pass its own check, and bad values of common fields
// are refused before any work (nothing written).
TEST(TrainRun, BadRequestsAreRefusedBeforeAnyWork) {
  auto root = fresh("bad");
  for (const auto& bad : std::vector<nlohmann::json>{{{"epochs", -1}},
                                                     {{"epochs", 1.5}},
                                                     {{"seed", -1}},
                                                     {{"threads", 2000}},
                                                     {{"sigma", 0}},
                                                     {{"batch_size", 0}},
                                                     {{"optimizer", "sgd"}},
                                                     {{"epohcs", 3}}}) {
    EXPECT_EQ(train(selftest_request(root / "m", bad)), CELLCOUNT_ERR_INVALID_ARGUMENT) << bad.dump();
    EXPECT_NE(std::string(cellcount_last_error()).find(bad.begin().key()), std::string::npos) << cellcount_last_error();
    EXPECT_FALSE(fs::exists(root / "m"));
    EXPECT_FALSE(fs::exists(root / "m.ckpt"));
  }
  for (const auto* m : {"dcl", "exemplar", "selftest"}) {
    char* d = nullptr;
    ASSERT_EQ(cellcount_request_defaults(m, "train", &d), CELLCOUNT_OK) << m;
    auto defaults = nlohmann::json::parse(d);
    cellcount_string_free(d);
    const Options o = method_options(find_method(m), "train");
    std::string msg;
    EXPECT_EQ(status_of([&] { resolve_options(m, o, defaults); }, &msg), CELLCOUNT_ERR_INVALID_ARGUMENT) << m;
    EXPECT_NE(msg.find("\"out\""), std::string::npos) << "the required fields are named: " << msg;
    for (const auto& x : o)
      if (x.required) defaults[x.name] = "given";
    EXPECT_NO_THROW(resolve_options(m, o, defaults)) << m << ": the defaults pass the method's own check";
  }
}

// A successful run removes only what it wrote: a user's folder named as checkpoint_dir survives with its files;
// the folder the driver made itself (out + ".ckpt") goes.
TEST(TrainRun, UserFolderAsCheckpointDirSurvivesASuccessfulRun) {
  auto root = fresh("userdir");
  const auto user = root / "my-results";
  fs::create_directories(user / "sub");
  std::ofstream(user / "notes.txt") << "precious";
  std::ofstream(user / "sub" / "data.csv") << "1,2,3";
  ASSERT_EQ(train(selftest_request(root / "m", {{"checkpoint_dir", user.string()}})), CELLCOUNT_OK) << cellcount_last_error();
  EXPECT_TRUE(fs::exists(root / "m" / "model.json"));
  EXPECT_EQ(file_text(user / "notes.txt"), "precious");
  EXPECT_EQ(file_text(user / "sub" / "data.csv"), "1,2,3");
  size_t n = 0;
  for (auto it = fs::directory_iterator(user); it != fs::directory_iterator(); ++it) ++n;
  EXPECT_EQ(n, 2u) << "only the user's entries remain (no checkpoint, no marker)";
  // The dataset itself named as checkpoint_dir: untouched.
  std::vector<std::string> before;
  for (const auto& e : fs::recursive_directory_iterator(dataset())) before.push_back(e.path().string());
  ASSERT_EQ(train(selftest_request(root / "m2", {{"checkpoint_dir", dataset().string()}})), CELLCOUNT_OK) << cellcount_last_error();
  std::vector<std::string> after;
  for (const auto& e : fs::recursive_directory_iterator(dataset())) after.push_back(e.path().string());
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  EXPECT_EQ(before, after);
  // The default checkpoint folder is the driver's own: removed at the end.
  ASSERT_EQ(train(selftest_request(root / "m3")), CELLCOUNT_OK) << cellcount_last_error();
  EXPECT_FALSE(fs::exists(root / "m3.ckpt"));
}

// A folder the driver did not make that holds a file with a checkpoint's name: refused before any work, the
// file untouched. An existing out.ckpt of the user's is such a folder.
TEST(TrainRun, ForeignFileWithACheckpointNameIsNeverOverwritten) {
  auto root = fresh("foreign");
  fs::create_directories(root / "m.ckpt");
  std::ofstream(root / "m.ckpt" / "model.ckpt") << "not ours";
  EXPECT_EQ(train(selftest_request(root / "m")), CELLCOUNT_ERR_IO);
  EXPECT_NE(std::string(cellcount_last_error()).find("model.ckpt"), std::string::npos) << cellcount_last_error();
  EXPECT_EQ(file_text(root / "m.ckpt" / "model.ckpt"), "not ours");
  EXPECT_FALSE(fs::exists(root / "m"));
}

// overwrite replaces a model folder, never a folder of other files.
TEST(TrainRun, OverwriteReplacesOnlyModelFolders) {
  auto root = fresh("overwrite");
  fs::create_directories(root / "photos");
  std::ofstream(root / "photos" / "a.png") << "png";
  EXPECT_EQ(train(selftest_request(root / "photos", {{"overwrite", true}})), CELLCOUNT_ERR_IO);
  EXPECT_NE(std::string(cellcount_last_error()).find("not a cellcount model folder"), std::string::npos)
      << cellcount_last_error();
  EXPECT_EQ(file_text(root / "photos" / "a.png"), "png");
  ASSERT_EQ(train(selftest_request(root / "m")), CELLCOUNT_OK) << cellcount_last_error();
  EXPECT_EQ(train(selftest_request(root / "m")), CELLCOUNT_ERR_IO) << "exists, no overwrite";
  ASSERT_EQ(train(selftest_request(root / "m", {{"overwrite", true}, {"seed", 3}})), CELLCOUNT_OK) << cellcount_last_error();
  EXPECT_EQ(read_model((root / "m").string()).meta["provenance"]["request"]["seed"], 3);
}

// A cancelled run keeps its checkpoints and resumes only under the same request (epochs may change).
TEST(TrainRun, ResumeOnlyUnderTheSameRequest) {
  auto root = fresh("resume");
  auto cancel_in_epoch_2 = [](float, const char* stage, void*) -> int32_t {
    return std::string(stage).rfind("epoch 2/", 0) == 0 ? 1 : 0;
  };
  auto req = selftest_request(root / "m", {{"epochs", 3}});
  ASSERT_EQ(train(req, cancel_in_epoch_2), CELLCOUNT_CANCELLED);
  ASSERT_TRUE(fs::exists(root / "m.ckpt" / "model.ckpt"));
  EXPECT_EQ(train(selftest_request(root / "m", {{"epochs", 3}, {"sigma", 3.0}})), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cellcount_last_error()).find("sigma"), std::string::npos) << cellcount_last_error();
  ASSERT_EQ(train(selftest_request(root / "m", {{"epochs", 4}})), CELLCOUNT_OK) << cellcount_last_error();
  EXPECT_EQ(read_model((root / "m").string()).meta["training"]["resumed_from"], 1);
  EXPECT_FALSE(fs::exists(root / "m.ckpt"));
  // A run that fails before writing a checkpoint leaves no folder behind.
  EXPECT_NE(train(selftest_request(root / "n", {{"dataset", (root / "none").string()}})), CELLCOUNT_OK);
  EXPECT_FALSE(fs::exists(root / "n.ckpt"));
}

// Randomness is per run: two trainings in two threads with different seeds give the models each gives alone.
TEST(TrainRun, ConcurrentTrainingsGiveTheModelsOfSoloRuns) {
  auto root = fresh("threads");
  auto sha = [&](const std::string& name) { return read_model((root / name).string()).meta["weights_sha256"]; };
  ASSERT_EQ(train(selftest_request(root / "a1", {{"seed", 1}, {"epochs", 3}})), CELLCOUNT_OK) << cellcount_last_error();
  ASSERT_EQ(train(selftest_request(root / "b1", {{"seed", 2}, {"epochs", 3}})), CELLCOUNT_OK) << cellcount_last_error();
  ASSERT_NE(sha("a1"), sha("b1"));
  cellcount_status sa = CELLCOUNT_ERR_INTERNAL, sb = CELLCOUNT_ERR_INTERNAL;
  std::thread ta([&] { sa = train(selftest_request(root / "a2", {{"seed", 1}, {"epochs", 3}})); });
  std::thread tb([&] { sb = train(selftest_request(root / "b2", {{"seed", 2}, {"epochs", 3}})); });
  ta.join();
  tb.join();
  ASSERT_EQ(sa, CELLCOUNT_OK);
  ASSERT_EQ(sb, CELLCOUNT_OK);
  EXPECT_EQ(sha("a1"), sha("a2"));
  EXPECT_EQ(sha("b1"), sha("b2"));
}

// A cancelled synthesis leaves nothing (before: 5 images and two CSVs, no split.csv, and the rerun was refused as
// "not empty"); overwrite replaces only a folder the synthesizer wrote.
TEST(Synthesize, CancelLeavesNothingAndOverwriteReplacesOnlyItsOwnFolders) {
  auto root = fresh("synth");
  const nlohmann::json req{{"out", (root / "d").string()}, {"n", 8}, {"width", 32}, {"height", 32}, {"max_cells", 4},
                           {"min_cells", 1}};
  int calls = 0;
  Progress stop([&](float, const std::string&) { return ++calls > 5; });
  EXPECT_EQ(status_of([&] { synthesize_cells(req, stop); }), CELLCOUNT_CANCELLED);
  size_t entries = 0;
  for (auto it = fs::directory_iterator(root); it != fs::directory_iterator(); ++it) ++entries;
  EXPECT_EQ(entries, 0u) << "no dataset and no temp folder after a cancel";
  ASSERT_EQ(status_of([&] { synthesize_cells(req, Progress()); }), CELLCOUNT_OK);
  EXPECT_TRUE(fs::exists(root / "d" / "split.csv"));
  EXPECT_EQ(status_of([&] { synthesize_cells(req, Progress()); }), CELLCOUNT_ERR_IO) << "exists, no overwrite";
  auto again = req;
  again["overwrite"] = true;
  again["seed"] = 4;
  ASSERT_EQ(status_of([&] { synthesize_cells(again, Progress()); }), CELLCOUNT_OK);
  fs::create_directories(root / "mine");
  std::ofstream(root / "mine" / "notes.txt") << "keep";
  again["out"] = (root / "mine").string();
  std::string msg;
  EXPECT_EQ(status_of([&] { synthesize_cells(again, Progress()); }, &msg), CELLCOUNT_ERR_IO);
  EXPECT_NE(msg.find("not written by cellcount"), std::string::npos) << msg;
  EXPECT_EQ(file_text(root / "mine" / "notes.txt"), "keep");
}
