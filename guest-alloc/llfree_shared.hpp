// The shared arrays as one view, the counter primitives both sides use on them, and a quiescent
// recount. Nothing here knows whether it runs in the guest or in the host. Freestanding.
#pragma once
#include <cstdint>

#include "guest-alloc/llfree_bitfield.hpp"
#include "guest-alloc/llfree_words.hpp"

namespace hvmm::alloc {

// The three shared arrays of one zone. `frames` is the zone size in 4 KiB frames; frame numbers are
// relative to the (2 MiB aligned) zone start. Arrays: trees[trees()], children[children()],
// bitfield[children()]. The host must have validated the pointers (bounds, 2/2/64-byte alignment).
struct SharedView {
  Tree* trees = nullptr;
  Child* children = nullptr;
  Bitfield* bitfield = nullptr;
  uint64_t frames = 0;

  static constexpr uint64_t children_for(uint64_t frames) { return (frames + kFramesPerChild - 1) / kFramesPerChild; }
  static constexpr uint64_t trees_for(uint64_t frames) { return (children_for(frames) + kChildrenPerTree - 1) / kChildrenPerTree; }
  uint64_t children_count() const { return children_for(frames); }
  uint64_t trees_count() const { return trees_for(frames); }
  bool valid() const { return trees && children && bitfield && frames > 0 && frames <= kMaxFrames; }
  // Frames that really exist in a child / tree (only the last ones can be partial).
  uint64_t child_capacity(uint64_t c) const {
    const uint64_t first = c * kFramesPerChild;
    return frames - first < kFramesPerChild ? frames - first : kFramesPerChild;
  }
  uint64_t tree_capacity(uint64_t t) const {
    const uint64_t first = t * kFramesPerTree;
    return frames - first < kFramesPerTree ? frames - first : kFramesPerTree;
  }
};

namespace detail {

// Adds n to a tree's free counter (saturating: never into the flag bits, whatever the guest wrote).
inline void tree_add(Tree& tree, uint64_t n) {
  atomic_update(tree.atomic(), [n](uint16_t w, uint16_t& out) {
    out = Tree::added(w, n);
    return true;
  });
}

// Takes n from a tree's free counter; with `unreserved_only`, fails if a guest CPU reserved the tree.
inline bool tree_take(Tree& tree, uint64_t n, bool unreserved_only) {
  return atomic_update(tree.atomic(),
                       [n, unreserved_only](uint16_t w, uint16_t& out) { return Tree::take(w, n, unreserved_only, out); });
}

// Returns a whole child that was claimed as huge to free (keeping its reclaimed flag).
inline void child_unhuge(Child& child) {
  atomic_update(child.atomic(), [](uint16_t w, uint16_t& out) {
    out = Child::make(kFramesPerChild, false, Child::reclaimed_of(w));
    return true;
  });
}

}  // namespace detail

// Result of a quiescent recount (no allocation or host operation may run concurrently).
struct CheckResult {
  uint64_t bad_children = 0;   // child counter != 512 - popcount, or huge with bits/free set
  uint64_t bad_trees = 0;      // tree counter (+ its reservation) != sum of its children
  uint64_t skipped_trees = 0;  // reserved trees not checked (no per-CPU state given)
  uint64_t free_frames = 0;    // recounted from children
  bool ok() const { return bad_children == 0 && bad_trees == 0; }
};

// Recounts every counter from the bitfield. `locals`/`cpus` (guest side) add the per-CPU reserved
// counts; without them (host side) reserved trees are skipped.
inline CheckResult check_shared(SharedView v, Local* locals = nullptr, unsigned cpus = 0) {
  CheckResult r;
  if (!v.valid()) {
    r.bad_trees = 1;
    return r;
  }
  const uint64_t nchildren = v.children_count();
  for (uint64_t t = 0; t < v.trees_count(); ++t) {
    uint64_t sum = 0;
    for (uint64_t c = t * kChildrenPerTree; c < nchildren && c < (t + 1) * kChildrenPerTree; ++c) {
      const uint16_t w = v.children[c].atomic().load(std::memory_order_acquire);
      const unsigned used = bits::popcount(v.bitfield[c]);
      const bool good = Child::huge_of(w) ? (Child::free_of(w) == 0 && used == 0)
                                          : Child::free_of(w) + used == kFramesPerChild;
      if (!good) ++r.bad_children;
      sum += Child::free_of(w);
    }
    r.free_frames += sum;
    const uint16_t tw = v.trees[t].atomic().load(std::memory_order_acquire);
    uint64_t counted = Tree::free_of(tw);
    if (Tree::reserved_of(tw)) {
      if (!locals) {
        ++r.skipped_trees;
        continue;
      }
      unsigned holders = 0;
      for (unsigned cpu = 0; cpu < cpus; ++cpu) {
        const uint64_t res = locals[cpu].res_atomic().load(std::memory_order_acquire);
        if (Local::valid_of(res) && Local::tree_of(res) == t) {
          ++holders;
          counted += Local::free_of(res);
        }
      }
      if (holders != 1) ++r.bad_trees;
    }
    if (counted != sum) ++r.bad_trees;
  }
  return r;
}

}  // namespace hvmm::alloc
