// Minimal RFC-4180 CSV reading/writing (quoted fields, "" escapes, CRLF). No LibTorch.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace cellcount {

struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // each row has header.size() fields
  int column(const std::string& name) const;   // -1 if absent
  size_t line_of_row(size_t r) const { return r + 2; }  // 1-based file line of row r (for messages)
};

// Throws Error(CELLCOUNT_ERR_IO) if unreadable, Error(CELLCOUNT_ERR_DATASET) with file:line on a row
// whose field count differs from the header.
CsvTable read_csv(const std::string& path);
std::vector<std::string> parse_csv_line(const std::string& line);
std::string csv_escape(const std::string& field);  // quotes only when needed

}  // namespace cellcount
