#include "vmm/api/size_parse.hpp"

#include <fmt/format.h>

#include <cctype>
#include <exception>
#include <string>

namespace hvmm {
namespace {

std::optional<uint64_t> fail(std::string* error, std::string msg) {
  if (error) *error = std::move(msg);
  return std::nullopt;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Unit suffix -> shift (0 for bytes); nullopt when the suffix is not one we know.
std::optional<unsigned> unit_shift(std::string_view suffix) {
  if (suffix.empty()) return 0;
  std::string u;
  for (char c : suffix) u += lower(c);
  if (u == "b") return 0;
  static constexpr std::string_view kPrefixes = "kmgt";
  const auto p = kPrefixes.find(u[0]);
  if (p == std::string_view::npos) return std::nullopt;
  const std::string_view rest = std::string_view(u).substr(1);
  if (rest.empty() || rest == "b" || rest == "ib") return static_cast<unsigned>(10 * (p + 1));
  return std::nullopt;
}

}  // namespace

std::optional<uint64_t> parse_size(std::string_view input, std::string* error) {
  const std::string_view s = trim(input);
  const std::string quoted = fmt::format("'{}'", input.substr(0, 64));
  if (s.empty()) return fail(error, "empty size");
  if (s.front() == '-') return fail(error, fmt::format("negative size {}", quoted));

  // Digits, then an optional fraction, then the unit.
  size_t i = 0;
  unsigned __int128 whole = 0;
  constexpr unsigned __int128 kMax = UINT64_MAX;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    whole = whole * 10 + static_cast<unsigned>(s[i] - '0');
    if (whole > kMax) return fail(error, fmt::format("size {} is too large", quoted));
    ++i;
  }
  const size_t int_digits = i;
  unsigned __int128 frac = 0, frac_scale = 1;
  if (i < s.size() && s[i] == '.') {
    ++i;
    const size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (i - start >= 18) return fail(error, fmt::format("too many decimals in size {}", quoted));
      frac = frac * 10 + static_cast<unsigned>(s[i] - '0');
      frac_scale *= 10;
      ++i;
    }
    if (i == start) return fail(error, fmt::format("no digits after '.' in size {}", quoted));
  }
  if (int_digits == 0)
    return fail(error, fmt::format("size {} does not start with a number (e.g. 512M, 16G)", quoted));

  const auto shift = unit_shift(s.substr(i));
  if (!shift)
    return fail(error, fmt::format("unknown unit in size {} (use K, M, G, T, optionally with iB/B)", quoted));

  // whole <= 2^64 and shift <= 40, so whole << shift fits in 128 bits.
  const unsigned __int128 bytes_whole = whole << *shift;
  const unsigned __int128 frac_bytes = frac << *shift;  // frac < 10^18 < 2^60: fits
  if (frac_bytes % frac_scale != 0)
    return fail(error, fmt::format("size {} is not a whole number of bytes", quoted));
  const unsigned __int128 total = bytes_whole + frac_bytes / frac_scale;
  if (total > kMax) return fail(error, fmt::format("size {} is too large", quoted));
  return static_cast<uint64_t>(total);
}

std::string format_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  unsigned u = 0;
  while (u + 1 < std::size(kUnits) && bytes >= (uint64_t{1} << (10 * (u + 1)))) ++u;
  const double v = static_cast<double>(bytes) / static_cast<double>(uint64_t{1} << (10 * u));
  if (v < 99.95) return fmt::format("{:.1f} {}", v, kUnits[u]);
  return fmt::format("{:.0f} {}", v, kUnits[u]);
}

}  // namespace hvmm

namespace hvmm {

std::optional<std::chrono::milliseconds> parse_period(std::string_view input, std::string* error) {
  const std::string_view s = trim(input);
  const std::string quoted = fmt::format("'{}'", input.substr(0, 64));
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  const std::string number(s.substr(0, i));
  const std::string_view unit = s.substr(i);
  double v = 0;
  size_t used = 0;
  try {
    v = std::stod(number, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  auto refuse = [&](std::string why) -> std::optional<std::chrono::milliseconds> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (used == 0 || used != number.size())
    return refuse(fmt::format("period {} does not start with a number (e.g. 500ms, 2s, 1m, 1h)", quoted));
  double ms = -1;
  if (unit == "ms") ms = v;
  else if (unit == "s") ms = v * 1e3;
  else if (unit == "m") ms = v * 60e3;
  else if (unit == "h") ms = v * 3600e3;
  else if (unit.empty()) return refuse(fmt::format("period {} needs a unit: ms, s, m or h", quoted));
  else return refuse(fmt::format("unknown unit in period {} (use ms, s, m or h)", quoted));
  if (ms < kMinPeriod.count() || ms > kMaxPeriod.count())
    return refuse(fmt::format("period {} is outside 10ms .. 1h", quoted));
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

}  // namespace hvmm
