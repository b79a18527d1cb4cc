// The contract between a virtio device model and its transport (virtio 1.x §2, §3).
//
// A device is a state machine: it never calls KVM; interrupts leave through IrqLine, queues and
// config-change notifications through VirtioTransport.
//
// Locking: every device has one mutex (lock()). The transport holds it across each MMIO access
// and calls the device with it held. Host-side device APIs (e.g. the balloon's set_target_pages,
// called from the API thread) take the same mutex and may then call the VirtioTransport methods,
// which expect it held. One lock per device, always the same order: no deadlock.
#pragma once
#include <cstdint>
#include <mutex>

#include "abi/virtio.hpp"
#include "devices/irq.hpp"

namespace hvmm::virtio {

// The spec constants (registers, status and feature bits, ring layout, balloon config) are the
// ABI the guest's driver shares: hvmm::virtio::kStatusDriverOk, mmio_reg::kStatus, balloon::Config...
using namespace abi::virtio;

class Virtqueue;

using hvmm::IrqLine;  // devices/irq.hpp

// What the transport offers a device. All calls expect the device lock held.
class VirtioTransport {
 public:
  virtual ~VirtioTransport() = default;
  // The queue if the driver enabled it, DRIVER_OK is set and the device does not need a reset;
  // otherwise nullptr (nothing is processed before DRIVER_OK).
  virtual Virtqueue* queue(unsigned index) = 0;
  // After pushing used buffers: interrupt the driver if the queue's notification rules say so.
  virtual void notify_used(unsigned index) = 0;
  // The device changed its config space: bump ConfigGeneration, config-change interrupt.
  virtual void config_changed() = 0;
  // Unrecoverable device error: set DEVICE_NEEDS_RESET and tell the driver.
  virtual void device_error() = 0;
  virtual uint64_t driver_features() const = 0;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  virtual uint32_t device_id() const = 0;
  // Device-specific feature bits; the transport adds VERSION_1, INDIRECT_DESC and EVENT_IDX.
  virtual uint64_t device_features() const = 0;
  // Called when the driver sets FEATURES_OK with an offered feature set including VERSION_1;
  // the device may still refuse. Queue numbering may depend on the accepted features.
  virtual bool accept_features(uint64_t features) = 0;
  // Queues for the accepted features (before FEATURES_OK: for the offered ones).
  virtual unsigned num_queues() const = 0;
  virtual uint16_t queue_max_size(unsigned index) const = 0;
  // Config space (offset relative to its start). Out-of-range bytes read as 0 / are ignored.
  virtual void read_config(uint32_t offset, uint8_t* data, unsigned len) = 0;
  virtual void write_config(uint32_t offset, const uint8_t* data, unsigned len) = 0;
  // DRIVER_OK was set: the device is live.
  virtual void activate() {}
  // The driver notified queue `index` (only after DRIVER_OK, only for a ready queue).
  virtual void queue_notify(unsigned index) = 0;
  // Device reset (status 0 written). Host-facing counters survive it.
  virtual void reset() = 0;

  std::mutex& lock() { return mu_; }
  void attach(VirtioTransport* t) { transport_ = t; }

 protected:
  std::mutex mu_;
  VirtioTransport* transport_ = nullptr;
};

}  // namespace hvmm::virtio
