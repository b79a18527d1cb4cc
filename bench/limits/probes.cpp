#include "bench/limits/probes.hpp"

#include <chrono>
#include <fstream>
#include <string>

#include "bench/limits/thp_mapping.hpp"

namespace hvmm::limits {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kGiB = double(1ull << 30);

template <class F>
double seconds(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// AnonHugePages of this process in bytes (0 if smaps_rollup is unreadable).
uint64_t anon_huge_bytes() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string key;
  uint64_t kb;
  while (in >> key) {
    if (key == "AnonHugePages:" && in >> kb) return kb << 10;
    in.ignore(1 << 20, '\n');
  }
  return 0;
}

}  // namespace

FirstTouch probe_first_touch(uint64_t bytes) {
  FirstTouch r{};
  {
    // Nested KVM: memory this VM has not used lately is faulted in by the outer hypervisor too, far
    // slower. Touching (and freeing) another region first makes the measurement about this host only.
    ThpMapping warm(bytes);
    r.warmup_gib_s = bytes / kGiB / seconds([&] { warm.touch(); });
  }
  ThpMapping fresh(bytes);
  const uint64_t huge_before = anon_huge_bytes();
  r.gib_s = bytes / kGiB / seconds([&] { fresh.touch(); });
  r.anon_huge_fraction = double(anon_huge_bytes() - huge_before) / double(bytes);
  return r;
}

Dontneed probe_dontneed(uint64_t bytes, unsigned reps) {
  Dontneed r;
  ThpMapping m(bytes);
  m.touch();
  for (unsigned i = 0; i < reps; i++) {
    if (i) m.advise(0, bytes, MADV_POPULATE_WRITE, "MADV_POPULATE_WRITE");
    r.gib_s.push_back(bytes / kGiB / seconds([&] { m.advise(0, bytes, MADV_DONTNEED, "MADV_DONTNEED"); }));
  }
  return r;
}

DontneedSteps probe_dontneed_steps(uint64_t bytes, uint64_t step, unsigned reps) {
  DontneedSteps r;
  for (unsigned i = 0; i < reps; i++) {
    // A fresh mapping each time: after 4 KiB discards the range is mapped by page tables, and a
    // second touch would fault 4 KiB pages instead of THP (a cheaper discard than the guest's).
    ThpMapping m(bytes);
    m.touch();
    r.gib_s.push_back(bytes / kGiB / seconds([&] {
      for (uint64_t off = 0; off < bytes; off += step) m.advise(off, step, MADV_DONTNEED, "MADV_DONTNEED (stepwise)");
    }));
  }
  return r;
}

Populate probe_populate(uint64_t bytes, unsigned frames, unsigned reps) {
  Populate r;
  ThpMapping m(bytes);
  m.touch();  // the memory has been used before, as a reclaimed guest frame has
  for (unsigned i = 0; i < reps; i++) {
    m.advise(0, bytes, MADV_DONTNEED, "MADV_DONTNEED");
    r.whole_gib_s.push_back(bytes / kGiB / seconds([&] { m.advise(0, bytes, MADV_POPULATE_WRITE, "MADV_POPULATE_WRITE"); }));
  }
  // One frame at a time, as an install does; frames spread over the region.
  m.advise(0, bytes, MADV_DONTNEED, "MADV_DONTNEED");
  const uint64_t total = bytes / kHuge;
  const uint64_t n = frames < total ? frames : total;
  for (uint64_t i = 0; i < n; i++) {
    const uint64_t off = (i * total / n) * kHuge;
    r.frame_us.push_back(1e6 * seconds([&] { m.advise(off, kHuge, MADV_POPULATE_WRITE, "MADV_POPULATE_WRITE"); }));
  }
  return r;
}

}  // namespace hvmm::limits
