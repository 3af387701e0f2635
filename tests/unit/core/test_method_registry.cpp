// Adding a method needs nothing but its folder: the registry holds exactly the folders of
// libcellcount/src/methods/ that have a method.cmake (the list generated at configure time), without
// static initialisers, and a test can still register a method of its own.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "core/method.h"
#include "test_util.h"

namespace cellcount {
namespace {

std::set<std::string> method_folders() {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(CELLCOUNT_METHODS_DIR))
    if (std::filesystem::exists(e.path() / "method.cmake")) out.insert(e.path().filename().string());
  return out;
}

TEST(MethodRegistry, GeneratedListIsEveryFolderWithAMethodCmake) {
  const auto folders = method_folders();
  ASSERT_FALSE(folders.empty());
  std::set<std::string> generated;
  for (MethodFactory make : builtin_method_factories()) generated.insert(make().id);
  EXPECT_EQ(generated, folders);
  EXPECT_EQ(builtin_method_factories().size(), folders.size());  // no id registered twice
  for (const auto& id : folders) EXPECT_EQ(find_method(id).id, id);
}

TEST(MethodRegistry, UnknownMethodNamesTheKnownOnes) {
  std::string msg;
  EXPECT_EQ(test_util::status_of([] { find_method("no-such-method"); }, &msg), CELLCOUNT_ERR_WRONG_METHOD);
  EXPECT_NE(msg.find("dcl"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("selftest"), std::string::npos) << msg;  // the fixture is not offered
}

TEST(MethodRegistry, ATestCanRegisterItsOwnMethod) {
  MethodSpec s;
  s.id = "registry-test-only";
  s.fixture = true;
  ASSERT_TRUE(register_method(s));
  EXPECT_EQ(find_method("registry-test-only").id, "registry-test-only");
  for (const auto& id : method_folders()) EXPECT_EQ(find_method(id).id, id);  // the built-ins stay
  size_t n = 0;
  for (const auto* m : all_methods()) n += m->id == "registry-test-only";
  EXPECT_EQ(n, 1u);
}

}  // namespace
}  // namespace cellcount
