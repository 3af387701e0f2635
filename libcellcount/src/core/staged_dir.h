// A folder written whole or not at all: a request that writes a folder of files (a synthetic dataset) writes
// them into a sibling temp folder and renames it into place at the end, so a cancel or an error leaves no
// half-written folder behind and never touches the destination. No LibTorch.
#pragma once
#include <string>

namespace cellcount {

class StagedDir {
 public:
  // Refused before any work (CELLCOUNT_ERR_IO, `what` naming the caller): `out` exists and is not empty,
  // unless `overwrite` and it holds `marker` (a file this library writes into every such folder: only a folder
  // it wrote is replaced, never one of the user's).
  StagedDir(const std::string& out, bool overwrite, const std::string& marker, const std::string& what);
  // Removes the temp folder unless committed.
  ~StagedDir();
  StagedDir(const StagedDir&) = delete;
  StagedDir& operator=(const StagedDir&) = delete;

  // Where to write (the temp folder).
  const std::string& path() const { return tmp_; }
  // Writes the marker (its text: `marker_text`), replaces `out` by the temp folder.
  void commit(const std::string& marker_text);

 private:
  std::string out_, tmp_, marker_, what_;
  bool committed_ = false;
};

}  // namespace cellcount
