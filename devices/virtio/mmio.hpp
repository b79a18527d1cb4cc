// virtio-mmio transport, version 2 register layout (virtio 1.x §4.2.2), one 4 KiB slot per device
// (layout::kVirtioMmioBase + i * layout::kVirtioMmioSlot).
//
// Registers are 32-bit and must be accessed with aligned 4-byte accesses; anything else in the
// register file reads as 0 / is ignored and counted. Config space (0x100..) accepts 1/2/4/8-byte
// aligned accesses. Queue notifications run synchronously in the calling (vCPU) thread: when the
// QueueNotify write returns, the device has already processed the queue and updated the used ring.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "devices/bus.hpp"
#include "devices/virtio/device.hpp"
#include "devices/virtio/queue.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm::virtio {

// Driver mistakes the transport noticed (never fatal; the guest only hurts itself).
struct MmioCounters {
  uint64_t bad_accesses = 0;        // misaligned / wrong size / outside the slot / read-only write
  uint64_t ignored_notifies = 0;    // before DRIVER_OK, bad queue index, queue not ready, NEEDS_RESET
  uint64_t refused_features = 0;    // FEATURES_OK refused
  uint64_t refused_status = 0;      // status write clearing bits or out of order
  uint64_t refused_queue_setup = 0; // QueueReady=1 with an invalid ring set-up
  uint64_t queue_errors = 0;        // queues that broke at run time
  uint64_t device_errors = 0;       // times DEVICE_NEEDS_RESET was set
};

// A BusDevice too: the VMM puts it on the MMIO bus at its slot (vmm/device_manager.cpp).
class MmioTransport final : public VirtioTransport, public BusDevice {
 public:
  static constexpr unsigned kMaxQueues = 16;

  // `mem`, `dev` and `irq` must outlive the transport. Attaches itself to `dev`.
  MmioTransport(const GuestMemory& mem, VirtioDevice& dev, IrqLine& irq);
  ~MmioTransport() override;
  MmioTransport(const MmioTransport&) = delete;
  MmioTransport& operator=(const MmioTransport&) = delete;

  // MMIO exits inside this device's slot; `offset` is relative to the slot base.
  void mmio_read(uint64_t offset, uint8_t* data, unsigned len);
  void mmio_write(uint64_t offset, const uint8_t* data, unsigned len);
  void bus_read(uint64_t offset, uint8_t* data, unsigned len) override { mmio_read(offset, data, len); }
  void bus_write(uint64_t offset, const uint8_t* data, unsigned len) override { mmio_write(offset, data, len); }

  // Snapshots for the VMM (take the device lock).
  uint32_t status();
  MmioCounters counters();

  // VirtioTransport (device lock held).
  Virtqueue* queue(unsigned index) override;
  void notify_used(unsigned index) override;
  void config_changed() override;
  void device_error() override;
  uint64_t driver_features() const override { return driver_features_; }

 private:
  struct QueueSetup {
    uint16_t num = 0;
    uint64_t desc = 0, driver = 0, device = 0;
  };
  // Where an access lands: the register file (32-bit aligned), config space, or nowhere valid.
  enum class Target { kRegister, kConfig, kBad };
  Target classify(uint64_t offset, unsigned len) const;
  uint32_t read_reg(uint32_t reg);
  void write_reg(uint32_t reg, uint32_t v);
  void write_status(uint32_t v);
  void set_queue_ready(uint32_t v);
  void notify(uint32_t index);
  void reset();
  void interrupt(uint32_t bits);
  uint64_t offered_features() const;
  unsigned queue_count() const;
  Virtqueue* selected_queue();

  const GuestMemory& mem_;
  VirtioDevice& dev_;
  IrqLine& irq_;
  uint32_t status_ = 0;
  uint32_t int_status_ = 0;
  uint32_t config_generation_ = 0;
  uint32_t device_features_sel_ = 0;
  uint32_t driver_features_sel_ = 0;
  uint64_t driver_features_ = 0;
  bool driver_features_junk_ = false;  // bits written above feature word 1
  uint32_t queue_sel_ = 0;
  std::array<QueueSetup, kMaxQueues> setup_{};
  std::vector<Virtqueue> queues_;  // kMaxQueues entries, built in the constructor
  MmioCounters counters_;
};

}  // namespace hvmm::virtio
