// The host limits that bound a shrink, an install and a reuse (ARCHITECTURE.md, "One frame's life").
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

struct DontneedSteps {
  std::vector<double> gib_s;  // one per repetition: `bytes` of touched memory discarded `step` bytes per madvise
};
// One madvise(MADV_DONTNEED) per `step` bytes, as a VMM that discards frame by frame (2 MiB: a
// HyperAlloc or huge-balloon shrink without merged runs) or page by page (4 KiB: a classic balloon).
DontneedSteps probe_dontneed_steps(uint64_t bytes, uint64_t step, unsigned reps);

struct Populate {
  std::vector<double> frame_us;  // MADV_POPULATE_WRITE of one discarded 2 MiB frame, each
  std::vector<double> whole_gib_s;  // MADV_POPULATE_WRITE of all `bytes` at once, per repetition
};
Populate probe_populate(uint64_t bytes, unsigned frames, unsigned reps);

}  // namespace hvmm::limits
