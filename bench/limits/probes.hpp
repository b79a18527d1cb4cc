// The three host limits that bound HyperAlloc's shrink, install and reuse (ARCHITECTURE.md, "One frame's life").
#pragma once

#include <cstdint>
#include <vector>

namespace hvmm::limits {

struct FirstTouch {
  double warmup_gib_s;  // touching a different, freshly mapped region first (then unmapped)
  double gib_s;         // touching a never-used region
  double anon_huge_fraction;  // share of the region that THP backed (AnonHugePages / size)
};
// Warm-up region, unmapped; then a fresh region of `bytes`, timed first touch.
FirstTouch probe_first_touch(uint64_t bytes);

struct Dontneed {
  std::vector<double> gib_s;  // one per repetition: madvise(MADV_DONTNEED) of `bytes` touched memory
};
Dontneed probe_dontneed(uint64_t bytes, unsigned reps);

struct Populate {
  std::vector<double> frame_us;  // MADV_POPULATE_WRITE of one discarded 2 MiB frame, each
  std::vector<double> whole_gib_s;  // MADV_POPULATE_WRITE of all `bytes` at once, per repetition
};
Populate probe_populate(uint64_t bytes, unsigned frames, unsigned reps);

}  // namespace hvmm::limits
