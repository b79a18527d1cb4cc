// What a running VM offers its control API, typed: the VM (vmm/vm.hpp) and its reclamation
// mechanism fill these structs; vmm/api/vm_json.cpp is the one place that turns them into the
// JSON the socket speaks (README, "The control API").
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "devices/virtio/balloon.hpp"
#include "reclaim/hyperalloc_host.hpp"

namespace hvmm::api {

// The result of a resize, for every mechanism. Which optional fields a mechanism fills is part of
// its reply (README): hyperalloc gives target/usable/moved, the balloon the size it reached.
struct ResizeOutcome {
  bool ok = false;
  std::string error;                 // when !ok
  std::optional<double> elapsed_ms;
  std::optional<uint64_t> target_bytes, usable_bytes, moved_bytes;
  std::optional<uint64_t> actual_bytes;  // balloon: RAM minus what is in the balloon

  static ResizeOutcome failure(std::string why) {
    ResizeOutcome r;
    r.error = std::move(why);
    return r;
  }
};

struct NoReclaimStatus {};

struct HyperallocMechanismStatus {
  reclaim::HyperallocStatus host;
  uint64_t invalid_accesses = 0;  // bad install-port accesses and installs before registration
};

struct BalloonMechanismStatus {
  virtio::BalloonStatus device;
  uint64_t ram_bytes = 0;
  bool driver_ok = false;
  bool auto_reclaim = false;  // free page reporting discards (--auto-reclaim)
  uint64_t discarded_inflate_bytes = 0, discarded_report_bytes = 0, acknowledged_report_bytes = 0;
  uint64_t last_resize_ms = 0;
};

using MechanismStatus = std::variant<NoReclaimStatus, HyperallocMechanismStatus, BalloonMechanismStatus>;

struct VcpuCpuTime {
  unsigned index = 0;
  bool service = false;  // runs a guest driver, not the workload
  double cpu_s = 0;
};

struct VmStatus {
  std::string mechanism;  // "hyperalloc", "balloon", "none"
  MechanismStatus detail;
  uint64_t guest_total_bytes = 0;
  uint64_t host_rss_bytes = 0;
  unsigned vcpus = 0;  // workload vCPUs
  double uptime_s = 0;
  bool stopping = false;
  std::vector<VcpuCpuTime> vcpu_cpu;
  uint64_t hypercalls = 0, invalid_hypercalls = 0, unhandled_accesses = 0;
  bool barrier_waiting = false;
  uint64_t barriers_passed = 0;
};

// Implemented by the VM. Called from API connection threads, several at once: thread-safe.
class VmApi {
 public:
  virtual ~VmApi() = default;
  virtual VmStatus status() = 0;
  // Blocks until the target is reached or failed.
  virtual ResizeOutcome resize(uint64_t target_bytes) = 0;
  // Asks the VM to stop cleanly and returns at once.
  virtual void shutdown() = 0;
  // Lets the guest past its next `barrier` workload step (or the one it is blocked in).
  virtual void continue_guest() = 0;
};

}  // namespace hvmm::api
