// hvmm's one rate-limited logger. Whatever a guest or a client can trigger over and over (a bad
// hypercall, an unmapped access, an anomaly in the shared words, a failed discard) is counted
// always and logged only for the first few occurrences and then at powers of two, so a hostile
// guest cannot flood stderr or slow the VMM down with it.
#pragma once
#include <cstdint>
#include <cstdio>
#include <fmt/format.h>

namespace hvmm {

inline constexpr uint64_t kLogFirst = 8;  // occurrences always logged

// Whether the `n`th occurrence (counting from 1) of an event is logged.
constexpr bool should_log(uint64_t n) { return n != 0 && (n <= kLogFirst || (n & (n - 1)) == 0); }

// Logs "hvmm: <message> (#n)" on stderr when should_log(n); n counts from 1.
template <class... Args>
void log_rate_limited(uint64_t n, fmt::format_string<Args...> f, Args&&... args) {
  if (!should_log(n)) return;
  fmt::print(stderr, "hvmm: {}{}\n", fmt::format(f, std::forward<Args>(args)...),
             n > 1 ? fmt::format(" (#{})", n) : std::string());
}

}  // namespace hvmm
