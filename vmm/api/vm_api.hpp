// What a running VM offers its control API, typed: the VM (vmm/vm.hpp) and its reclamation
// mechanism fill these structs; vmm/api/vm_json.cpp is the one place that turns them into the
// JSON the socket speaks (README, "The control API").
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "devices/virtio/balloon.hpp"
#include "devices/virtio/mem.hpp"
#include "reclaim/hyperalloc_host.hpp"
#include "vmm/api/api_error.hpp"

namespace hvmm::api {

// The result of a resize: the same fields for every mechanism (README, "The control API").
// A request refused before anything moved (no mechanism, driver not up, bad size) has only
// ok=false and the error.
struct ResizeOutcome {
  bool ok = false;
  std::string error;                 // when !ok
  ErrorCode code = ErrorCode::kResizeFailed;  // when !ok: the API's error code (api_error.hpp)
  std::optional<double> elapsed_ms;
  std::optional<uint64_t> target_bytes;  // what was asked for
  std::optional<uint64_t> usable_bytes;  // what the guest can use now
  std::optional<uint64_t> moved_bytes;   // taken from (shrink) or given back to (grow) the guest
  // Where a shrink's time went, for mechanisms that know (hyperalloc): residency check, CAS walk,
  // discard, the rest (reclaim::ShrinkParts).
  struct ShrinkPartsMs {
    double residency = 0, cas_walk = 0, discard = 0, other = 0;
  };
  std::optional<ShrinkPartsMs> shrink_parts_ms;

  static ResizeOutcome failure(std::string why, ErrorCode code = ErrorCode::kResizeFailed) {
    ResizeOutcome r;
    r.error = std::move(why);
    r.code = code;
    return r;
  }
};

// What every mechanism reports in the same fields (README, "The control API"); the extras of each
// mechanism follow under one key, "detail".
struct MechanismCommon {
  uint64_t usable_bytes = 0;  // what the guest can use now: RAM minus what the host took by resize
  uint64_t target_bytes = 0;  // the last resize target (RAM before the first)
  std::optional<uint64_t> guest_free_bytes;  // the guest's free memory, as far as the mechanism knows
  // Guest-reported values that were out of bounds (e.g. a balloon `actual` beyond the VM's size):
  // clamped for the figures above, and named here.
  std::vector<std::string> guest_lies;
};

struct NoReclaimStatus {};

struct HyperallocMechanismStatus {
  reclaim::HyperallocStatus host;
  uint64_t invalid_accesses = 0;  // bad install-port accesses and installs before registration
};

struct BalloonMechanismStatus {
  virtio::BalloonStatus device;
  bool driver_ok = false;
  bool auto_reclaim = false;  // free page reporting discards (--auto-reclaim)
  uint64_t discarded_inflate_bytes = 0, discarded_report_bytes = 0, acknowledged_report_bytes = 0;
  uint64_t last_resize_ms = 0;
};

struct VirtioMemMechanismStatus {
  virtio::VirtioMemStatus device;  // block size, region, plugged/requested size, request counters
  bool driver_ok = false;
  uint64_t boot_bytes = 0;         // never unplugged
  uint64_t memslots = 0;           // KVM memory slots the plugged blocks hold now
  uint64_t plugged_bytes_total = 0, unplugged_bytes_total = 0;  // by the backend, since boot
  uint64_t slot_failures = 0;      // KVM refused a slot change (the request got ERROR)
  uint64_t free_reports = 0;       // the driver's free-memory reports (hypercall), bad ones included
  uint64_t bad_free_reports = 0;   // reports beyond the VM's size (clamped, counted in guest_lies)
  std::optional<uint64_t> auto_period_ms;  // --auto-reclaim: the policy's period and step
  uint64_t auto_step_bytes = 0;
  uint64_t auto_grows = 0, auto_shrinks = 0;
  uint64_t last_resize_ms = 0;
};

using MechanismDetail =
    std::variant<NoReclaimStatus, HyperallocMechanismStatus, BalloonMechanismStatus, VirtioMemMechanismStatus>;

struct MechanismStatus {
  MechanismCommon common;
  MechanismDetail detail;
};

struct VcpuCpuTime {
  unsigned index = 0;
  bool service = false;  // runs a guest driver, not the workload
  double cpu_s = 0;
};

struct VmStatus {
  std::string mechanism;  // "hyperalloc", "balloon", "none", ...
  MechanismStatus reclaim;
  uint64_t guest_total_bytes = 0;
  uint64_t host_rss_bytes = 0;
  unsigned vcpus = 0;  // workload vCPUs
  double uptime_s = 0;
  bool stopping = false;
  std::vector<VcpuCpuTime> vcpu_cpu;
  uint64_t hypercalls = 0, invalid_hypercalls = 0, unhandled_accesses = 0;
  bool barrier_waiting = false;
  uint64_t barriers_passed = 0;
  uint64_t mem_limit_bytes = 0;      // --mem-limit (0: none)
  bool mem_limit_applied = false;    // the guest was shrunk to it
  uint64_t mem_limit_refusals = 0;   // resizes refused for going above it
};

// Configuration and state (GET vm.info): what the VM was started with.
struct VmInfo {
  std::string mechanism;
  uint64_t mem_bytes = 0;          // --mem: all the memory the guest can have
  uint64_t boot_mem_bytes = 0;     // RAM at boot (virtio-mem: the rest is hot-pluggable)
  uint64_t mem_min_bytes = 0;      // --mem-min: no resize and no auto mode goes below it
  unsigned vcpus = 0;              // workload vCPUs
  unsigned service_vcpus = 0;      // vCPUs that run the guest's drivers
  std::string kernel;              // "built-in" or the ELF path
  std::string cmdline, workload;
  std::optional<uint64_t> auto_reclaim_period_ms;  // running automatic reclamation, if any
  std::string state;               // "running" | "stopping"
  double uptime_s = 0;
};

// PUT vm.auto-reclaim.
struct AutoReclaimRequest {
  bool enabled = false;
  std::optional<std::chrono::milliseconds> period;  // unset: the mechanism's default
};
struct AutoReclaimOutcome {
  bool ok = false;
  std::string error;  // when !ok
  ErrorCode code = ErrorCode::kUnsupported;
  std::optional<uint64_t> period_ms;  // when ok: the running period (unset: off)
};

// Implemented by the VM. Called from API connection threads, several at once: thread-safe.
class VmApi {
 public:
  virtual ~VmApi() = default;
  virtual VmStatus status() = 0;
  virtual VmInfo info() = 0;
  // Blocks until the target is reached or failed.
  virtual ResizeOutcome resize(uint64_t target_bytes) = 0;
  // Asks the VM to stop cleanly and returns at once.
  virtual void shutdown() = 0;
  // Lets the guest past its next `barrier` workload step (or the one it is blocked in).
  virtual void continue_guest() = 0;
  // Starts or stops automatic reclamation at run time.
  virtual AutoReclaimOutcome set_auto_reclaim(const AutoReclaimRequest& req) = 0;
};

}  // namespace hvmm::api
