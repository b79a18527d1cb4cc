#include <catch2/catch.hpp>

#include "vmm/api/size_parse.hpp"

using hvmm::format_size;
using hvmm::parse_size;

namespace {
constexpr uint64_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024, TiB = GiB * 1024;

uint64_t ok(std::string_view s) {
  std::string err;
  const auto v = parse_size(s, &err);
  INFO("input '" << s << "' error: " << err);
  REQUIRE(v.has_value());
  return *v;
}

std::string bad(std::string_view s) {
  std::string err;
  const auto v = parse_size(s, &err);
  INFO("input '" << s << "'");
  REQUIRE_FALSE(v.has_value());
  REQUIRE_FALSE(err.empty());
  return err;
}
}  // namespace

TEST_CASE("parse_size: plain bytes and every unit, case-insensitive, with optional B/iB") {
  CHECK(ok("0") == 0);
  CHECK(ok("12345") == 12345);
  CHECK(ok("12345B") == 12345);
  CHECK(ok("12345b") == 12345);
  CHECK(ok("2048K") == 2048 * KiB);
  CHECK(ok("2048k") == 2048 * KiB);
  CHECK(ok("2048KiB") == 2048 * KiB);
  CHECK(ok("2048kb") == 2048 * KiB);
  CHECK(ok("512M") == 512 * MiB);
  CHECK(ok("512MiB") == 512 * MiB);
  CHECK(ok("512mib") == 512 * MiB);
  CHECK(ok("16G") == 16 * GiB);
  CHECK(ok("16g") == 16 * GiB);
  CHECK(ok("16GB") == 16 * GiB);
  CHECK(ok("16GiB") == 16 * GiB);
  CHECK(ok("1T") == TiB);
  CHECK(ok("1tib") == TiB);
  CHECK(ok("  8G \n") == 8 * GiB);
}

TEST_CASE("parse_size: decimal fractions that come to whole bytes") {
  CHECK(ok("1.5G") == GiB + GiB / 2);
  CHECK(ok("0.5K") == 512);
  CHECK(ok("2.25M") == 2 * MiB + MiB / 4);
  CHECK(ok("3.0") == 3);
  CHECK(bad("0.1K").find("whole number of bytes") != std::string::npos);
  CHECK(bad("1.5").find("whole number of bytes") != std::string::npos);
  bad("1.");
  bad(".5G");
}

TEST_CASE("parse_size: garbage, negative, empty") {
  CHECK(bad("") == "empty size");
  CHECK(bad("   ") == "empty size");
  CHECK(bad("-1G").find("negative") != std::string::npos);
  CHECK(bad("-0").find("negative") != std::string::npos);
  CHECK(bad("G").find("number") != std::string::npos);
  CHECK(bad("abc").find("number") != std::string::npos);
  CHECK(bad("16X").find("unit") != std::string::npos);
  CHECK(bad("16GG").find("unit") != std::string::npos);
  CHECK(bad("16Gi").find("unit") != std::string::npos);
  CHECK(bad("16 G").find("unit") != std::string::npos);
  bad("+5G");
  bad("0x10");
  bad("1e9");
  bad("16G extra");
  bad(std::string_view("1\0G", 3));
  bad("\xff\xfe");
  // The error pointer is optional.
  CHECK_FALSE(parse_size("nope", nullptr).has_value());
}

TEST_CASE("parse_size: overflow is refused, the largest values are exact") {
  CHECK(ok("18446744073709551615") == UINT64_MAX);
  CHECK(bad("18446744073709551616").find("too large") != std::string::npos);
  CHECK(bad("99999999999999999999999999999").find("too large") != std::string::npos);
  CHECK(ok("16777215T") == 16777215 * TiB);
  CHECK(bad("16777216T").find("too large") != std::string::npos);  // exactly 2^64
  CHECK(bad("17179869184G").find("too large") != std::string::npos);
  CHECK(bad("18446744073709551615K").find("too large") != std::string::npos);
  CHECK(ok("16777215.5T") == 16777215 * TiB + TiB / 2);
  bad("1.0000000000000000001G");  // too many decimals
}

TEST_CASE("format_size: largest unit, one decimal below 100") {
  CHECK(format_size(0) == "0 B");
  CHECK(format_size(1023) == "1023 B");
  CHECK(format_size(1024) == "1.0 KiB");
  CHECK(format_size(2 * GiB) == "2.0 GiB");
  CHECK(format_size(512 * MiB) == "512 MiB");
  CHECK(format_size(GiB + GiB / 2) == "1.5 GiB");
  CHECK(format_size(16 * GiB) == "16.0 GiB");
  CHECK(format_size(100 * MiB) == "100 MiB");
  CHECK(format_size(TiB) == "1.0 TiB");
  CHECK(format_size(UINT64_MAX) == "16.0 EiB");
}

TEST_CASE("format_size and parse_size round trip on whole units") {
  for (uint64_t v : {4 * KiB, 2 * MiB, 512 * MiB, 2 * GiB, 16 * GiB, 3 * TiB}) {
    std::string s = format_size(v);
    s.erase(s.find(' '), 1);  // "2.0 GiB" -> "2.0GiB"
    CHECK(ok(s) == v);
  }
}

TEST_CASE("parse_period: a number with ms, s, m or h, 10ms .. 1h; bare numbers refused") {
  using std::chrono::milliseconds;
  std::string why;
  CHECK(hvmm::parse_period("500ms", &why) == milliseconds(500));
  CHECK(hvmm::parse_period("2.5s", &why) == milliseconds(2500));
  CHECK(hvmm::parse_period("1m", &why) == milliseconds(60'000));
  CHECK(hvmm::parse_period("1h", &why) == milliseconds(3'600'000));  // the upper bound its message names
  CHECK_FALSE(hvmm::parse_period("2h", &why));
  CHECK_THAT(why, Catch::Contains("10ms .. 1h"));
  CHECK_FALSE(hvmm::parse_period("5", &why));
  CHECK_THAT(why, Catch::Contains("needs a unit"));
  CHECK_FALSE(hvmm::parse_period("5ms", &why));
  CHECK_FALSE(hvmm::parse_period("1d", &why));
  CHECK_FALSE(hvmm::parse_period("ms", &why));
  CHECK_FALSE(hvmm::parse_period("1.2.3s", &why));
  CHECK_FALSE(hvmm::parse_period("", &why));
}
