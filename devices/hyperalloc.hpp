// The HyperAlloc paravirtual device (DESIGN.md §5): the guest registers its allocator once with a
// hypercall (kHyperallocRegister, a0 = GPA of the Registration; served by register_zone) and asks
// for installs by a 32-bit write of a huge-frame index to the install port (abi_ports.hpp), served
// synchronously in the writing vCPU thread. Owns the zone state once registered.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>
#include <memory>
#include <mutex>
#include <string>

#include "devices/bus.hpp"
#include "reclaim/zone_state.hpp"
#include "vmm/guest_memory.hpp"

namespace hvmm {

class HyperallocDevice : public BusDevice {
 public:
  // `mem` must outlive the device.
  explicit HyperallocDevice(const GuestMemory& mem);

  // The hypercall handler: validates the record at `gpa` and creates the zone state. Returns 0, or
  // HypercallStatus::kInvalid (bad record, or a second registration) with the reason logged.
  int64_t register_zone(uint64_t gpa);
  // Guest memory the registered arrays must not overlap (kernel image, boot data). Set before the VM runs.
  void set_protected_ranges(std::vector<reclaim::GpaRange> r) { protected_ = std::move(r); }
  // Called once, in the registering vCPU thread, right after a successful registration (e.g. to
  // start the auto-reclaim thread). Set it before the VM runs.
  void set_on_registered(std::function<void(reclaim::ZoneState&)> cb) { on_registered_ = std::move(cb); }
  // nullptr until the guest registered; then valid for the device's lifetime.
  reclaim::ZoneState* zone() const { return zone_.load(std::memory_order_acquire); }

  // Install port: reads return all ones; a 4-byte write at offset 0 installs that huge frame.
  void bus_read(uint64_t offset, uint8_t* data, unsigned len) override;
  void bus_write(uint64_t offset, const uint8_t* data, unsigned len) override;

  // Port accesses that were not a 4-byte write at offset 0, or came before registration.
  uint64_t invalid_accesses() const { return invalid_.load(std::memory_order_relaxed); }

 private:
  void note_invalid(const char* what, uint64_t value);

  const GuestMemory& mem_;
  std::mutex register_mu_;
  std::unique_ptr<reclaim::ZoneState> owned_;  // guarded by register_mu_
  std::atomic<reclaim::ZoneState*> zone_{nullptr};
  std::function<void(reclaim::ZoneState&)> on_registered_;
  std::vector<reclaim::GpaRange> protected_;
  uint64_t refusals_ = 0;  // guarded by register_mu_
  void refuse_log(const std::string& msg);
  std::atomic<uint64_t> invalid_{0};
};

}  // namespace hvmm
