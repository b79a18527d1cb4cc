#include "devices/hyperalloc.hpp"

#include <cstring>
#include <fmt/format.h>

#include "guest-alloc/abi_ports.hpp"
#include "reclaim/registration.hpp"

namespace hvmm {
namespace {
int64_t status(abi::HypercallStatus s) { return static_cast<int64_t>(s); }
}  // namespace

HyperallocDevice::HyperallocDevice(const GuestMemory& mem) : mem_(mem) {}

int64_t HyperallocDevice::register_zone(uint64_t gpa) {
  reclaim::ZoneState* zone = nullptr;
  {
    std::lock_guard lk(register_mu_);
    if (owned_) {
      refuse_log("registration refused: the guest already registered a zone");
      return status(abi::HypercallStatus::kInvalid);
    }
    reclaim::RegistrationResult r = reclaim::read_registration(mem_, gpa, protected_);
    if (!r) {
      refuse_log(fmt::format("registration at {:#x} refused: {}", gpa, r.error));
      return status(abi::HypercallStatus::kInvalid);
    }
    owned_ = std::make_unique<reclaim::ZoneState>(mem_, *r.zone);
    zone = owned_.get();
    zone_.store(zone, std::memory_order_release);
  }
  if (on_registered_) on_registered_(*zone);
  return status(abi::HypercallStatus::kOk);
}

void HyperallocDevice::refuse_log(const std::string& msg) {
  // A guest may retry forever: log the first few refusals, then every power of two.
  uint64_t n = ++refusals_;
  if (n <= 16 || (n & (n - 1)) == 0) fmt::print(stderr, "hvmm: hyperalloc: {} (refusal #{})\n", msg, n);
}

void HyperallocDevice::note_invalid(const char* what, uint64_t value) {
  if (invalid_.fetch_add(1, std::memory_order_relaxed) < 8)
    fmt::print(stderr, "hvmm: hyperalloc: {} ({:#x}); ignored\n", what, value);
}

void HyperallocDevice::bus_read(uint64_t, uint8_t* data, unsigned len) { std::memset(data, 0xff, len); }

void HyperallocDevice::bus_write(uint64_t offset, const uint8_t* data, unsigned len) {
  if (offset != 0 || len != 4) return note_invalid("install port access is not a 32-bit write", len);
  uint32_t idx;
  std::memcpy(&idx, data, 4);
  reclaim::ZoneState* zone = zone_.load(std::memory_order_acquire);
  if (!zone) return note_invalid("install before registration", idx);
  zone->install(idx);  // refusals are counted by the zone
}

}  // namespace hvmm
