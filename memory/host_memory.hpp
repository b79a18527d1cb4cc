// What the host can give a VM (issue 13, defect 7): MemAvailable and free swap from /proc/meminfo,
// and the admission check `hvmm run` makes at start. hvmm does not refuse a VM larger than that
// (guest RAM is backed lazily and a guest may never touch most of it), it warns, and --mem-limit is
// the way to make a guest that touches too much run out of memory inside instead of getting hvmm
// OOM-killed (README, "Memory limit").
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hvmm {

struct HostMemInfo {
  uint64_t available_bytes = 0;  // MemAvailable
  uint64_t swap_free_bytes = 0;  // SwapFree
};

// From a /proc/meminfo text; nullopt when MemAvailable is missing or malformed (SwapFree may be).
std::optional<HostMemInfo> parse_meminfo(std::string_view text);
// This host's, now; nullopt when /proc/meminfo cannot be read.
std::optional<HostMemInfo> read_host_meminfo();

// The warning for a VM that may use `guest_bytes` of RAM (--mem, or --mem-limit when given) on a
// host with `info`, or nullopt when the host can back all of it.
std::optional<std::string> admission_warning(uint64_t guest_bytes, bool limited, const HostMemInfo& info);

}  // namespace hvmm
