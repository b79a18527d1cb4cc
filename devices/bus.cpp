#include "devices/bus.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace hvmm {

void Bus::add(uint64_t base, uint64_t len, BusDevice* dev) {
  if (!dev) throw std::invalid_argument(fmt::format("bus: null device at {:#x}", base));
  if (len == 0) throw std::invalid_argument(fmt::format("bus: zero-length range at {:#x}", base));
  if (base + len - 1 < base)
    throw std::invalid_argument(fmt::format("bus: range at {:#x} of length {:#x} wraps", base, len));
  std::unique_lock lock(mu_);
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), base,
                             [](uint64_t b, const Range& r) { return b < r.base; });
  // Neighbours: the one before must end at or before base, the one after must start past our end.
  // Compare last bytes (base + len - 1) so ranges ending at 2^64 work.
  if (it != ranges_.begin()) {
    auto& prev = *(it - 1);
    if (prev.base + prev.len - 1 >= base)
      throw std::invalid_argument(fmt::format("bus: [{:#x}, +{:#x}) overlaps [{:#x}, +{:#x})", base, len,
                                              prev.base, prev.len));
  }
  if (it != ranges_.end() && it->base <= base + len - 1)
    throw std::invalid_argument(fmt::format("bus: [{:#x}, +{:#x}) overlaps [{:#x}, +{:#x})", base, len,
                                            it->base, it->len));
  ranges_.insert(it, Range{base, len, dev});
}

const Bus::Range* Bus::find(uint64_t addr, unsigned len) const {
  if (len == 0) return nullptr;
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                             [](uint64_t a, const Range& r) { return a < r.base; });
  if (it == ranges_.begin()) return nullptr;
  const Range& r = *(it - 1);
  uint64_t off = addr - r.base;  // addr >= r.base here
  if (off >= r.len || len > r.len - off) return nullptr;
  return &r;
}

bool Bus::read(uint64_t addr, uint8_t* data, unsigned len) {
  std::shared_lock lock(mu_);
  if (auto* r = find(addr, len)) {
    r->dev->bus_read(addr - r->base, data, len);
    return true;
  }
  std::memset(data, 0xff, len);
  return false;
}

bool Bus::write(uint64_t addr, const uint8_t* data, unsigned len) {
  std::shared_lock lock(mu_);
  if (auto* r = find(addr, len)) {
    r->dev->bus_write(addr - r->base, data, len);
    return true;
  }
  return false;
}

}  // namespace hvmm
