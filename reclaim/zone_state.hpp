// The host side of HyperAlloc for one registered zone (ARCHITECTURE.md, "One frame's life").
//
// State machine. The host keeps a private 2-bit state per 2 MiB huge frame; the shared child word
// (free:14, huge:1, reclaimed:1) is the guest's. Every transition is decided by one CAS on that word
// (llfree_host.hpp), so a guest allocation and a host reclaim can never both win:
//
//   operation          who         shared child (before -> after)               host table          host memory
//   hard reclaim       shrink      free=512,!huge -> free=0,huge,reclaimed      INSTALLED/SOFT->HARD discard (unless SOFT)
//                                  (tree -512 by CAS, fails if reserved)
//   return             grow        huge,reclaimed -> free=512,!huge,reclaimed   HARD -> SOFT         nothing
//   soft reclaim       auto thread free=512,!huge,!reclaimed -> +reclaimed      INSTALLED -> SOFT    discard
//                                  (tree must be unreserved)
//   install            vCPU thread reclaimed -> !reclaimed                      SOFT -> INSTALLED    populate
//
// Order: CAS the flag first, then discard; install populates first, then clears the flag. One mutex
// per zone serialises the host's state changes (the CAS walks of resize and soft reclaim, the state
// change of an install); no operation holds it long: an install waits for at most one batch.
//  - shrink walks in batches of kShrinkBatch frames and discards outside the mutex: a HARD frame
//    can return to the guest only through grow, and resize_mu_ keeps grow out until the shrink's
//    discards are done;
//  - grow returns in batches of kGrowBatch frames (CASes only, no memory work);
//  - soft reclaim discards under the mutex (a SOFT frame may be allocated at once, and its install
//    must not populate before the discard): the auto-reclaim policy calls it with small batches;
//  - install populates outside the mutex (see install()).
// Between batches a long operation lets waiting installs take the mutex first (let_installs_in).
// Shrink takes resident frames first, then SOFT ones, then never-touched ones: what it takes should
// lower RSS. Adjacent frames are discarded with one madvise call.
//
// "Usable" memory = guest RAM (GuestMemory::ram_bytes) minus hard-reclaimed frames: what the VM
// looks like it has. Resize targets are usable bytes, met at 2 MiB granularity.
//
// EXCLUDED frames (see registration.hpp) are never reclaimed, discarded or installed.
//
// Nothing read from the shared words is trusted: inconsistencies are counted as anomalies and logged
// (rate-limited); the host never asserts and never touches memory outside guest RAM. Install of a
// frame that is already INSTALLED with the flag clear is counted as `redundant_installs`, not as an
// anomaly: two guest CPUs that allocate from the same reclaimed child both see the flag and both
// ask; the first one installs, the second finds nothing to do.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "abi/latency_histogram.hpp"
#include "reclaim/huge_state_table.hpp"
#include "reclaim/registration.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm::reclaim {

// Where a shrink's time went (README, "Reclamation"): the residency check (mincore), the CAS walk
// over the shared words (under the zone mutex, in batches), the discards (madvise), and the rest
// (mutex waits, letting installs in between batches, bookkeeping).
struct ShrinkParts {
  std::chrono::nanoseconds residency{0}, cas_walk{0}, discard{0}, other{0};
};

struct ResizeResult {
  uint64_t target_bytes = 0;
  uint64_t usable_bytes = 0;  // after the operation
  uint64_t moved_bytes = 0;   // hard-reclaimed (shrink) or returned (grow)
  bool reached = false;       // usable <= target (shrink) / >= target (grow)
  std::chrono::nanoseconds took{0};
  // How many times the operation took the zone mutex: its batches. An install waits for at most
  // one of them, so this count is the structural form of "installs never queue behind a resize".
  uint64_t mutex_holds = 0;
  std::string note;           // why the target was not reached (empty when it was)
  std::optional<ShrinkParts> parts;  // shrink only
};

enum class InstallResult { kInstalled, kRedundant, kRefused };

struct ZoneStats {
  uint64_t huge_frames = 0;                            // in the zone
  uint64_t installed = 0, soft = 0, hard = 0, excluded = 0;  // frames per host state
  uint64_t ram_bytes = 0;          // guest RAM
  uint64_t usable_bytes = 0;       // ram_bytes - hard bytes
  uint64_t guest_free_bytes = 0;   // shared tree counters, clamped (guest CPU reservations not visible)
  uint64_t soft_bytes = 0, hard_bytes = 0;
  // Honest counts: SOFT and HARD frames whose memory the host never had (not resident when taken:
  // never touched by the guest) are counted apart from memory really taken back.
  uint64_t soft_untouched_bytes = 0, hard_untouched_bytes = 0;
  uint64_t reclaimed_bytes = 0;  // soft + hard - untouched: memory the host took back from the guest
  uint64_t untouched_bytes = 0;  // soft_untouched + hard_untouched
  uint64_t installs = 0, redundant_installs = 0;
  uint64_t first_touch_installs = 0;  // installs of frames the guest never touched (part of installs)
  uint64_t reinstalls = 0;            // installs of memory taken back (installs - first_touch_installs)
  uint64_t hard_reclaims = 0, soft_reclaims = 0, returns = 0;
  uint64_t anomalies = 0;
  uint64_t discard_failures = 0, populate_failures = 0;
  // Every install request's host handling time (port write to return, mutex waits included), ns.
  abi::LatencyHistogram::Summary install_latency_ns;
  // Its parts: each wait for the zone mutex (two per install), each populate of 2 MiB (wall and the
  // vCPU thread's CPU time).
  abi::LatencyHistogram::Summary install_wait_ns, install_populate_ns, install_populate_cpu_ns;
};

class ZoneState {
 public:
  // `mem` must outlive this object. Frames the host must never touch become EXCLUDED here.
  ZoneState(const GuestMemory& mem, const HostZone& zone);
  ZoneState(const ZoneState&) = delete;
  ZoneState& operator=(const ZoneState&) = delete;

  // Shrinks or grows to `target_usable_bytes`.
  ResizeResult resize(uint64_t target_usable_bytes);
  // Hard-reclaims free huge frames (already-discarded SOFT ones first) until usable <= target.
  ResizeResult shrink(uint64_t target_usable_bytes);
  // Returns HARD frames (HARD -> SOFT, no memory work) until usable >= target.
  ResizeResult grow(uint64_t target_usable_bytes);

  // Soft-reclaims those of `huge_idx` that are INSTALLED and free/unreserved/unflagged right now;
  // returns how many. Indices out of range are ignored (the caller is the host's own policy).
  uint64_t soft_reclaim(std::span<const uint64_t> huge_idx);

  // The guest's install request (vCPU thread, synchronous): populate, clear the flag, INSTALLED.
  // Refused (and counted as an anomaly) when out of range, EXCLUDED, HARD, or not reclaimed at all.
  InstallResult install(uint64_t huge_idx);

  ZoneStats stats() const;         // lock-free: never waits for a running resize
  uint64_t guest_free_bytes() const;
  HugeState state(uint64_t huge_idx) const;  // takes the mutex; for tests and diagnostics
  const HostZone& zone() const { return zone_; }
  // Quiescent consistency check of the host table against the shared words (tests, debugging):
  // number of frames whose state contradicts their child word.
  uint64_t audit() const;

  static constexpr uint64_t kShrinkBatch = 256;  // frames a shrink examines per mutex hold
  static constexpr uint64_t kGrowBatch = 512;    // frames a grow examines per mutex hold

 private:
  enum class Pass { kResident, kSoft, kUntouched };  // shrink's order of preference
  uint64_t usable_locked() const;
  using Clock = std::chrono::steady_clock;
  // Fills in the common fields of a resize result.
  static ResizeResult finish(ResizeResult& res, Clock::time_point t0, uint64_t before, uint64_t usable, bool reached,
                             std::string_view why_not);
  // Per huge frame: does the host back it (mincore, batched)?
  std::vector<bool> resident_frames() const;
  // Does the host back any 4 KiB page of frame `idx` (mincore; true when it cannot tell)?
  bool frame_resident(uint64_t idx) const;
  // Whether the shared word says free=512 and !huge right now (a hint, not a decision).
  bool looks_free(uint64_t idx) const;
  // Under mu_: may `idx` be installed? If not, `refused` says how the call ends (counted/logged).
  bool install_allowed(uint64_t idx, InstallResult& refused) const;
  void anomaly(const char* what, uint64_t idx) const;
  // The zone mutex for an install, counted in installs_waiting_ while it waits.
  std::unique_lock<std::mutex> lock_for_install();
  // Between two batches of a long operation, with the mutex released: lets the installs that wait
  // for it take it first (bounded), so an install waits for at most one batch.
  void let_installs_in() const;
  InstallResult install_timed(uint64_t idx);  // install() without the latency record

  const GuestMemory& mem_;
  const HostZone zone_;
  std::mutex resize_mu_;  // one shrink or grow at a time (a shrink discards outside mu_)
  mutable std::mutex mu_;
  std::atomic<uint32_t> installs_waiting_{0};  // installs blocked on mu_: long operations let them in first
  HugeStateTable table_;  // guarded by mu_
  // Per frame, guarded by mu_: SOFT or HARD without the host ever having had its memory. Moves with
  // the frame between SOFT and HARD; an install clears it (and counts a first-touch install).
  std::vector<bool> untouched_;
  std::atomic<uint64_t> untouched_soft_{0}, untouched_hard_{0}, first_touch_installs_{0};
  // Under mu_: frame i goes from SOFT/HARD `from` to `to` (or is installed, to == kInstalled).
  void move_untouched(uint64_t i, HugeState from, HugeState to);
  void mark_untouched(uint64_t i, HugeState now);
  uint64_t shrink_hint_ = 0;  // guarded by mu_
  mutable std::atomic<uint64_t> installs_{0}, redundant_{0}, hard_reclaims_{0}, soft_reclaims_{0}, returns_{0},
      anomalies_{0}, discard_failures_{0}, populate_failures_{0};
  abi::LatencyHistogram install_ns_, install_wait_ns_, install_populate_ns_, install_populate_cpu_ns_;
};

}  // namespace hvmm::reclaim
