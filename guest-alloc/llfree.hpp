// LLFree, the guest side: a lock-free page-frame allocator whose state lives in caller memory that
// the host may read and change with the operations of llfree_host.hpp (ARCHITECTURE.md, "The shared allocator" and "One frame's life").
//
//   Sizes s = LLFree::sizes(frames, cpus);           // bytes + alignment of the four arrays
//   LLFree a; a.init(cpus, frames, trees, children, bitfield, locals);   // all frames free
//   a.reserve_range(first, count);                   // init-time only: kernel image, MMIO hole, ...
//   Result r = a.get(cpu, order);                    // r.error == Error::kOk -> r.frame, r.reclaimed
//   Error e = a.put(cpu, frame, order);
//
// Frames are numbered from the 2 MiB aligned zone start. Orders 0..10 (4 KiB .. 4 MiB), naturally
// aligned. If r.reclaimed, the host may have taken the backing memory of a covered 2 MiB frame: the
// caller must ask the host to install it before touching it. One thread per `cpu` at a time.
// Alignment is relative to the zone start: order-10 blocks are 4 MiB aligned physically only if the
// zone start is. put() detects double frees by the bits (order < 9) or the huge flag (order >= 9);
// it cannot tell a guest's own huge page from a hard-reclaimed one (same word), nor catch an order-0
// put of one frame of a larger block it still owns.
// The object owns nothing; it may be copied (all copies point at the same state). Freestanding.
#pragma once
#include <cstdint>

#include "guest-alloc/llfree_bitfield.hpp"
#include "guest-alloc/llfree_shared.hpp"
#include "guest-alloc/llfree_words.hpp"

namespace hvmm::alloc {

enum class Error : uint8_t {
  kOk = 0,
  kNoMemory,    // nothing of that order is free (or all free memory is too fragmented)
  kInvalid,     // bad cpu, order, alignment or frame range
  kDoubleFree,  // put() of frames that are not allocated at that order
};

struct Result {
  uint64_t frame = 0;
  Error error = Error::kNoMemory;
  bool reclaimed = false;  // some covered 2 MiB frame had the host's reclaimed flag
  bool ok() const { return error == Error::kOk; }
};

struct Region {
  uint64_t bytes;
  uint64_t align;
};
struct Sizes {
  Region trees, children, bitfield, locals;  // shared, shared, shared, guest-private
};

class LLFree {
 public:
  static Sizes sizes(uint64_t frames, unsigned cpus) {
    const uint64_t nc = SharedView::children_for(frames), nt = SharedView::trees_for(frames);
    return {{nt * sizeof(Tree), 64}, {nc * sizeof(Child), 64}, {nc * sizeof(Bitfield), 64}, {cpus * sizeof(Local), 64}};
  }

  // Every frame free. False (nothing written) on bad arguments or misaligned pointers. Plain stores:
  // publish the allocator to other threads/CPUs with ordinary synchronisation (thread start, IPI).
  bool init(unsigned cpus, uint64_t frames, void* trees, void* children, void* bitfield, void* locals) {
    if (cpus == 0 || cpus > kMaxCpus || frames == 0 || frames > kMaxFrames) return false;
    void* const arrays[] = {trees, children, bitfield, locals};
    for (void* p : arrays)
      if (!p || reinterpret_cast<uintptr_t>(p) % 64 != 0) return false;
    v_ = {static_cast<Tree*>(trees), static_cast<Child*>(children), static_cast<Bitfield*>(bitfield), frames};
    locals_ = static_cast<Local*>(locals);
    cpus_ = cpus;
    const uint64_t nc = v_.children_count(), nt = v_.trees_count();
    for (uint64_t c = 0; c < nc; ++c) {
      const uint64_t cap = v_.child_capacity(c);
      v_.children[c].word = Child::make(static_cast<uint16_t>(cap), false, false);
      for (unsigned w = 0; w < kWordsPerBitfield; ++w) {
        // Bits past the end of the zone stay "allocated" forever, so 512 - popcount == free.
        const uint64_t lo = w * 64;
        v_.bitfield[c].words[w] = cap >= lo + 64 ? 0 : cap <= lo ? ~uint64_t{0} : ~uint64_t{0} << (cap - lo);
      }
    }
    for (uint64_t t = 0; t < nt; ++t) v_.trees[t].word = Tree::with_free(0, v_.tree_capacity(t));
    for (unsigned cpu = 0; cpu < cpus; ++cpu) {
      locals_[cpu].res = 0;
      locals_[cpu].hint = nc * cpu / cpus;  // spread the CPUs over the zone
    }
    return true;
  }

  // Init-time, single-threaded, before any get(): marks [frame, frame+count) allocated (clamped to
  // the zone). Already-allocated frames in the range stay allocated.
  void reserve_range(uint64_t frame, uint64_t count) {
    if (frame >= v_.frames) return;
    if (count > v_.frames - frame) count = v_.frames - frame;
    const uint64_t end = frame + count;
    uint64_t last_tree = ~uint64_t{0};
    for (uint64_t c = frame / kFramesPerChild; c * kFramesPerChild < end; ++c) {
      const uint64_t base = c * kFramesPerChild;
      const uint64_t lo = frame > base ? frame - base : 0, hi = end - base < kFramesPerChild ? end - base : kFramesPerChild;
      for (uint64_t w = lo / 64; w * 64 < hi; ++w) {
        const uint64_t a = lo > w * 64 ? lo - w * 64 : 0, b = hi - w * 64 < 64 ? hi - w * 64 : 64;
        const uint64_t mask = (b - a == 64) ? ~uint64_t{0} : ((uint64_t{1} << (b - a)) - 1) << a;
        v_.bitfield[c].words[w] |= mask;
      }
      v_.children[c].word = Child::make(static_cast<uint16_t>(kFramesPerChild - bits::popcount(v_.bitfield[c])), false, false);
      // Recount a tree once all of its children in the range are done.
      const uint64_t t = c / kChildrenPerTree;
      if (t != last_tree && last_tree != ~uint64_t{0}) recount_tree(last_tree);
      last_tree = t;
    }
    if (last_tree != ~uint64_t{0}) recount_tree(last_tree);
  }

  // Init-time, single-threaded, before any get(): marks the whole children [child, child+count)
  // (clamped to the zone) allocated as huge pages with the reclaimed bit, whatever they held: memory
  // that is not there yet (a virtio-mem region before it is plugged). put(frame, kHugeOrder) hands one
  // to the allocator, which then prefers resident memory over it (the bit is kept until first use).
  void reserve_huge(uint64_t child, uint64_t count) {
    const uint64_t nc = v_.children_count();
    if (child >= nc) return;
    if (count > nc - child) count = nc - child;
    for (uint64_t c = child; c < child + count; ++c) {
      if (v_.child_capacity(c) != kFramesPerChild) continue;  // a partial last child stays as it is
      for (unsigned w = 0; w < kWordsPerBitfield; ++w) v_.bitfield[c].words[w] = 0;
      v_.children[c].word = Child::make(0, true, true);
    }
    for (uint64_t t = child / kChildrenPerTree; t * kChildrenPerTree < child + count; ++t) recount_tree(t);
  }

  // Takes one specific wholly free 2 MiB child out of the allocator, as hard_reclaim does for the
  // host (llfree_host.hpp): the tree's count first, so no CPU can count these frames, then the child
  // (free=512,!huge -> free=0,huge,reclaimed). The count may sit in the shared tree counter or in a
  // CPU's reservation of that tree. False, nothing changed, when the child is not wholly free (a live
  // page: no migration) or its count cannot be had. put(frame, kHugeOrder) gives it back.
  bool take_huge(uint64_t c) {
    if (c >= v_.children_count() || v_.child_capacity(c) != kFramesPerChild) return false;
    auto a = v_.children[c].atomic();
    if (!Child::wholly_free(a.load(std::memory_order_relaxed))) return false;
    const uint64_t t = c / kChildrenPerTree;
    bool counted = detail::tree_take(v_.trees[t], kFramesPerChild, false);
    for (unsigned cpu = 0; !counted && cpu < cpus_; ++cpu) {
      const uint64_t res = locals_[cpu].res_atomic().load(std::memory_order_relaxed);
      if (!Local::valid_of(res) || Local::tree_of(res) != t) continue;
      uint64_t got;
      if (!take_local(locals_[cpu], kFramesPerChild, got)) continue;
      if (got == t) counted = true;
      else detail::tree_add(v_.trees[got], kFramesPerChild);  // the CPU moved on meanwhile
    }
    if (!counted) return false;
    if (atomic_update(a, [](uint16_t w, uint16_t& out) {
          if (!Child::wholly_free(w)) return false;
          out = Child::make(0, true, true);
          return true;
        }))
      return true;
    detail::tree_add(v_.trees[t], kFramesPerChild);  // allocated meanwhile: the count goes home
    return false;
  }

  Result get(unsigned cpu, unsigned order) {
    Result r;
    if (cpu >= cpus_ || order > kMaxOrder) {
      r.error = Error::kInvalid;
      return r;
    }
    // First everything that avoids reclaimed children, then the same allowing them.
    for (int pass = 0; pass < 2; ++pass) {
      const bool allow_reclaimed = pass == 1;
      if (from_local(cpu, order, allow_reclaimed, r) || reserve_and_get(cpu, order, allow_reclaimed, r) ||
          steal(cpu, order, allow_reclaimed, r) || from_any(cpu, order, allow_reclaimed, r))
        return r;
    }
    r.error = Error::kNoMemory;
    return r;
  }

  Error put(unsigned cpu, uint64_t frame, unsigned order) {
    if (cpu >= cpus_ || order > kMaxOrder) return Error::kInvalid;
    const uint64_t n = uint64_t{1} << order;
    if (frame % n != 0 || frame >= v_.frames || n > v_.frames - frame) return Error::kInvalid;
    const uint64_t c = frame / kFramesPerChild;
    if (order < kHugeOrder) {
      if (!bits::clear(v_.bitfield[c], static_cast<unsigned>(frame % kFramesPerChild), order)) return Error::kDoubleFree;
      // Cannot fail for a consistent word: the bits just cleared were counted as allocated.
      if (!atomic_update(v_.children[c].atomic(), [n](uint16_t w, uint16_t& out) { return Child::give(w, n, out); }))
        return Error::kInvalid;
    } else {
      if (!unhuge_checked(c)) return Error::kDoubleFree;
      if (order == kMaxOrder && !unhuge_checked(c + 1)) {
        // Undo the first half: it was ours, the pair as a whole was not.
        atomic_update(v_.children[c].atomic(), [](uint16_t w, uint16_t& out) {
          out = Child::make(0, true, Child::reclaimed_of(w));
          return true;
        });
        return Error::kDoubleFree;
      }
    }
    detail::tree_add(v_.trees[c / kChildrenPerTree], n);
    return Error::kOk;
  }

  // Gives the CPU's reserved tree (and its moved-out free count) back to the shared tree counter.
  void drain(unsigned cpu) {
    if (cpu >= cpus_) return;
    const uint64_t old = locals_[cpu].res_atomic().exchange(0, std::memory_order_acq_rel);
    if (Local::valid_of(old)) unreserve(Local::tree_of(old), Local::free_of(old));
  }

  // Snapshots (exact only at quiescence).
  uint64_t free_frames() const {
    uint64_t n = 0;
    for (uint64_t t = 0; t < v_.trees_count(); ++t) n += Tree::free_of(v_.trees[t].atomic().load(std::memory_order_relaxed));
    for (unsigned cpu = 0; cpu < cpus_; ++cpu) {
      const uint64_t r = locals_[cpu].res_atomic().load(std::memory_order_relaxed);
      if (Local::valid_of(r)) n += Local::free_of(r);
    }
    return n;
  }
  uint64_t free_huge() const {
    uint64_t n = 0;
    for (uint64_t c = 0; c < v_.children_count(); ++c) {
      const uint16_t w = v_.children[c].atomic().load(std::memory_order_relaxed);
      n += Child::wholly_free(w) ? 1 : 0;
    }
    return n;
  }
  uint64_t frames() const { return v_.frames; }
  unsigned cpus() const { return cpus_; }
  SharedView shared() const { return v_; }
  // Quiescent recount of every counter, including the per-CPU reservations.
  CheckResult check() const { return check_shared(v_, locals_, cpus_); }

 private:
  static bool fits(uint16_t w, unsigned order, bool allow_reclaimed) {
    if (Child::huge_of(w) || (Child::reclaimed_of(w) && !allow_reclaimed)) return false;
    return order >= kHugeOrder ? Child::free_of(w) == kFramesPerChild : Child::free_of(w) >= (1u << order);
  }

  uint64_t first_child(uint64_t t) const { return t * kChildrenPerTree; }
  uint64_t end_child(uint64_t t) const {
    const uint64_t e = (t + 1) * kChildrenPerTree, n = v_.children_count();
    return e < n ? e : n;
  }

  void recount_tree(uint64_t t) {
    uint64_t sum = 0;
    for (uint64_t c = first_child(t); c < end_child(t); ++c) sum += Child::free_of(v_.children[c].word);
    v_.trees[t].word = Tree::with_free(v_.trees[t].word, sum);
  }

  // Read-only pre-check: does tree t have a child that could serve this order now?
  bool tree_has_candidate(uint64_t t, unsigned order, bool allow_reclaimed) const {
    const uint64_t e = end_child(t);
    for (uint64_t c = first_child(t); c < e; ++c) {
      if (!fits(v_.children[c].atomic().load(std::memory_order_relaxed), order, allow_reclaimed)) continue;
      if (order < kMaxOrder) return true;
      if (c % 2 == 0 && c + 1 < e && fits(v_.children[c + 1].atomic().load(std::memory_order_relaxed), order, allow_reclaimed))
        return true;
    }
    return false;
  }

  // Claims a whole child (free=512, !huge) as huge; reports its reclaimed flag.
  bool claim_huge(uint64_t c, bool allow_reclaimed, bool& reclaimed) {
    uint16_t old;
    if (!atomic_update(v_.children[c].atomic(), old, [allow_reclaimed](uint16_t w, uint16_t& out) {
          return fits(w, kHugeOrder, allow_reclaimed) && Child::to_huge(w, out);
        }))
      return false;
    reclaimed = Child::reclaimed_of(old);
    return true;
  }

  // put() of a huge child: huge, free=0 -> free=512, !huge (reclaimed kept). False if not huge.
  bool unhuge_checked(uint64_t c) { return atomic_update(v_.children[c].atomic(), Child::from_huge); }

  // Finds the frames inside tree t, whose tree-level count of 2^order was already taken by the caller.
  bool get_in_tree(unsigned cpu, uint64_t t, unsigned order, bool allow_reclaimed, Result& r) {
    const uint64_t first = first_child(t), count = end_child(t) - first, n = uint64_t{1} << order;
    const uint64_t hint = locals_[cpu].hint_atomic().load(std::memory_order_relaxed);
    const uint64_t start = (hint >= first && hint < first + count) ? hint - first : 0;
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t c = first + (start + i) % count;
      bool reclaimed = false;
      if (order == kMaxOrder) {
        if (c % 2 != 0 || c + 1 >= first + count || !claim_huge(c, allow_reclaimed, reclaimed)) continue;
        bool reclaimed2 = false;
        if (!claim_huge(c + 1, allow_reclaimed, reclaimed2)) {
          detail::child_unhuge(v_.children[c]);
          continue;
        }
        reclaimed |= reclaimed2;
      } else if (order == kHugeOrder) {
        if (!claim_huge(c, allow_reclaimed, reclaimed)) continue;
      } else {
        auto a = v_.children[c].atomic();
        uint16_t old;
        if (!atomic_update(a, old, [order, n, allow_reclaimed](uint16_t w, uint16_t& out) {
              return fits(w, order, allow_reclaimed) && Child::take(w, n, out);
            }))
          continue;
        reclaimed = Child::reclaimed_of(old);
        const int bit = bits::set_first(v_.bitfield[c], order);
        if (bit < 0) {  // counter said yes, bits are fragmented: give the count back
          atomic_update(a, [n](uint16_t w, uint16_t& out) { return Child::give(w, n, out); });
          continue;
        }
        r.frame = c * kFramesPerChild + static_cast<uint64_t>(bit);
      }
      if (order >= kHugeOrder) r.frame = c * kFramesPerChild;
      r.error = Error::kOk;
      r.reclaimed = reclaimed;
      locals_[cpu].hint_atomic().store(c, std::memory_order_relaxed);
      return true;
    }
    return false;
  }

  // Takes n frames of count from a reservation (own or another CPU's); returns the tree.
  static bool take_local(Local& l, uint64_t n, uint64_t& tree) {
    uint64_t old;
    if (!atomic_update(l.res_atomic(), old, [n](uint64_t r, uint64_t& out) {
          if (!Local::valid_of(r) || Local::free_of(r) < n) return false;
          out = r - n;
          return true;
        }))
      return false;
    tree = Local::tree_of(old);
    return true;
  }

  // Moves frames freed into the CPU's reserved tree (tree counter) into its reservation.
  bool sync_local(Local& l) {
    auto la = l.res_atomic();
    uint64_t r = la.load(std::memory_order_acquire);
    if (!Local::valid_of(r)) return false;
    const uint64_t t = Local::tree_of(r);
    uint16_t w;
    if (!atomic_update(v_.trees[t].atomic(), w, [](uint16_t old, uint16_t& out) {
          if (!Tree::reserved_of(old) || Tree::free_of(old) == 0) return false;
          out = Tree::with_free(old, 0);
          return true;
        }))
      return false;
    const uint64_t got = Tree::free_of(w);
    if (atomic_update(la, [t, got](uint64_t res, uint64_t& out) {
          if (!Local::valid_of(res) || Local::tree_of(res) != t) return false;
          out = res + got;
          return true;
        }))
      return true;
    detail::tree_add(v_.trees[t], got);  // reservation changed meanwhile: the count goes home
    return false;
  }

  void unreserve(uint64_t t, uint64_t count) {
    atomic_update(v_.trees[t].atomic(), [count](uint16_t w, uint16_t& out) {
      out = static_cast<uint16_t>(Tree::added(w, count) & ~Tree::kReserved);
      return true;
    });
  }

  // Step 1: the CPU's reserved tree (syncing frames freed into it once).
  bool from_local(unsigned cpu, unsigned order, bool allow_reclaimed, Result& r) {
    const uint64_t n = uint64_t{1} << order;
    for (int attempt = 0; attempt < 2; ++attempt) {
      uint64_t t;
      if (take_local(locals_[cpu], n, t)) {
        if (get_in_tree(cpu, t, order, allow_reclaimed, r)) return true;
        detail::tree_add(v_.trees[t], n);
        return false;
      }
      if (!sync_local(locals_[cpu])) return false;
    }
    return false;
  }

  // Step 2: reserve another tree, searching from the current one; small orders prefer partially
  // used trees (keeps whole trees for huge allocations), then any tree with enough free frames.
  bool reserve_and_get(unsigned cpu, unsigned order, bool allow_reclaimed, Result& r) {
    const uint64_t n = uint64_t{1} << order, nt = v_.trees_count();
    const uint64_t cur = locals_[cpu].res_atomic().load(std::memory_order_relaxed);
    const uint64_t start = Local::valid_of(cur) ? Local::tree_of(cur)
                                                : locals_[cpu].hint_atomic().load(std::memory_order_relaxed) / kChildrenPerTree;
    unsigned tries = 0;
    for (int sweep = order < kHugeOrder ? 0 : 1; sweep < 2; ++sweep) {
      for (uint64_t i = 0; i < nt; ++i) {
        const uint64_t t = (start + i) % nt;
        auto ta = v_.trees[t].atomic();
        uint16_t w = ta.load(std::memory_order_relaxed);
        const uint64_t f = Tree::free_of(w), cap = v_.tree_capacity(t);
        if (Tree::reserved_of(w) || f < n) continue;
        if (sweep == 0 && (f == cap || f < cap / 16)) continue;
        if (!tree_has_candidate(t, order, allow_reclaimed)) continue;
        // One try, not atomic_update: if the tree changed since it was judged, the search moves on.
        if (!ta.compare_exchange_strong(w, static_cast<uint16_t>(Tree::with_free(w, 0) | Tree::kReserved),
                                        std::memory_order_acq_rel, std::memory_order_relaxed))
          continue;
        const uint64_t old = locals_[cpu].res_atomic().exchange(Local::make(t, f), std::memory_order_acq_rel);
        if (Local::valid_of(old)) unreserve(Local::tree_of(old), Local::free_of(old));
        uint64_t got;
        if (take_local(locals_[cpu], n, got)) {
          if (get_in_tree(cpu, got, order, allow_reclaimed, r)) return true;
          detail::tree_add(v_.trees[got], n);
        }
        if (++tries >= 8) return false;  // the other steps still search everything
      }
    }
    return false;
  }

  // Step 3: take from another CPU's reservation.
  bool steal(unsigned cpu, unsigned order, bool allow_reclaimed, Result& r) {
    const uint64_t n = uint64_t{1} << order;
    for (unsigned i = 1; i < cpus_; ++i) {
      Local& l = locals_[(cpu + i) % cpus_];
      const uint64_t res = l.res_atomic().load(std::memory_order_relaxed);
      if (!Local::valid_of(res) || Local::free_of(res) < n || !tree_has_candidate(Local::tree_of(res), order, allow_reclaimed))
        continue;
      uint64_t t;
      if (!take_local(l, n, t)) continue;
      if (get_in_tree(cpu, t, order, allow_reclaimed, r)) return true;
      detail::tree_add(v_.trees[t], n);
    }
    return false;
  }

  // Step 4: any tree's shared counter, reserved or not (frames freed into reserved trees live there).
  bool from_any(unsigned cpu, unsigned order, bool allow_reclaimed, Result& r) {
    const uint64_t n = uint64_t{1} << order, nt = v_.trees_count();
    const uint64_t start = locals_[cpu].hint_atomic().load(std::memory_order_relaxed) / kChildrenPerTree;
    for (uint64_t i = 0; i < nt; ++i) {
      const uint64_t t = (start + i) % nt;
      if (Tree::free_of(v_.trees[t].atomic().load(std::memory_order_relaxed)) < n) continue;
      if (!tree_has_candidate(t, order, allow_reclaimed) || !detail::tree_take(v_.trees[t], n, false)) continue;
      if (get_in_tree(cpu, t, order, allow_reclaimed, r)) return true;
      detail::tree_add(v_.trees[t], n);
    }
    return false;
  }

  SharedView v_{};
  Local* locals_ = nullptr;
  unsigned cpus_ = 0;
};

}  // namespace hvmm::alloc
