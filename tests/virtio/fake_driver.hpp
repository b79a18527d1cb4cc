// Test helpers: the driver side of a split virtqueue laid out in (fake) guest memory, an MMIO
// driver that talks to MmioTransport through its register file, and recording IRQ/backends.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "devices/virtio/balloon.hpp"
#include "devices/virtio/mmio.hpp"
#include "devices/virtio/queue.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm::virtio::test {

// Guest RAM for the tests: [0, 1 MiB) and [4 MiB, 5 MiB) with a hole in between.
inline constexpr uint64_t kLowEnd = 1 << 20;
inline constexpr uint64_t kHighStart = 4 << 20;
inline constexpr uint64_t kHighEnd = 5 << 20;
inline constexpr uint64_t kHole = 2 << 20;  // an address in the hole
inline GuestMemory::RegionSpec kTestRegions[] = {{0, kLowEnd}, {kHighStart, kHighEnd - kHighStart}};

struct FakeIrq : IrqLine {
  int raised = 0, lowered = 0;
  void raise() override { ++raised; }
  void lower() override { ++lowered; }
};

// Driver side of one split queue: descriptor table at `base`, avail ring after it, used ring
// 4-byte aligned after that (with both event-index trailers always present).
class FakeQueue {
 public:
  FakeQueue(const GuestMemory& mem, uint64_t base, uint16_t size)
      : mem_(mem), size_(size), desc(base), avail(base + 16ull * size),
        used((avail + 6 + 2ull * size + 3) & ~3ull) {
    std::vector<uint8_t> zero(used + 6 + 8ull * size - base, 0);
    mem_.write(base, zero.data(), zero.size());
  }
  QueueConfig config(bool event_idx = false, bool indirect = true) const {
    return {size_, desc, avail, used, event_idx, indirect};
  }
  uint16_t size() const { return size_; }

  void set_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags = 0, uint16_t next = 0) {
    write_desc(desc + 16ull * i, addr, len, flags, next);
  }
  void write_desc(uint64_t at, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    VirtqDesc d{addr, len, flags, next};
    mem_.write_obj(at, d);
  }
  // Puts `head` in the next avail slot and publishes it.
  void publish(uint16_t head) {
    mem_.write_obj(avail + 4 + 2ull * (avail_idx_ % size_), head);
    set_avail_idx(uint16_t(avail_idx_ + 1));
  }
  void set_avail_idx(uint16_t idx) {
    avail_idx_ = idx;
    std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(mem_.hva(avail + 2, 2)))
        .store(idx, std::memory_order_release);
  }
  void set_avail_flags(uint16_t f) { mem_.write_obj(avail, f); }
  void set_used_event(uint16_t v) { mem_.write_obj(avail + 4 + 2ull * size_, v); }
  uint16_t avail_event() const { return read16(used + 4 + 8ull * size_); }
  uint16_t used_idx() const {
    return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(mem_.hva(used + 2, 2)))
        .load(std::memory_order_acquire);
  }
  VirtqUsedElem used_elem(uint16_t i) const {
    VirtqUsedElem e{};
    mem_.read_obj(used + 4 + 8ull * (i % size_), e);
    return e;
  }

 private:
  uint16_t read16(uint64_t gpa) const {
    uint16_t v = 0;
    mem_.read_obj(gpa, v);
    return v;
  }
  const GuestMemory& mem_;
  uint16_t size_;
  uint16_t avail_idx_ = 0;

 public:
  const uint64_t desc, avail, used;
};

// A driver that programs a device through the virtio-mmio register file.
class MmioDriver {
 public:
  explicit MmioDriver(MmioTransport& t) : t_(t) {}
  uint32_t read(uint32_t off) {
    uint32_t v = 0;
    t_.mmio_read(off, reinterpret_cast<uint8_t*>(&v), 4);
    return v;
  }
  void write(uint32_t off, uint32_t v) { t_.mmio_write(off, reinterpret_cast<uint8_t*>(&v), 4); }
  uint64_t device_features() {
    write(mmio_reg::kDeviceFeaturesSel, 0);
    uint64_t lo = read(mmio_reg::kDeviceFeatures);
    write(mmio_reg::kDeviceFeaturesSel, 1);
    return lo | uint64_t(read(mmio_reg::kDeviceFeatures)) << 32;
  }
  // ACKNOWLEDGE, DRIVER, features, FEATURES_OK; true when the device kept FEATURES_OK.
  bool negotiate(uint64_t features) {
    write(mmio_reg::kStatus, 0);
    write(mmio_reg::kStatus, kStatusAcknowledge);
    write(mmio_reg::kStatus, kStatusAcknowledge | kStatusDriver);
    write(mmio_reg::kDriverFeaturesSel, 0);
    write(mmio_reg::kDriverFeatures, uint32_t(features));
    write(mmio_reg::kDriverFeaturesSel, 1);
    write(mmio_reg::kDriverFeatures, uint32_t(features >> 32));
    write(mmio_reg::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    return read(mmio_reg::kStatus) & kStatusFeaturesOk;
  }
  // Programs queue `index` with `q`'s layout; returns QueueReady as read back.
  bool setup_queue(unsigned index, const FakeQueue& q, uint16_t num = 0) {
    write(mmio_reg::kQueueSel, index);
    write(mmio_reg::kQueueNum, num ? num : q.size());
    write(mmio_reg::kQueueDescLow, uint32_t(q.desc));
    write(mmio_reg::kQueueDescHigh, uint32_t(q.desc >> 32));
    write(mmio_reg::kQueueDriverLow, uint32_t(q.avail));
    write(mmio_reg::kQueueDriverHigh, uint32_t(q.avail >> 32));
    write(mmio_reg::kQueueDeviceLow, uint32_t(q.used));
    write(mmio_reg::kQueueDeviceHigh, uint32_t(q.used >> 32));
    write(mmio_reg::kQueueReady, 1);
    return read(mmio_reg::kQueueReady) == 1;
  }
  void driver_ok() {
    write(mmio_reg::kStatus, read(mmio_reg::kStatus) | kStatusDriverOk);
  }
  void notify(unsigned index) { write(mmio_reg::kQueueNotify, index); }
  uint32_t status() { return read(mmio_reg::kStatus); }

 private:
  MmioTransport& t_;
};

// Records every backend call.
struct RecordingBackend : BalloonBackend {
  struct Call {
    uint64_t gpa, len;
    bool operator==(const Call&) const = default;
  };
  std::vector<Call> inflated, reported, frames, deflated;
  bool fail = false;
  bool discard(uint64_t gpa, uint64_t len, Why why) override {
    (why == Why::inflate ? inflated : why == Why::report ? reported : frames).push_back({gpa, len});
    return !fail;
  }
  void deflate(uint64_t gpa, uint64_t len) override { deflated.push_back({gpa, len}); }
};

}  // namespace hvmm::virtio::test
