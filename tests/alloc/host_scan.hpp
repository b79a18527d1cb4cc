// Test helper: scan the shared words for a frame a host operation accepts (the host's own policies
// live in reclaim/; the tests only need "some frame").
#pragma once
#include <cstdint>

#include "guest-alloc/llfree_host.hpp"

namespace hvmm::alloc::test {

struct Found {
  bool ok = false;
  uint64_t huge_idx = 0;  // child index = 2 MiB frame number within the zone
};

// Tries `op` on every child from start_hint (wrapping) until it succeeds.
template <class Op>
Found find_and(SharedView v, uint64_t start_hint, Op op) {
  if (!v.valid()) return {};
  const uint64_t n = v.children_count();
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t idx = (start_hint + i) % n;
    if (op(v, idx)) return {true, idx};
  }
  return {};
}
inline Found find_and_hard_reclaim(SharedView v, uint64_t hint) { return find_and(v, hint, host::hard_reclaim); }
inline Found find_and_soft_reclaim(SharedView v, uint64_t hint) { return find_and(v, hint, host::soft_reclaim); }

}  // namespace hvmm::alloc::test
