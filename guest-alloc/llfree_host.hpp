// HyperAlloc host operations (ARCHITECTURE.md, "One frame's life"): functions over the SHARED
// arrays only. The host owns no per-CPU state and trusts nothing it reads: every operation is one
// or two CASes that check the exact precondition in the same 16-bit word the guest's allocations
// change, so whichever CAS lands first wins (the transitions and the CAS loop are
// llfree_words.hpp's, shared with the guest). The caller serialises host operations (a per-zone
// host mutex) and keeps its own INSTALLED/SOFT/HARD table; these functions only change the shared
// words. Freestanding.
//
//   hard_reclaim    child free=512,!huge -> free=0,huge,reclaimed; tree -512 (fails if reserved)
//   return_huge     child huge,reclaimed,free=0 -> free=512,!huge,reclaimed; tree +512
//   soft_reclaim    child free=512,!huge,!reclaimed -> +reclaimed; tree must be unreserved
//   clear_reclaimed child reclaimed -> !reclaimed (after the host populated the frame)
#pragma once
#include <cstdint>

#include "guest-alloc/llfree_shared.hpp"
#include "guest-alloc/llfree_words.hpp"

namespace hvmm::alloc::host {

inline bool tree_unreserved(SharedView v, uint64_t idx) {
  return !Tree::reserved_of(v.trees[idx / kChildrenPerTree].atomic().load(std::memory_order_relaxed));
}

inline bool hard_reclaim(SharedView v, uint64_t idx) {
  if (!v.valid() || idx >= v.children_count()) return false;
  auto a = v.children[idx].atomic();
  if (!Child::wholly_free(a.load(std::memory_order_relaxed))) return false;  // before touching the tree
  Tree& tree = v.trees[idx / kChildrenPerTree];
  // Take the count first, like a guest allocation, so no guest CPU can count these frames.
  if (!detail::tree_take(tree, kFramesPerChild, true)) return false;
  if (atomic_update(a, [](uint16_t w, uint16_t& out) {
        if (!Child::wholly_free(w)) return false;
        out = Child::make(0, true, true);
        return true;
      }))
    return true;
  detail::tree_add(tree, kFramesPerChild);
  return false;
}

inline bool return_huge(SharedView v, uint64_t idx) {
  if (!v.valid() || idx >= v.children_count()) return false;
  if (!atomic_update(v.children[idx].atomic(), [](uint16_t w, uint16_t& out) {
        if (!Child::reclaimed_of(w)) return false;  // only what the host took: hard-reclaimed
        return Child::from_huge(w, out);
      }))
    return false;
  detail::tree_add(v.trees[idx / kChildrenPerTree], kFramesPerChild);
  return true;
}

inline bool soft_reclaim(SharedView v, uint64_t idx) {
  if (!v.valid() || idx >= v.children_count() || !tree_unreserved(v, idx)) return false;
  return atomic_update(v.children[idx].atomic(), Child::set_reclaimed);
}

inline bool clear_reclaimed(SharedView v, uint64_t idx) {
  if (!v.valid() || idx >= v.children_count()) return false;
  return atomic_update(v.children[idx].atomic(), Child::clear_reclaimed);
}

// Free frames as the host sees them: the shared tree counters (guest CPU reservations excluded).
inline uint64_t shared_free_frames(SharedView v) {
  if (!v.valid()) return 0;
  uint64_t n = 0;
  for (uint64_t t = 0; t < v.trees_count(); ++t) n += Tree::free_of(v.trees[t].atomic().load(std::memory_order_relaxed));
  return n;
}

}  // namespace hvmm::alloc::host
