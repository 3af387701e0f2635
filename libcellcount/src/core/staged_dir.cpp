#include "core/staged_dir.h"

#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"

namespace fs = std::filesystem;

namespace cellcount {

StagedDir::StagedDir(const std::string& out, bool overwrite, const std::string& marker, const std::string& what)
    : out_(out), marker_(marker), what_(what) {
  CC_CHECK(!out.empty(), CELLCOUNT_ERR_INVALID_ARGUMENT, what + ": \"out\" folder is required");
  std::error_code ec;
  if (fs::exists(fs::symlink_status(out, ec))) {
    CC_CHECK(fs::is_directory(out, ec), CELLCOUNT_ERR_IO, what + ": '" + out + "' exists and is not a folder");
    const bool empty = fs::is_empty(out, ec);
    CC_CHECK(empty || overwrite, CELLCOUNT_ERR_IO,
             what + ": '" + out + "' exists and is not empty; pass \"overwrite\": true to replace a folder this tool wrote");
    CC_CHECK(empty || fs::is_regular_file(fs::path(out) / marker, ec), CELLCOUNT_ERR_IO,
             what + ": '" + out + "' was not written by cellcount (no " + marker +
                 "); refusing to replace it under \"overwrite\" — name a new folder");
  }
  const fs::path target(out);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  std::random_device rd;
  tmp_ = out + ".tmp-" + std::to_string(rd());
  fs::create_directories(tmp_);
}

StagedDir::~StagedDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);  // the temp folder is this object's own
}

void StagedDir::commit(const std::string& marker_text) {
  {
    std::ofstream f(fs::path(tmp_) / marker_);
    f << marker_text << "\n";
    CC_CHECK(f.good(), CELLCOUNT_ERR_IO, what_ + ": cannot write '" + (fs::path(tmp_) / marker_).string() + "'");
  }
  std::error_code ec;
  if (fs::exists(out_, ec)) {
    // Checked again: the folder may have been filled while this request ran.
    CC_CHECK(fs::is_empty(out_, ec) || fs::is_regular_file(fs::path(out_) / marker_, ec), CELLCOUNT_ERR_IO,
             what_ + ": '" + out_ + "' was filled by someone else meanwhile; nothing was replaced");
    fs::remove_all(out_);
  }
  fs::rename(tmp_, out_);
  committed_ = true;
}

}  // namespace cellcount
