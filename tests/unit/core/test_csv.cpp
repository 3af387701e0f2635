// RFC 4180 reading: quoting, escapes, line endings, BOM, and errors that name file and line.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/csv.h"
#include "core/error.h"

namespace cellcount {
namespace {

using Row = std::vector<std::string>;

std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path = ::testing::TempDir() + "cellcount_test_csv_" + name;
  std::ofstream f(path, std::ios::binary);
  f << content;
  return path;
}

// Runs f, expects an Error with `status` whose message contains every string of `parts`.
template <class F>
void expect_error(F f, cellcount_status status, const std::vector<std::string>& parts) {
  try {
    f();
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), status) << e.what();
    for (const auto& s : parts) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
  }
}

TEST(Csv, QuotedFieldsAndEscapes) {
  const auto path = write_temp("quoted.csv",
                               "name,count,note\n"
                               "\"a, b\",3,\"he said \"\"hi\"\"\"\n"
                               "plain,4,\n"
                               "\"\",\"5\",\"multi\nline\"\n");
  const CsvTable t = read_csv(path);
  EXPECT_EQ(t.header, (Row{"name", "count", "note"}));
  ASSERT_EQ(t.rows.size(), 3u);
  EXPECT_EQ(t.rows[0], (Row{"a, b", "3", "he said \"hi\""}));
  EXPECT_EQ(t.rows[1], (Row{"plain", "4", ""}));
  EXPECT_EQ(t.rows[2], (Row{"", "5", "multi\nline"}));
  EXPECT_EQ(t.column("count"), 1);
  EXPECT_EQ(t.column("missing"), -1);
  EXPECT_EQ(t.line_of_row(0), 2u);
}

TEST(Csv, CrlfLineEndings) {
  const CsvTable t = read_csv(write_temp("crlf.csv", "a,b\r\n1,2\r\n\"x\r\ny\",4\r\n"));
  EXPECT_EQ(t.header, (Row{"a", "b"}));
  ASSERT_EQ(t.rows.size(), 2u);
  EXPECT_EQ(t.rows[0], (Row{"1", "2"}));
  EXPECT_EQ(t.rows[1], (Row{"x\r\ny", "4"}));  // line breaks inside quotes are kept as written
}

TEST(Csv, ByteOrderMarkAndTrailingEmptyLines) {
  const CsvTable t = read_csv(write_temp("bom.csv", "\xEF\xBB\xBF" "image,count\nimg1.png,12\n\n"));
  EXPECT_EQ(t.header, (Row{"image", "count"}));
  EXPECT_EQ(t.column("image"), 0);
  ASSERT_EQ(t.rows.size(), 1u);
  EXPECT_EQ(t.rows[0], (Row{"img1.png", "12"}));
  // No final line break at all.
  const CsvTable u = read_csv(write_temp("nofinal.csv", "a,b\n1,2"));
  ASSERT_EQ(u.rows.size(), 1u);
  EXPECT_EQ(u.rows[0], (Row{"1", "2"}));
  // Header only.
  EXPECT_TRUE(read_csv(write_temp("header_only.csv", "a,b\r\n")).rows.empty());
}

TEST(Csv, BadRowGivesDatasetErrorWithLine) {
  const auto path = write_temp("bad.csv", "a,b\n1,2\n3\n4,5\n");
  expect_error([&] { read_csv(path); }, CELLCOUNT_ERR_DATASET, {path + ":3:", "expected 2", "got 1"});
  // Lines are counted through quoted line breaks.
  const auto path2 = write_temp("bad2.csv", "a,b\n\"x\ny\",2\n1,2,3\n");
  expect_error([&] { read_csv(path2); }, CELLCOUNT_ERR_DATASET, {path2 + ":4:", "got 3"});
  // A blank line in the middle is a row with one empty field.
  const auto path3 = write_temp("bad3.csv", "a,b\r\n1,2\r\n\r\n3,4\r\n");
  expect_error([&] { read_csv(path3); }, CELLCOUNT_ERR_DATASET, {path3 + ":3:"});
}

TEST(Csv, MalformedQuotingGivesDatasetError) {
  const auto open = write_temp("open.csv", "a,b\n1,\"never closed\n2,3\n");
  expect_error([&] { read_csv(open); }, CELLCOUNT_ERR_DATASET, {open + ":2:", "unterminated"});
  const auto junk = write_temp("junk.csv", "a,b\n\"x\"y,2\n");
  expect_error([&] { read_csv(junk); }, CELLCOUNT_ERR_DATASET, {junk + ":2:"});
  const auto empty = write_temp("empty.csv", "");
  expect_error([&] { read_csv(empty); }, CELLCOUNT_ERR_DATASET, {empty});
}

TEST(Csv, MissingFileGivesIoError) {
  const std::string path = ::testing::TempDir() + "cellcount_test_csv_does_not_exist.csv";
  std::remove(path.c_str());
  expect_error([&] { read_csv(path); }, CELLCOUNT_ERR_IO, {path});
}

TEST(Csv, ParseLine) {
  EXPECT_EQ(parse_csv_line("a,\"b,c\",,\"d\"\"e\""), (Row{"a", "b,c", "", "d\"e"}));
  EXPECT_EQ(parse_csv_line("x,y\r\n"), (Row{"x", "y"}));
  EXPECT_EQ(parse_csv_line(""), (Row{""}));
  EXPECT_EQ(parse_csv_line(","), (Row{"", ""}));
  EXPECT_EQ(parse_csv_line("a\"b,c"), (Row{"a\"b", "c"}));  // a quote inside an unquoted field is literal
  expect_error([] { parse_csv_line("\"open"); }, CELLCOUNT_ERR_DATASET, {"unterminated"});
}

TEST(Csv, EscapeQuotesOnlyWhenNeeded) {
  EXPECT_EQ(csv_escape("plain"), "plain");
  EXPECT_EQ(csv_escape(""), "");
  EXPECT_EQ(csv_escape("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_escape("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_escape("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_escape("cr\r"), "\"cr\r\"");
}

TEST(Csv, EscapeThenParseRoundTrips) {
  std::mt19937_64 rng(5);
  const std::string alphabet = "ab ,\"\r\n;x";
  for (int trial = 0; trial < 300; ++trial) {
    Row fields(1 + rng() % 5);
    for (auto& f : fields)
      for (size_t k = rng() % 6; k > 0; --k) f += alphabet[rng() % alphabet.size()];
    std::string line;
    for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + csv_escape(fields[i]);
    ASSERT_EQ(parse_csv_line(line), fields) << "line [" << line << "]";
  }
}

TEST(Csv, WrittenFileReadsBack) {
  const Row header = {"image", "note, with comma", "count"};
  const std::vector<Row> rows = {{"a.png", "ok", "3"}, {"b \"q\".png", "multi\nline", "0"}, {"", "", ""}};
  std::string text;
  for (const Row* r : {&header, &rows[0], &rows[1], &rows[2]}) {
    for (size_t i = 0; i < r->size(); ++i) text += (i ? "," : "") + csv_escape((*r)[i]);
    text += "\r\n";
  }
  const CsvTable t = read_csv(write_temp("roundtrip.csv", text));
  EXPECT_EQ(t.header, header);
  EXPECT_EQ(t.rows, rows);
}

}  // namespace
}  // namespace cellcount
