#include "memory/host_memory.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <fmt/format.h>

namespace hvmm {
namespace {

// "Key:   123 kB" -> bytes; nullopt if the key is absent or its value malformed.
std::optional<uint64_t> field_kib(std::string_view text, std::string_view key) {
  for (size_t at = 0; at < text.size();) {
    const size_t end = std::min(text.find('\n', at), text.size());
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':') continue;
    line.remove_prefix(key.size() + 1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    uint64_t kib = 0;
    auto [p, ec] = std::from_chars(line.data(), line.data() + line.size(), kib);
    if (ec != std::errc() || p == line.data() || kib > (UINT64_MAX >> 10)) return std::nullopt;
    return kib << 10;
  }
  return std::nullopt;
}

std::string gib(uint64_t bytes) { return fmt::format("{:.1f} GiB", double(bytes) / double(1ull << 30)); }

}  // namespace

std::optional<HostMemInfo> parse_meminfo(std::string_view text) {
  auto avail = field_kib(text, "MemAvailable");
  if (!avail) return std::nullopt;
  return HostMemInfo{*avail, field_kib(text, "SwapFree").value_or(0)};
}

std::optional<HostMemInfo> read_host_meminfo() {
  const int fd = ::open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[8192];
  const ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  return parse_meminfo(std::string_view(buf, static_cast<size_t>(n)));
}

std::optional<std::string> admission_warning(uint64_t guest_bytes, bool limited, const HostMemInfo& info) {
  const uint64_t backable = info.available_bytes + info.swap_free_bytes;
  if (guest_bytes <= backable) return std::nullopt;
  return fmt::format(
      "{} {} is more than this host can back now ({} available + {} free swap): a guest that touches it all gets hvmm "
      "killed by the host's OOM killer{}",
      limited ? "--mem-limit" : "--mem", gib(guest_bytes), gib(info.available_bytes), gib(info.swap_free_bytes),
      limited ? "" : "; --mem-limit SIZE caps what the guest may use");
}

}  // namespace hvmm
