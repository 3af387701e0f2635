#include "core/csv.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/files.h"
#include "core/limits.h"

namespace cellcount {
namespace {

// Reads records from `text` starting at `pos`. A record ends at "\r\n", "\n" or a lone "\r" outside quotes.
// Quoted fields may hold separators, line breaks and "" (one quote). A quote inside an unquoted field is kept
// literally. `line` is the 1-based line of `pos` and is advanced past the record's line breaks.
class CsvReader {
 public:
  CsvReader(const std::string& text, size_t pos) : s_(text), pos_(pos) {}

  bool at_end() const { return pos_ >= s_.size(); }
  size_t line() const { return line_; }

  // True if only line breaks remain (trailing empty lines are ignored).
  bool only_blank_lines_left() const {
    for (size_t i = pos_; i < s_.size(); ++i)
      if (s_[i] != '\n' && s_[i] != '\r') return false;
    return true;
  }

  // Parses one record. On a syntax error returns false and sets *error (the line is line()).
  bool next(std::vector<std::string>* fields, std::string* error) {
    fields->clear();
    std::string field;
    while (true) {
      if (pos_ < s_.size() && s_[pos_] == '"') {  // quoted field
        const size_t start_line = line_;
        ++pos_;
        bool closed = false;
        while (pos_ < s_.size()) {
          const char c = s_[pos_++];
          if (c == '"') {
            if (pos_ < s_.size() && s_[pos_] == '"') {
              field += '"';
              ++pos_;
            } else {
              closed = true;
              break;
            }
          } else {
            if (c == '\n' || (c == '\r' && (pos_ >= s_.size() || s_[pos_] != '\n'))) ++line_;
            field += c;
          }
        }
        if (!closed) {
          line_ = start_line;
          *error = "unterminated quoted field";
          return false;
        }
        if (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '\n' && s_[pos_] != '\r') {
          *error = std::string("unexpected character '") + s_[pos_] + "' after a closing quote";
          return false;
        }
      } else {  // unquoted field
        while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '\n' && s_[pos_] != '\r') field += s_[pos_++];
      }
      fields->push_back(std::move(field));
      field.clear();
      if (pos_ >= s_.size()) return true;
      const char c = s_[pos_++];
      if (c == ',') continue;
      if (c == '\r' && pos_ < s_.size() && s_[pos_] == '\n') ++pos_;
      ++line_;
      return true;
    }
  }

 private:
  const std::string& s_;
  size_t pos_;
  size_t line_ = 1;
};

std::string read_file(const std::string& path) {
  check_regular_file(path, kMaxCsvFileBytes, CELLCOUNT_ERR_IO, "CSV file");  // a FIFO blocked fopen forever
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(CELLCOUNT_ERR_IO, "cannot open CSV file '" + path + "': " + std::strerror(errno));
  std::string data;
  char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, got);
  const bool bad = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (bad) fail(CELLCOUNT_ERR_IO, "cannot read CSV file '" + path + "': " + std::strerror(err));
  return data;
}

}  // namespace

int CsvTable::column(const std::string& name) const {
  for (size_t i = 0; i < header.size(); ++i)
    if (header[i] == name) return static_cast<int>(i);
  return -1;
}

CsvTable read_csv(const std::string& path) {
  const std::string text = read_file(path);
  const size_t start = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // UTF-8 byte-order mark
  CsvReader reader(text, start);
  CsvTable table;
  std::string error;
  if (reader.only_blank_lines_left()) fail(CELLCOUNT_ERR_DATASET, path + ":1: empty CSV file, expected a header");
  if (!reader.next(&table.header, &error))
    fail(CELLCOUNT_ERR_DATASET, path + ":" + std::to_string(reader.line()) + ": " + error);
  std::vector<std::string> row;
  while (!reader.only_blank_lines_left()) {
    const size_t line = reader.line();
    if (!reader.next(&row, &error))
      fail(CELLCOUNT_ERR_DATASET, path + ":" + std::to_string(reader.line()) + ": " + error);
    if (row.size() != table.header.size())
      fail(CELLCOUNT_ERR_DATASET, path + ":" + std::to_string(line) + ": expected " +
                                      std::to_string(table.header.size()) + " fields (as in the header), got " +
                                      std::to_string(row.size()));
    table.rows.push_back(std::move(row));
  }
  return table;
}

std::vector<std::string> parse_csv_line(const std::string& line) {
  std::string text = line;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  CsvReader reader(text, 0);
  std::vector<std::string> fields;
  std::string error;
  if (!reader.next(&fields, &error)) fail(CELLCOUNT_ERR_DATASET, "CSV line '" + line + "': " + error);
  CC_CHECK(reader.at_end(), CELLCOUNT_ERR_DATASET,
           "CSV line '" + line + "': expected one record, found a line break outside quotes");
  return fields;
}

std::string csv_escape(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace cellcount
