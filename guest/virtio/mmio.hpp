// Guest side of the virtio-mmio transport, version 2 registers (virtio 1.x §4.2.2). Each register
// access is one MMIO exit (~14 µs on this host), so callers keep them rare. At ring 3 an access is a
// plain load/store: the MMIO hole is identity mapped.
#pragma once
#include <cstdint>

#include "abi/virtio.hpp"

namespace guest::virtio {

// Registers (mmio_reg::), status and feature bits, ring layout and the balloon's config: the ABI
// shared with hvmm's devices.
using namespace hvmm::abi::virtio;

class MmioDevice {
 public:
  MmioDevice() = default;
  explicit MmioDevice(uint64_t base) : base_(base) {}
  uint32_t read(uint32_t off) const { return *reinterpret_cast<volatile const uint32_t*>(base_ + off); }
  void write(uint32_t off, uint32_t v) const {
    asm volatile("" ::: "memory");  // ring and buffer stores before the exit
    *reinterpret_cast<volatile uint32_t*>(base_ + off) = v;
  }
  uint64_t base() const { return base_; }

  // The start of every driver's handshake (virtio 1.x §3.1.1): reset, ACKNOWLEDGE, DRIVER, then
  // the 64 feature bits the device offers. The driver picks its features and continues.
  uint64_t reset_and_read_features() const {
    write(mmio_reg::kStatus, 0);
    write(mmio_reg::kStatus, kStatusAcknowledge);
    write(mmio_reg::kStatus, kStatusAcknowledge | kStatusDriver);
    write(mmio_reg::kDeviceFeaturesSel, 0);
    uint64_t offered = read(mmio_reg::kDeviceFeatures);
    write(mmio_reg::kDeviceFeaturesSel, 1);
    return offered | uint64_t(read(mmio_reg::kDeviceFeatures)) << 32;
  }

 private:
  uint64_t base_ = 0;
};

}  // namespace guest::virtio
