// Human-readable byte sizes for the CLI and the control API: "16G", "512MiB", "1.5g", "12345".
#pragma once
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

}  // namespace hvmm
