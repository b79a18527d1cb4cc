// HyperAlloc host operations (DESIGN.md §5): pure functions over the SHARED arrays only. The host
// owns no per-CPU state and trusts nothing it reads: every operation is one or two CASes that check
// the exact precondition in the same 16-bit word the guest's allocations change, so whichever CAS
// lands first wins. The caller serialises host operations (a per-zone host mutex) and keeps its
// own INSTALLED/SOFT/HARD table; these functions only change the shared words. Freestanding.
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

struct Found {
  bool ok = false;
  uint64_t huge_idx = 0;  // child index = 2 MiB frame number within the zone
};

inline bool tree_unreserved(SharedView v, uint64_t idx) {
  return !Tree::reserved_of(v.trees[idx / kChildrenPerTree].atomic().load(std::memory_order_relaxed));
}

inline bool hard_reclaim(SharedView v, uint64_t idx) {
  if (!v.valid() || idx >= v.children_count()) return false;
  auto a = v.children[idx].atomic();
  uint16_t w = a.load(std::memory_order_relaxed);
  if (Child::free_of(w) != kFramesPerChild || Child::huge_of(w)) return false;
  Tree& tree = v.trees[idx / kChildrenPerTree];
  // Take the count first, like a guest allocation, so no guest CPU can count these frames.
  if (!detail::tree_take(tree, kFramesPerChild, true)) return false;
  while (Child::free_of(w) == kFramesPerChild && !Child::huge_of(w)) {
    if (a.compare_exchange_weak(w, Child::make(0, true, true), std::memory_order_acq_rel, std::memory_order_relaxed))
      return true;
  }
  detail::tree_add(tree, kFramesPerChild);
  return false;
}

inline bool return_huge(SharedView v, uint64_t idx) {
  if (!v.valid() || idx >= v.children_count()) return false;
  auto a = v.children[idx].atomic();
  uint16_t w = a.load(std::memory_order_relaxed);
  while (Child::huge_of(w) && Child::reclaimed_of(w) && Child::free_of(w) == 0) {
    if (a.compare_exchange_weak(w, Child::make(kFramesPerChild, false, true), std::memory_order_acq_rel,
                                std::memory_order_relaxed)) {
      detail::tree_add(v.trees[idx / kChildrenPerTree], kFramesPerChild);
      return true;
    }
  }
  return false;
}

inline bool soft_reclaim(SharedView v, uint64_t idx) {
  if (!v.valid() || idx >= v.children_count() || !tree_unreserved(v, idx)) return false;
  auto a = v.children[idx].atomic();
  uint16_t w = a.load(std::memory_order_relaxed);
  while (Child::free_of(w) == kFramesPerChild && !Child::huge_of(w) && !Child::reclaimed_of(w)) {
    if (a.compare_exchange_weak(w, static_cast<uint16_t>(w | Child::kReclaimed), std::memory_order_acq_rel,
                                std::memory_order_relaxed))
      return true;
  }
  return false;
}

inline bool clear_reclaimed(SharedView v, uint64_t idx) {
  if (!v.valid() || idx >= v.children_count()) return false;
  auto a = v.children[idx].atomic();
  uint16_t w = a.load(std::memory_order_relaxed);
  while (Child::reclaimed_of(w)) {
    if (a.compare_exchange_weak(w, static_cast<uint16_t>(w & ~Child::kReclaimed), std::memory_order_acq_rel,
                                std::memory_order_relaxed))
      return true;
  }
  return false;
}

// Scans all children from start_hint (wrapping) for one the operation accepts.
inline Found find_and_hard_reclaim(SharedView v, uint64_t start_hint) {
  if (!v.valid()) return {};
  const uint64_t n = v.children_count();
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t idx = (start_hint + i) % n;
    const uint16_t w = v.children[idx].atomic().load(std::memory_order_relaxed);
    if (Child::free_of(w) == kFramesPerChild && !Child::huge_of(w) && tree_unreserved(v, idx) && hard_reclaim(v, idx))
      return {true, idx};
  }
  return {};
}

inline Found find_and_soft_reclaim(SharedView v, uint64_t start_hint) {
  if (!v.valid()) return {};
  const uint64_t n = v.children_count();
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t idx = (start_hint + i) % n;
    const uint16_t w = v.children[idx].atomic().load(std::memory_order_relaxed);
    if (Child::free_of(w) == kFramesPerChild && !Child::huge_of(w) && !Child::reclaimed_of(w) && soft_reclaim(v, idx))
      return {true, idx};
  }
  return {};
}

// Free frames as the host sees them: the shared tree counters (guest CPU reservations excluded).
inline uint64_t shared_free_frames(SharedView v) {
  if (!v.valid()) return 0;
  uint64_t n = 0;
  for (uint64_t t = 0; t < v.trees_count(); ++t) n += Tree::free_of(v.trees[t].atomic().load(std::memory_order_relaxed));
  return n;
}

}  // namespace hvmm::alloc::host
