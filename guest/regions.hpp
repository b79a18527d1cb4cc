// Memory regions of the workload: what `alloc` took and `free`/`verify` act on. A region is one
// frame list per CPU (each CPU allocates, verifies and frees its own share), kept in 4 KiB list
// pages that come from the allocator itself. Every block carries a pattern derived from the
// region's seed and the block's frame number, so `verify` catches lost or moved contents.
#pragma once
#include <cstdint>

#include "guest/frame_list.hpp"
#include "guest/percpu.hpp"

namespace guest {

struct MemRegion {  // all fields initialised, so the static table needs no constructor at boot
  bool live = false;
  unsigned order = 0;
  uint64_t seed = 0;
  FrameList lists[kMaxCpus];
};

inline constexpr unsigned kMaxRegions = 64;

// The newest live region, or nullptr.
MemRegion* newest_region();
// A fresh region slot (nullptr when all are in use).
MemRegion* new_region(unsigned order);
uint64_t region_blocks(const MemRegion& r);
unsigned live_regions(MemRegion** out);

// Per-CPU work on the calling CPU's share of a region.
// Allocates up to `blocks` blocks (0 = until the allocator says no), filling each with the pattern.
// Returns the number allocated.
uint64_t region_fill(MemRegion& r, uint64_t blocks);
// Checks every block's pattern; returns the number of bad blocks and reports the first.
uint64_t region_verify(const MemRegion& r);
// Frees every block and the list pages.
void region_release(MemRegion& r);

}  // namespace guest
