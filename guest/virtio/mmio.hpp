// Guest side of the virtio-mmio transport, version 2 registers (virtio 1.x §4.2.2). Each register
// access is one MMIO exit (~14 µs on this host), so callers keep them rare. At ring 3 an access is a
// plain load/store: the MMIO hole is identity mapped.
#pragma once
#include <cstdint>

namespace guest::virtio {

namespace reg {
inline constexpr uint32_t kMagicValue = 0x000;
inline constexpr uint32_t kVersion = 0x004;
inline constexpr uint32_t kDeviceId = 0x008;
inline constexpr uint32_t kDeviceFeatures = 0x010;
inline constexpr uint32_t kDeviceFeaturesSel = 0x014;
inline constexpr uint32_t kDriverFeatures = 0x020;
inline constexpr uint32_t kDriverFeaturesSel = 0x024;
inline constexpr uint32_t kQueueSel = 0x030;
inline constexpr uint32_t kQueueNumMax = 0x034;
inline constexpr uint32_t kQueueNum = 0x038;
inline constexpr uint32_t kQueueReady = 0x044;
inline constexpr uint32_t kQueueNotify = 0x050;
inline constexpr uint32_t kInterruptStatus = 0x060;
inline constexpr uint32_t kInterruptAck = 0x064;
inline constexpr uint32_t kStatus = 0x070;
inline constexpr uint32_t kQueueDescLow = 0x080;
inline constexpr uint32_t kQueueDescHigh = 0x084;
inline constexpr uint32_t kQueueDriverLow = 0x090;
inline constexpr uint32_t kQueueDriverHigh = 0x094;
inline constexpr uint32_t kQueueDeviceLow = 0x0a0;
inline constexpr uint32_t kQueueDeviceHigh = 0x0a4;
inline constexpr uint32_t kConfigGeneration = 0x0fc;
inline constexpr uint32_t kConfig = 0x100;

inline constexpr uint32_t kMagic = 0x74726976;  // "virt"
inline constexpr uint32_t kIntUsedBuffer = 1;
inline constexpr uint32_t kIntConfigChange = 2;
}  // namespace reg

namespace status {
inline constexpr uint32_t kAcknowledge = 1;
inline constexpr uint32_t kDriver = 2;
inline constexpr uint32_t kDriverOk = 4;
inline constexpr uint32_t kFeaturesOk = 8;
inline constexpr uint32_t kFailed = 128;
}  // namespace status

inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;

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

 private:
  uint64_t base_ = 0;
};

}  // namespace guest::virtio
