// The host side of HyperAlloc for one VM, in one owner (ARCHITECTURE.md, "One frame's life"): the
// guest's registration creates the zone state (reclaim/zone_state.hpp); installs, resizes and the
// auto-reclaim policy (reclaim/auto_reclaim.hpp) all go through here.
//
// Threads: register_zone() and install() run in vCPU threads (the hypercall and the install port
// call them); resize() and status() in API threads; start_auto() and stop() in the VMM's main
// thread. The auto-reclaim thread is started by start_auto() — never inside a vCPU exit — and waits
// until the guest has registered before its first scan.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "memory/guest_memory.hpp"
#include "reclaim/auto_reclaim.hpp"
#include "reclaim/registration.hpp"
#include "reclaim/zone_state.hpp"

namespace hvmm::reclaim {

struct HyperallocStatus {
  bool registered = false;
  ZoneStats zone;                        // zeros until registered
  std::optional<uint64_t> target_bytes;  // of the last resize
  uint64_t registration_refusals = 0;
  uint64_t installs_before_registration = 0;
  struct Auto {
    AutoReclaimConfig config;
    AutoReclaimStats stats;
  };
  std::optional<Auto> auto_reclaim;  // once the policy runs (started and the guest registered)
};

class HyperallocHost {
 public:
  // `mem` must outlive this object. `protected_ranges`: guest memory the shared arrays must not
  // overlap (kernel image, boot data).
  HyperallocHost(const GuestMemory& mem, std::vector<GpaRange> protected_ranges, AutoReclaimConfig auto_cfg = {});
  ~HyperallocHost();  // stop()
  HyperallocHost(const HyperallocHost&) = delete;
  HyperallocHost& operator=(const HyperallocHost&) = delete;

  // The registration hypercall: validates the record at `gpa` and creates the zone. The only event
  // that creates it; a second registration or a bad record is refused (counted, rate-limited log).
  bool register_zone(uint64_t gpa);
  // The install port: the guest wants reclaimed huge frame `huge_idx` back (synchronous).
  void install(uint64_t huge_idx);
  // Shrinks or grows the guest's usable memory; nullopt before the guest registered.
  std::optional<ResizeResult> resize(uint64_t target_usable_bytes);
  // Starts the auto-reclaim thread (once; a later call only changes nothing). VMM thread.
  void start_auto(std::chrono::milliseconds period);
  // Stops the auto-reclaim thread; idempotent.
  void stop();
  // Stops the auto-reclaim thread so that start_auto() can start it again (with a new period); its
  // statistics start afresh then. Frames it soft-reclaimed stay so (the guest installs them on use).
  void stop_auto();

  HyperallocStatus status() const;
  // nullptr until the guest registered; then valid for this object's lifetime.
  ZoneState* zone() const { return zone_.load(std::memory_order_acquire); }

 private:
  void auto_thread();

  const GuestMemory& mem_;
  const std::vector<GpaRange> protected_;
  std::atomic<ZoneState*> zone_{nullptr};
  std::atomic<uint64_t> refusals_{0}, early_installs_{0};

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;  // registration or stop
  std::unique_ptr<ZoneState> owned_zone_;
  AutoReclaimConfig auto_cfg_;
  std::unique_ptr<AutoReclaim> auto_;  // created by the auto thread once the zone exists
  std::thread auto_thread_;
  bool stopped_ = false;
  bool auto_cancel_ = false;  // stop_auto(): the auto thread ends, the host goes on
  std::mutex join_mu_;        // stop() and stop_auto() may both want to join the auto thread
  std::optional<uint64_t> target_;
  std::mutex resize_mu_;  // one resize at a time
};

}  // namespace hvmm::reclaim
