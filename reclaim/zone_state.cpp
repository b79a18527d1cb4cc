#include "reclaim/zone_state.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <thread>
#include <fmt/format.h>

#include "base/log.hpp"
#include "guest-alloc/llfree_host.hpp"

namespace hvmm::reclaim {
namespace {

namespace host = alloc::host;

// Collects discards of 2 MiB frames into runs of adjacent frames, one madvise per run (a run never
// crosses a RAM region: GuestMemory::discard refuses that, so the run is cut there). add() may run
// under the zone mutex and the madvise calls outside it (shrink: flush_complete() between batches),
// or all under it (soft reclaim: flush()). Time spent in madvise is added to `discard_ns`.
class DiscardRuns {
 public:
  DiscardRuns(const GuestMemory& mem, std::atomic<uint64_t>& failures, std::chrono::nanoseconds* discard_ns = nullptr)
      : mem_(mem), failures_(failures), discard_ns_(discard_ns) {}
  ~DiscardRuns() { flush(); }
  DiscardRuns(const DiscardRuns&) = delete;
  DiscardRuns& operator=(const DiscardRuns&) = delete;

  void add(uint64_t gpa) {
    if (len_ && gpa == start_ + len_ && mem_.contains(start_, len_ + kHugeBytes)) {
      len_ += kHugeBytes;
      return;
    }
    if (len_) done_.push_back({start_, len_});
    start_ = gpa;
    len_ = kHugeBytes;
  }
  // Discards the runs that can no longer grow; the open one may still be extended by add().
  void flush_complete() {
    for (const GpaRange& r : done_) discard(r.gpa, r.len);
    done_.clear();
  }
  void flush() {
    flush_complete();
    if (len_) discard(start_, len_);
    len_ = 0;
  }

 private:
  void discard(uint64_t gpa, uint64_t len) {
    const auto t0 = std::chrono::steady_clock::now();
    const bool ok = mem_.discard(gpa, len);
    const int err = errno;
    if (discard_ns_) *discard_ns_ += std::chrono::steady_clock::now() - t0;
    if (!ok) {
      // The frames stay reclaimed in the guest's eyes; only the host keeps the memory. Not fatal.
      log_rate_limited(failures_.fetch_add(1, std::memory_order_relaxed) + 1,
                       "hyperalloc: discard of [{:#x}, +{:#x}) failed: {}; the host keeps that memory", gpa, len,
                       std::strerror(err));
    }
  }

  const GuestMemory& mem_;
  std::atomic<uint64_t>& failures_;
  std::chrono::nanoseconds* discard_ns_;
  std::vector<GpaRange> done_;
  uint64_t start_ = 0, len_ = 0;
};

bool is_excluded(const GuestMemory& mem, const HostZone& z, uint64_t idx) {
  if ((idx + 1) * alloc::kFramesPerChild > z.view.frames) return true;  // partial last frame
  const GpaRange frame{z.huge_gpa(idx), kHugeBytes};
  if (!mem.contains(frame.gpa, frame.len)) return true;  // hole or not RAM
  return frame.overlaps(z.trees) || frame.overlaps(z.children) || frame.overlaps(z.bitfield);
}

}  // namespace

ZoneState::ZoneState(const GuestMemory& mem, const HostZone& zone)
    : mem_(mem), zone_(zone), table_(zone.huge_frames), untouched_(zone.huge_frames, false) {
  for (uint64_t i = 0; i < zone_.huge_frames; ++i)
    if (is_excluded(mem_, zone_, i)) table_.set(i, HugeState::kExcluded);
}

void ZoneState::anomaly(const char* what, uint64_t idx) const {
  log_rate_limited(anomalies_.fetch_add(1, std::memory_order_relaxed) + 1, "hyperalloc: anomaly: {} (huge frame {})",
                   what, idx);
}

void ZoneState::mark_untouched(uint64_t i, HugeState now) {
  untouched_[i] = true;
  (now == HugeState::kSoft ? untouched_soft_ : untouched_hard_).fetch_add(1, std::memory_order_relaxed);
}

void ZoneState::move_untouched(uint64_t i, HugeState from, HugeState to) {
  if (!untouched_[i]) return;
  (from == HugeState::kSoft ? untouched_soft_ : untouched_hard_).fetch_sub(1, std::memory_order_relaxed);
  if (to == HugeState::kInstalled) {
    untouched_[i] = false;
    first_touch_installs_.fetch_add(1, std::memory_order_relaxed);
  } else {
    (to == HugeState::kSoft ? untouched_soft_ : untouched_hard_).fetch_add(1, std::memory_order_relaxed);
  }
}

bool ZoneState::frame_resident(uint64_t idx) const {
  uint8_t* base = mem_.hva(zone_.huge_gpa(idx), kHugeBytes);
  unsigned char vec[kHugeBytes / 4096];
  if (!base || mincore(base, kHugeBytes, vec) != 0) return true;
  for (unsigned char v : vec)
    if (v & 1) return true;
  return false;
}

uint64_t ZoneState::usable_locked() const {
  // HARD frames are never EXCLUDED, so they are all RAM: no underflow.
  return mem_.ram_bytes() - table_.count(HugeState::kHard) * kHugeBytes;
}

ResizeResult ZoneState::resize(uint64_t target) {
  // usable changes only by shrink and grow, which resize_mu_ serialises; reading it without the
  // zone mutex is fine (HugeStateTable's counts are atomics).
  return target < usable_locked() ? shrink(target) : grow(target);
}

bool ZoneState::looks_free(uint64_t idx) const {
  // A cheap filter before the syscall in resident(); hard_reclaim's CAS makes the real decision.
  const uint16_t w = zone_.view.children[idx].atomic().load(std::memory_order_relaxed);
  return alloc::Child::wholly_free(w);
}

std::vector<bool> ZoneState::resident_frames() const {
  // One mincore() per up to 1 GiB of contiguous guest RAM; the first 4 KiB page stands for its
  // 2 MiB frame (guest RAM is THP-backed, so a touched frame is normally one huge page). Where
  // mincore fails the frame counts as resident (then it is simply discarded first).
  constexpr uint64_t kBatch = 512;  // frames per call
  constexpr uint64_t kPagesPerFrame = kHugeBytes / 4096;
  std::vector<bool> out(zone_.huge_frames, true);
  std::vector<unsigned char> vec(kBatch * kPagesPerFrame);
  for (uint64_t i = 0; i < zone_.huge_frames;) {
    uint8_t* base = mem_.hva(zone_.huge_gpa(i), kHugeBytes);
    if (!base) {
      ++i;
      continue;
    }
    uint64_t n = 1;  // how many following frames are contiguous in the host mapping
    while (n < kBatch && i + n < zone_.huge_frames && mem_.hva(zone_.huge_gpa(i + n), kHugeBytes) == base + n * kHugeBytes)
      ++n;
    if (mincore(base, n * kHugeBytes, vec.data()) == 0)
      for (uint64_t k = 0; k < n; ++k) out[i + k] = vec[k * kPagesPerFrame] & 1;
    i += n;
  }
  return out;
}

ResizeResult ZoneState::finish(ResizeResult& res, Clock::time_point t0, uint64_t before, uint64_t usable, bool reached,
                               std::string_view why_not) {
  res.usable_bytes = usable;
  res.moved_bytes = usable > before ? usable - before : before - usable;
  res.reached = reached;
  if (!reached) res.note = fmt::format("stopped at {} MiB: {}", usable >> 20, why_not);
  res.took = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
  return res;
}

std::unique_lock<std::mutex> ZoneState::lock_for_install() {
  const auto t0 = Clock::now();
  installs_waiting_.fetch_add(1, std::memory_order_relaxed);
  std::unique_lock lk(mu_);
  installs_waiting_.fetch_sub(1, std::memory_order_release);
  install_wait_ns_.record(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
  return lk;
}

void ZoneState::let_installs_in() const {
  // A std::mutex is not fair: relocking at once would usually win against the install the unlock
  // just woke. So wait until every waiting install has taken the mutex — but not for ever, in case
  // a hostile guest keeps installing on many vCPUs.
  const auto deadline = Clock::now() + std::chrono::milliseconds(2);
  while (installs_waiting_.load(std::memory_order_acquire) != 0 && Clock::now() < deadline) std::this_thread::yield();
}

ResizeResult ZoneState::shrink(uint64_t target) {
  const auto t0 = Clock::now();
  ResizeResult res;
  res.target_bytes = target;
  ShrinkParts& parts = res.parts.emplace();
  std::lock_guard one(resize_mu_);  // no grow until every frame this shrink takes is discarded
  // Resident frames first (that is what gives the host memory back), then SOFT ones (discarded
  // already: free to take), then installed frames the guest never touched. Residency is a hint for
  // that order, read without the mutex.
  const auto tr = Clock::now();
  const std::vector<bool> resident = resident_frames();
  parts.residency = Clock::now() - tr;

  std::unique_lock lk(mu_);
  res.mutex_holds = 1;
  const uint64_t before = usable_locked();
  uint64_t usable = before;
  {
    // The CAS walk holds the zone mutex for at most kShrinkBatch frames; the discards run outside it
    // (a HARD frame can come back to the guest only through grow, which waits for resize_mu_), so an
    // install waits for one short batch of CASes at most.
    DiscardRuns runs(mem_, discard_failures_, &parts.discard);
    uint64_t in_batch = 0;
    auto walk_start = Clock::now();
    auto end_batch = [&] {
      parts.cas_walk += Clock::now() - walk_start;
      lk.unlock();
      runs.flush_complete();
      let_installs_in();
      lk.lock();
      ++res.mutex_holds;
      in_batch = 0;
      walk_start = Clock::now();
    };
    for (const Pass pass : {Pass::kResident, Pass::kSoft, Pass::kUntouched}) {
      const HugeState from = pass == Pass::kSoft ? HugeState::kSoft : HugeState::kInstalled;
      for (uint64_t i = 0; i < zone_.huge_frames && usable > target; ++i) {
        if (++in_batch == kShrinkBatch) end_batch();
        if (table_.get(i) != from || !looks_free(i)) continue;
        if (pass != Pass::kSoft && resident[i] != (pass == Pass::kResident)) continue;
        if (!host::hard_reclaim(zone_.view, i)) continue;
        table_.set(i, HugeState::kHard);
        usable -= kHugeBytes;
        if (from == HugeState::kSoft) {
          move_untouched(i, HugeState::kSoft, HugeState::kHard);
        } else {
          // Discarded even when the residency hint said untouched: the hint may be stale.
          runs.add(zone_.huge_gpa(i));
          if (!resident[i]) mark_untouched(i, HugeState::kHard);
        }
      }
    }
    parts.cas_walk += Clock::now() - walk_start;
    lk.unlock();
    runs.flush();
  }
  hard_reclaims_.fetch_add((before - usable) / kHugeBytes, std::memory_order_relaxed);
  finish(res, t0, before, usable, usable <= target,
         "no free huge frame left (the rest is in use, partly used, or in trees reserved by guest CPUs)");
  parts.other = res.took - parts.residency - parts.cas_walk - parts.discard;
  return res;
}

ResizeResult ZoneState::grow(uint64_t target) {
  const auto t0 = Clock::now();
  ResizeResult res;
  res.target_bytes = target;
  std::lock_guard one(resize_mu_);
  std::unique_lock lk(mu_);
  res.mutex_holds = 1;
  const uint64_t before = usable_locked();
  uint64_t usable = before;
  uint64_t in_batch = 0;
  for (uint64_t i = 0; i < zone_.huge_frames && usable < target; ++i) {
    if (++in_batch == kGrowBatch) {
      lk.unlock();
      let_installs_in();
      lk.lock();
      ++res.mutex_holds;
      in_batch = 0;
    }
    if (table_.get(i) != HugeState::kHard) continue;
    if (host::return_huge(zone_.view, i)) {
      returns_.fetch_add(1, std::memory_order_relaxed);
    } else {
      const uint16_t w = zone_.view.children[i].atomic().load(std::memory_order_acquire);
      if (alloc::Child::huge_of(w)) {
        anomaly("hard-reclaimed frame changed by the guest; kept", i);
        continue;
      }
      // The guest freed the host's frame itself (put() cannot tell it from its own huge page): it
      // is free again and discarded, which is SOFT.
      anomaly("guest freed a hard-reclaimed frame", i);
    }
    table_.set(i, HugeState::kSoft);
    move_untouched(i, HugeState::kHard, HugeState::kSoft);
    usable += kHugeBytes;
  }
  lk.unlock();
  return finish(res, t0, before, usable, usable >= target,
                fmt::format("nothing left to return (guest RAM is {} MiB)", mem_.ram_bytes() >> 20));
}

uint64_t ZoneState::soft_reclaim(std::span<const uint64_t> huge_idx) {
  uint64_t done = 0;
  // The discards stay under the mutex: a SOFT frame can be allocated at once, and its install must
  // not populate before the discard is done. The caller keeps batches small (AutoReclaimConfig).
  std::lock_guard lk(mu_);
  DiscardRuns runs(mem_, discard_failures_);
  for (const uint64_t i : huge_idx) {
    if (i >= zone_.huge_frames || table_.get(i) != HugeState::kInstalled || !host::soft_reclaim(zone_.view, i))
      continue;
    table_.set(i, HugeState::kSoft);
    // The flag is set and the frame wholly free: the guest must install it before touching it, and
    // its install waits for this mutex. Memory the host never had needs no discard, and is not
    // memory taken back.
    if (frame_resident(i)) runs.add(zone_.huge_gpa(i));
    else mark_untouched(i, HugeState::kSoft);
    ++done;
  }
  runs.flush();
  soft_reclaims_.fetch_add(done, std::memory_order_relaxed);
  return done;
}

InstallResult ZoneState::install(uint64_t idx) {
  const auto t0 = Clock::now();
  const InstallResult r = install_timed(idx);
  install_ns_.record(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count()));
  return r;
}

InstallResult ZoneState::install_timed(uint64_t idx) {
  if (idx >= zone_.huge_frames) {
    anomaly("install of a frame outside the zone", idx);
    return InstallResult::kRefused;
  }
  {
    auto lk = lock_for_install();
    if (InstallResult r; !install_allowed(idx, r)) return r;
  }
  // Populate outside the zone mutex, so installs on several vCPUs (and a long shrink) do not queue
  // behind each other's 2 MiB of zeroing. Safe: the asking vCPU holds an allocated block in this
  // frame, so free < 512 and no host operation can reclaim it meanwhile. (A guest that asks for a
  // frame it does not hold can at worst leave its own memory resident.) A failed populate is not
  // fatal: the guest's touches fault the memory in one page at a time.
  const auto tp = Clock::now();
  // Its CPU time too: wall time far above it means the thread waited (preempted, or blocked in the
  // kernel); CPU time far above a warm populate means the kernel's own cost (on a nested host, the
  // outer hypervisor faulting memory back in is charged here).
  timespec c0{}, c1{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
  const bool populated = mem_.populate(zone_.huge_gpa(idx), kHugeBytes);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
  install_populate_cpu_ns_.record(static_cast<uint64_t>((c1.tv_sec - c0.tv_sec) * 1'000'000'000ll + (c1.tv_nsec - c0.tv_nsec)));
  install_populate_ns_.record(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - tp).count()));
  if (!populated) {
    const int err = errno;
    log_rate_limited(populate_failures_.fetch_add(1, std::memory_order_relaxed) + 1,
                     "hyperalloc: populate of huge frame {} (gpa {:#x}) failed: {}; the guest faults it in instead", idx,
                     zone_.huge_gpa(idx), std::strerror(err));
  }
  // Then clear the flag: once the guest sees it clear, the memory is there.
  auto lk = lock_for_install();
  if (InstallResult r; !install_allowed(idx, r)) return r;  // another vCPU finished it first
  host::clear_reclaimed(zone_.view, idx);
  if (table_.get(idx) == HugeState::kSoft) move_untouched(idx, HugeState::kSoft, HugeState::kInstalled);
  table_.set(idx, HugeState::kInstalled);
  installs_.fetch_add(1, std::memory_order_relaxed);
  return InstallResult::kInstalled;
}

bool ZoneState::install_allowed(uint64_t idx, InstallResult& refused) const {
  const uint16_t w = zone_.view.children[idx].atomic().load(std::memory_order_acquire);
  switch (table_.get(idx)) {
    case HugeState::kExcluded:
      anomaly("install of a frame the host never reclaims", idx);
      refused = InstallResult::kRefused;
      return false;
    case HugeState::kHard:
      anomaly("install of a hard-reclaimed frame", idx);
      refused = InstallResult::kRefused;
      return false;
    case HugeState::kInstalled:
      if (!alloc::Child::reclaimed_of(w)) {
        redundant_.fetch_add(1, std::memory_order_relaxed);  // another CPU installed it first
        refused = InstallResult::kRedundant;
        return false;
      }
      anomaly("reclaimed flag on an installed frame (set by the guest); installing", idx);
      return true;
    case HugeState::kSoft:
      return true;
  }
  return true;
}

uint64_t ZoneState::guest_free_bytes() const {
  const alloc::SharedView& v = zone_.view;
  uint64_t frames = 0;
  for (uint64_t t = 0; t < v.trees_count(); ++t) {
    uint64_t f = alloc::Tree::free_of(v.trees[t].atomic().load(std::memory_order_relaxed));
    const uint64_t cap = v.tree_capacity(t);
    if (f > cap) {
      anomaly("tree free counter above the tree's size", t * alloc::kChildrenPerTree);
      f = cap;
    }
    frames += f;
  }
  return frames * kFrameBytes;
}

ZoneStats ZoneState::stats() const {
  ZoneStats s;
  s.huge_frames = zone_.huge_frames;
  s.installed = table_.count(HugeState::kInstalled);
  s.soft = table_.count(HugeState::kSoft);
  s.hard = table_.count(HugeState::kHard);
  s.excluded = table_.count(HugeState::kExcluded);
  s.ram_bytes = mem_.ram_bytes();
  s.soft_bytes = s.soft * kHugeBytes;
  s.hard_bytes = s.hard * kHugeBytes;
  s.usable_bytes = s.ram_bytes - s.hard_bytes;
  s.guest_free_bytes = guest_free_bytes();
  s.soft_untouched_bytes = untouched_soft_.load(std::memory_order_relaxed) * kHugeBytes;
  s.hard_untouched_bytes = untouched_hard_.load(std::memory_order_relaxed) * kHugeBytes;
  s.untouched_bytes = s.soft_untouched_bytes + s.hard_untouched_bytes;
  // The counters are read one by one while others change them: clamp instead of wrapping.
  s.reclaimed_bytes = s.soft_bytes + s.hard_bytes > s.untouched_bytes ? s.soft_bytes + s.hard_bytes - s.untouched_bytes : 0;
  s.installs = installs_.load(std::memory_order_relaxed);
  s.first_touch_installs = std::min(first_touch_installs_.load(std::memory_order_relaxed), s.installs);
  s.reinstalls = s.installs - s.first_touch_installs;
  s.redundant_installs = redundant_.load(std::memory_order_relaxed);
  s.hard_reclaims = hard_reclaims_.load(std::memory_order_relaxed);
  s.soft_reclaims = soft_reclaims_.load(std::memory_order_relaxed);
  s.returns = returns_.load(std::memory_order_relaxed);
  s.anomalies = anomalies_.load(std::memory_order_relaxed);
  s.discard_failures = discard_failures_.load(std::memory_order_relaxed);
  s.populate_failures = populate_failures_.load(std::memory_order_relaxed);
  s.install_latency_ns = install_ns_.summary();
  s.install_wait_ns = install_wait_ns_.summary();
  s.install_populate_ns = install_populate_ns_.summary();
  s.install_populate_cpu_ns = install_populate_cpu_ns_.summary();
  return s;
}

HugeState ZoneState::state(uint64_t idx) const {
  if (idx >= zone_.huge_frames) return HugeState::kExcluded;
  std::lock_guard lk(mu_);
  return table_.get(idx);
}

uint64_t ZoneState::audit() const {
  using alloc::Child;
  std::lock_guard lk(mu_);
  uint64_t bad = 0;
  for (uint64_t i = 0; i < zone_.huge_frames; ++i) {
    const uint16_t w = zone_.view.children[i].atomic().load(std::memory_order_acquire);
    switch (table_.get(i)) {
      case HugeState::kHard:
        bad += !(Child::huge_of(w) && Child::reclaimed_of(w) && Child::free_of(w) == 0);
        break;
      case HugeState::kSoft:  // the guest may have allocated it, but only install clears the flag
        bad += !Child::reclaimed_of(w);
        break;
      case HugeState::kInstalled:
        bad += Child::reclaimed_of(w);
        break;
      case HugeState::kExcluded:
        break;
    }
  }
  return bad;
}

}  // namespace hvmm::reclaim
