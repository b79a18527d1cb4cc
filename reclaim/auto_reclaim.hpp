// The auto-reclaim policy (ARCHITECTURE.md, "One frame's life"): a host thread that every `period` scans the zone and
// soft-reclaims free huge frames in small batches, yielding between batches so installs (which take
// the zone mutex) are never held up for long.
//
// Aging: a huge frame becomes a candidate only after `age_scans` consecutive scans saw it free
// (free == 512, !huge, !reclaimed, tree unreserved). A frame the guest frees and soon reuses is
// therefore not reclaimed and reinstalled over and over. With age_scans = N a frame freed just before
// a scan is reclaimed by the Nth scan, i.e. after (N-1)..N periods. age_scans = 1: no aging.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "reclaim/zone_state.hpp"

namespace hvmm::reclaim {

struct AutoReclaimConfig {
  // Defaults from bench/auto_reclaim_tuning.py (README: "Auto-reclaim: defaults and why").
  std::chrono::milliseconds period{500};
  unsigned age_scans = 3;       // 1..255
  unsigned batch_frames = 32;   // per zone-mutex hold (64 MiB)
};

struct AutoReclaimStats {
  uint64_t scans = 0;
  uint64_t reclaimed_frames = 0;
  std::chrono::nanoseconds busy{0};  // time spent scanning and reclaiming
};

class AutoReclaim {
 public:
  // `zone` must outlive this object. Does not start the thread.
  AutoReclaim(ZoneState& zone, AutoReclaimConfig cfg = {});
  ~AutoReclaim();  // stops the thread
  AutoReclaim(const AutoReclaim&) = delete;
  AutoReclaim& operator=(const AutoReclaim&) = delete;

  void start();  // runs run() in a thread of its own; no-op if running
  // The policy loop in the caller's thread: a scan every period until stop() (for an owner that
  // runs its own thread, e.g. HyperallocHost). Returns at once if stop() came first.
  void run();
  void stop();   // prompt: wakes run(), waits for start()'s thread (at most one batch)
  // One scan, in the caller's thread (tests, or a caller with its own schedule). Returns the number
  // of frames soft-reclaimed. Serialised with the thread's scans.
  uint64_t scan_once();

  AutoReclaimStats stats() const;
  const AutoReclaimConfig& config() const { return cfg_; }

 private:
  bool stop_requested() const { return stop_.load(std::memory_order_relaxed); }

  ZoneState& zone_;
  const AutoReclaimConfig cfg_;
  std::mutex scan_mu_;         // one scan at a time; guards age_
  std::vector<uint8_t> age_;   // consecutive scans each frame was seen free
  std::vector<uint64_t> batch_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};
  std::thread thread_;

  std::atomic<uint64_t> scans_{0}, reclaimed_{0}, busy_ns_{0};
};

}  // namespace hvmm::reclaim
