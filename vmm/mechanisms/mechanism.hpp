// A memory-reclamation mechanism as the VM sees it: hyperalloc (the default), the classic
// virtio-balloon + free page reporting (the baseline), or none. A mechanism is its devices (added
// through the DeviceManager), the guest's driver for them, and this object; adding one needs no
// edit to the VM (ARCHITECTURE.md, "Adding a device or a mechanism").
//
// The VM attaches it before the vCPUs exist, forwards `resize` and `status` from the control API to
// it (typed: vmm/api/vm_api.hpp), and starts its automatic mode for --auto-reclaim.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "memory/guest_memory.hpp"
#include "reclaim/registration.hpp"
#include "vmm/api/vm_api.hpp"
#include "vmm/device_manager.hpp"
#include "vmm/kvm/kvm.hpp"

namespace hvmm {

// What a mechanism may add to the VM while it is being built.
struct VmWiring {
  const GuestMemory& mem;
  DeviceManager& devices;     // ports, virtio slots, FDT nodes, the hypercall table
  unsigned workload_cpus;     // vCPUs that run the workload
  unsigned service_cpus = 0;  // a mechanism may ask for extra vCPUs that run guest drivers
  // Kernel image and boot data: a mechanism must never let the guest point the host at them.
  std::vector<reclaim::GpaRange> protected_ranges = {};
  // For a mechanism that maps guest memory itself (virtio-mem: the hot-plug region, w.mem.hotplug()):
  // the VM and KVM memory slots [first_free_memslot, memslots) that RAM does not use.
  KvmVm* kvm = nullptr;
  uint32_t first_free_memslot = 0;
  uint32_t memslots = 0;
};

class ReclaimMechanism {
 public:
  virtual ~ReclaimMechanism() = default;
  virtual const char* name() const = 0;
  // Adds devices, FDT nodes and hypercall handlers. Called once, before any vCPU exists.
  virtual void attach(VmWiring& w) = 0;
  // Thread-safe, never blocks behind a running resize.
  virtual api::MechanismStatus status() = 0;
  // Sets the guest's usable memory; blocks until reached or failed.
  virtual api::ResizeOutcome resize(uint64_t target_bytes) = 0;
  // Starts automatic reclamation (period: how often it looks). Called while it is not running (the VM
  // serialises it): from the VMM's main thread before the vCPUs start (--auto-reclaim), or later from
  // an API thread (PUT vm.auto-reclaim).
  virtual void start_auto(std::chrono::milliseconds period) = 0;
  // Stops automatic reclamation, so that start_auto() may start it again (PUT vm.auto-reclaim: off,
  // or a new period). Returns false when this mechanism cannot (nothing changed then). The VM
  // serialises it with start_auto(); it may race with stop().
  virtual bool stop_auto() { return false; }
  // A few words for the live status line, e.g. "reclaimed 1.2 GiB, 14 installs".
  virtual std::string status_line() = 0;
  // Stops background work and makes a running resize return (it fails: the VM is stopping);
  // called when the VM stops, before it is torn down, and again by the destructor (idempotent).
  virtual void stop() = 0;
};

}  // namespace hvmm
