#include "guest/parse.hpp"

#include <cstring>

namespace guest {
namespace {
// Parses leading digits; returns the rest of the string or nullptr (no digits / overflow).
const char* digits(const char* s, uint64_t& v) {
  v = 0;
  const char* start = s;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (~uint64_t{0} - 9) / 10) return nullptr;
    v = v * 10 + uint64_t(*s - '0');
  }
  return s == start ? nullptr : s;
}
bool mul(uint64_t v, uint64_t m, uint64_t& out) {
  if (m && v > ~uint64_t{0} / m) return false;
  out = v * m;
  return true;
}
}  // namespace

bool str_eq(const char* a, const char* b) { return strcmp(a, b) == 0; }

bool parse_uint(const char* s, uint64_t& out) {
  const char* rest = digits(s, out);
  return rest && !*rest;
}

bool parse_size(const char* s, uint64_t& out) {
  uint64_t v;
  const char* rest = digits(s, v);
  if (!rest) return false;
  uint64_t m = 1;
  switch (*rest) {
    case 0: break;
    case 'k': case 'K': m = 1ull << 10; rest++; break;
    case 'm': case 'M': m = 1ull << 20; rest++; break;
    case 'g': case 'G': m = 1ull << 30; rest++; break;
    case 't': case 'T': m = 1ull << 40; rest++; break;
    default: return false;
  }
  if (*rest == 'i') rest++;
  if (*rest == 'B' || *rest == 'b') rest++;
  return !*rest && mul(v, m, out);
}

bool parse_duration_ns(const char* s, uint64_t& out) {
  uint64_t v;
  const char* rest = digits(s, v);
  if (!rest) return false;
  uint64_t m;
  if (str_eq(rest, "ns")) m = 1;
  else if (str_eq(rest, "us")) m = 1000;
  else if (str_eq(rest, "ms")) m = 1000'000;
  else if (str_eq(rest, "s") || !*rest) m = 1000'000'000;
  else if (str_eq(rest, "m") || str_eq(rest, "min")) m = 60'000'000'000;
  else return false;
  return mul(v, m, out);
}

}  // namespace guest
