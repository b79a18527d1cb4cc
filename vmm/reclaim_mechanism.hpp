// A memory-reclamation mechanism as the VM sees it: hyperalloc (reclaim/, the default), the classic
// virtio-balloon + free page reporting (the baseline), or none. The VM attaches it before the vCPUs
// start, forwards `resize` and `status` from the control API to it, and starts its automatic mode
// for --auto-reclaim.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "devices/bus.hpp"
#include "devices/hypercall_port.hpp"
#include "vmm/boot/fdt_builder.hpp"
#include "vmm/guest_memory.hpp"

namespace hvmm {

// What a mechanism may add to the VM while it is being built.
struct VmWiring {
  const GuestMemory& mem;
  Bus& pio;
  Bus& mmio;
  boot::FdtConfig& fdt;       // add device nodes (hyperalloc port, virtio-mmio slots)
  HypercallPort& hypercalls;  // register handlers; wake_all() stands in for an interrupt
  unsigned workload_cpus;     // vCPUs that run the workload
  unsigned service_cpus = 0;  // a mechanism may ask for extra vCPUs that run guest drivers
  struct Range {
    uint64_t gpa, len;
  };
  std::vector<Range> protected_ranges = {};  // kernel image and boot data: never hand these to the host
};

class ReclaimMechanism {
 public:
  virtual ~ReclaimMechanism() = default;
  virtual const char* name() const = 0;
  // Register devices and FDT nodes. Called once, before any vCPU runs.
  virtual void attach(VmWiring& w) = 0;
  // Mechanism fields for `hvmm ctl status` (merged into the VM's status object).
  virtual nlohmann::json status() = 0;
  // Sets the guest's usable memory; blocks until reached or failed. Returns {"ok":..., ...}.
  virtual nlohmann::json resize(uint64_t target_bytes) = 0;
  // Starts automatic reclamation (period: how often it looks). Called at most once.
  virtual void start_auto(std::chrono::milliseconds period) = 0;
  // A few words for the live status line, e.g. "reclaimed 1.2 GiB, 14 installs".
  virtual std::string status_line() = 0;
  // Stops background work; called before the VM is torn down.
  virtual void stop() = 0;
};

}  // namespace hvmm
