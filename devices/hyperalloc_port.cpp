#include "devices/hyperalloc_port.hpp"

#include <cstring>

#include "base/log.hpp"

namespace hvmm {

void HyperallocInstallPort::bus_read(uint64_t, uint8_t* data, unsigned len) { std::memset(data, 0xff, len); }

void HyperallocInstallPort::bus_write(uint64_t offset, const uint8_t* data, unsigned len) {
  if (offset != 0 || len != 4) {
    uint64_t n = invalid_.fetch_add(1, std::memory_order_relaxed) + 1;
    return log_rate_limited(n, "hyperalloc: install port access of {} bytes at offset {} is not a 32-bit write; ignored",
                            len, offset);
  }
  uint32_t idx;
  std::memcpy(&idx, data, 4);
  install_(idx);  // refusals (before registration, out of range, ...) are counted by the handler
}

}  // namespace hvmm
