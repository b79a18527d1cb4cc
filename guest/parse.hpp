// Parsing of workload arguments: sizes ("2G", "512M", "4096") and durations ("20s", "500ms").
#pragma once
#include <cstdint>

namespace guest {

bool parse_size(const char* s, uint64_t& out);
bool parse_duration_ns(const char* s, uint64_t& out);
bool parse_uint(const char* s, uint64_t& out);
bool str_eq(const char* a, const char* b);

}  // namespace guest
