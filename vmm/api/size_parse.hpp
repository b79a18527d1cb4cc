// Human-readable byte sizes and periods for the CLI and the control API: "16G", "512MiB", "1.5g",
// "12345" (bytes); "500ms", "2s", "1m", "1h".
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hvmm {

// Parses a size in bytes. Units are binary and case-insensitive: K, M, G, T (x 1024^n), each with an
// optional "iB" or "B" suffix; a bare number or a "B" suffix means bytes. A decimal fraction is
// allowed ("1.5G") when it comes to a whole number of bytes. Surrounding whitespace is ignored.
// On garbage, overflow, a negative or an empty value: std::nullopt, and *error (if given) says why.
std::optional<uint64_t> parse_size(std::string_view s, std::string* error);

// "512 B", "4.0 KiB", "2.0 GiB", "512 MiB", "1.5 TiB": the largest binary unit that fits, one
// decimal below 100 units, none from 100 up.
std::string format_size(uint64_t bytes);

// The range of every period hvmm takes (--auto-reclaim=PERIOD, PUT vm.auto-reclaim).
inline constexpr std::chrono::milliseconds kMinPeriod{10};
inline constexpr std::chrono::milliseconds kMaxPeriod{3600 * 1000};

// Parses a period: a number with a unit, ms, s, m or h ("500ms", "2.5s", "1h"), kMinPeriod ..
// kMaxPeriod. A bare number is refused (is it seconds or milliseconds?). std::nullopt and *error on
// anything else.
std::optional<std::chrono::milliseconds> parse_period(std::string_view s, std::string* error);

}  // namespace hvmm
