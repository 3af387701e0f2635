// A method's own prediction options, resolved once per call by resolve_method_options: the caller's value
// (checked against the declaration), else the model's (model.json "thresholds"), else the declared default.
#include <gtest/gtest.h>

#include <string>

#include "core/method.h"
#include "core/options.h"
#include "test_util.h"

namespace cellcount {
namespace {

using test_util::status_of;

MethodSpec spec_with_options() {
  MethodSpec s;
  s.id = "probe";
  s.options = [](const std::string& kind) {
    if (kind != "predict") return Options{};
    return Options{Opt::number("cut", 0.5).range(0.0, 1.0).help("a cut-off"), Opt::integer("rounds", 3).range(1, 9)};
  };
  return s;
}

TEST(MethodOptions, CallerThenModelThenDeclaredDefault) {
  const MethodSpec s = spec_with_options();
  const nlohmann::json meta = {{"thresholds", {{"cut", 0.25}}}};
  EXPECT_EQ(resolve_method_options(s, meta, nullptr), (nlohmann::json{{"cut", 0.25}, {"rounds", 3}}));
  EXPECT_EQ(resolve_method_options(s, meta, {{"cut", 0.75}}), (nlohmann::json{{"cut", 0.75}, {"rounds", 3}}));
  EXPECT_EQ(resolve_method_options(s, nlohmann::json::object(), {{"rounds", 5}}),
            (nlohmann::json{{"cut", 0.5}, {"rounds", 5}}));
  // A null value is "not given": the model's value stays.
  EXPECT_EQ(resolve_method_options(s, meta, {{"cut", nullptr}})["cut"], 0.25);
}

TEST(MethodOptions, RefusedNamingTheOption) {
  const MethodSpec s = spec_with_options();
  std::string msg;
  EXPECT_EQ(status_of([&] { resolve_method_options(s, {}, {{"cut", 2}}); }, &msg), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("\"cut\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("[0.0, 1.0]"), std::string::npos) << msg;
  EXPECT_EQ(status_of([&] { resolve_method_options(s, {}, {{"rounds", 1.5}}); }, &msg), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("\"rounds\""), std::string::npos) << msg;
  EXPECT_EQ(status_of([&] { resolve_method_options(s, {}, {{"cutt", 0.5}}); }, &msg), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("unknown option \"cutt\" (known: cut, rounds)"), std::string::npos) << msg;
  EXPECT_EQ(status_of([&] { resolve_method_options(s, {}, nlohmann::json::array({1})); }, &msg),
            CELLCOUNT_ERR_INVALID_ARGUMENT);
}

TEST(MethodOptions, AMethodWithoutOptionsTakesNone) {
  MethodSpec s;
  s.id = "plain";
  EXPECT_EQ(resolve_method_options(s, {}, nullptr), nlohmann::json::object());
  EXPECT_EQ(resolve_method_options(s, {}, nlohmann::json::object()), nlohmann::json::object());
  std::string msg;
  EXPECT_EQ(status_of([&] { resolve_method_options(s, {}, {{"cut", 0.5}}); }, &msg), CELLCOUNT_ERR_INVALID_ARGUMENT);
  EXPECT_NE(msg.find("known: none"), std::string::npos) << msg;
}

}  // namespace
}  // namespace cellcount
