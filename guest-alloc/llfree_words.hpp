// The words the guest allocator shares with the host (LLFree layout; ARCHITECTURE.md, "The shared
// allocator").
//
// Both sides access them only through std::atomic_ref on these exact words; no 128-bit atomics
// (the nested KVM emulator fails on cmpxchg16b). Freestanding: no libc, no heap.
//
// As in llfree-c's child.h: each change of a word is a pure transition (old word -> new word, or
// "does not apply"), and atomic_update() is the one CAS loop that applies it. Guest and host use
// the same predicates and transitions, so "free" or "reclaimable" means the same on both sides.
//
// The reclaimed bit has one name everywhere: Child::kReclaimed. Set, it says the host may have
// taken the frame's backing memory (soft reclaim: the frame is still the guest's; hard reclaim:
// huge and taken out of the guest's free count), so a guest allocation that lands in it must ask
// the host to install the frame first.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace hvmm::alloc {

// The one CAS loop. `next(old, out)` is a pure transition: it writes the new word to `out` and
// returns true, or returns false when it does not apply to `old` (a precondition failed). Retries
// until the CAS lands or the transition stops applying; `old` ends as the word it saw last (the one
// replaced, on success).
template <class W, class Next>
inline bool atomic_update(std::atomic_ref<W> a, W& old, Next next) {
  old = a.load(std::memory_order_acquire);
  for (;;) {
    W nw;
    if (!next(old, nw)) return false;
    if (a.compare_exchange_weak(old, nw, std::memory_order_acq_rel, std::memory_order_acquire)) return true;
  }
}
template <class W, class Next>
inline bool atomic_update(std::atomic_ref<W> a, Next next) {
  W old;
  return atomic_update(a, old, next);
}

inline constexpr unsigned kFrameShift = 12;        // 4 KiB base frames
inline constexpr unsigned kHugeOrder = 9;          // 2 MiB = 512 frames = one child
inline constexpr unsigned kMaxOrder = 10;          // 4 MiB = two adjacent children
inline constexpr uint64_t kFramesPerChild = 1u << kHugeOrder;
inline constexpr uint64_t kChildrenPerTree = 8;    // 16 MiB per tree
inline constexpr uint64_t kFramesPerTree = kFramesPerChild * kChildrenPerTree;
inline constexpr uint64_t kWordsPerBitfield = kFramesPerChild / 64;

// One per 2 MiB huge frame. free: 14 bits (0..512), huge: allocated as one 2 MiB page,
// reclaimed: the host may have taken the backing memory (the guest must ask for an install).
struct Child {
  uint16_t word;

  static constexpr uint16_t kFreeMask = 0x3fff;
  static constexpr uint16_t kHuge = 1u << 14;
  static constexpr uint16_t kReclaimed = 1u << 15;

  static constexpr uint16_t free_of(uint16_t w) { return w & kFreeMask; }
  static constexpr bool huge_of(uint16_t w) { return (w & kHuge) != 0; }
  static constexpr bool reclaimed_of(uint16_t w) { return (w & kReclaimed) != 0; }
  static constexpr uint16_t make(uint64_t free, bool huge, bool reclaimed) {
    return static_cast<uint16_t>((free & kFreeMask) | (huge ? kHuge : 0) | (reclaimed ? kReclaimed : 0));
  }
  // All 512 frames free and not allocated as one huge page: the host may reclaim it.
  static constexpr bool wholly_free(uint16_t w) { return free_of(w) == kFramesPerChild && !huge_of(w); }
  // Wholly free and still backed: what soft reclaim and the auto-reclaim scan look for.
  static constexpr bool idle(uint16_t w) { return wholly_free(w) && !reclaimed_of(w); }

  // Transitions (see atomic_update). The reclaimed bit is kept unless the transition is about it.
  static constexpr bool take(uint16_t w, uint64_t n, uint16_t& out) {  // n frames allocated
    if (free_of(w) < n || huge_of(w)) return false;
    out = static_cast<uint16_t>(w - n);
    return true;
  }
  static constexpr bool give(uint16_t w, uint64_t n, uint16_t& out) {  // n frames freed
    if (free_of(w) + n > kFramesPerChild) return false;
    out = static_cast<uint16_t>(w + n);
    return true;
  }
  static constexpr bool to_huge(uint16_t w, uint16_t& out) {  // wholly free -> one huge allocation
    if (!wholly_free(w)) return false;
    out = make(0, true, reclaimed_of(w));
    return true;
  }
  static constexpr bool from_huge(uint16_t w, uint16_t& out) {  // a huge allocation freed
    if (!huge_of(w) || free_of(w) != 0) return false;
    out = make(kFramesPerChild, false, reclaimed_of(w));
    return true;
  }
  static constexpr bool set_reclaimed(uint16_t w, uint16_t& out) {  // soft reclaim (the host)
    if (!idle(w)) return false;
    out = static_cast<uint16_t>(w | kReclaimed);
    return true;
  }
  static constexpr bool clear_reclaimed(uint16_t w, uint16_t& out) {  // installed (the host)
    if (!reclaimed_of(w)) return false;
    out = static_cast<uint16_t>(w & ~kReclaimed);
    return true;
  }
  std::atomic_ref<uint16_t> atomic() { return std::atomic_ref<uint16_t>(word); }
};
static_assert(sizeof(Child) == 2 && alignof(Child) == 2);
static_assert(std::is_standard_layout_v<Child> && std::is_trivially_copyable_v<Child>);
static_assert(offsetof(Child, word) == 0);

// One per 8 children (16 MiB). free: 13 bits (0..4096), reserved: a guest CPU holds it (its free
// count then lives in that CPU's private reservation), kind: 2 bits, preserved but unused (always 0).
struct Tree {
  uint16_t word;

  static constexpr uint16_t kFreeMask = 0x1fff;
  static constexpr uint16_t kReserved = 1u << 13;
  static constexpr unsigned kKindShift = 14;

  static constexpr uint16_t free_of(uint16_t w) { return w & kFreeMask; }
  static constexpr bool reserved_of(uint16_t w) { return (w & kReserved) != 0; }
  static constexpr unsigned kind_of(uint16_t w) { return w >> kKindShift; }
  static constexpr uint16_t with_free(uint16_t w, uint64_t free) {
    return static_cast<uint16_t>((w & ~kFreeMask) | (free & kFreeMask));
  }
  // Transitions (see atomic_update).
  static constexpr bool take(uint16_t w, uint64_t n, bool unreserved_only, uint16_t& out) {
    if (free_of(w) < n || (unreserved_only && reserved_of(w))) return false;
    out = with_free(w, free_of(w) - n);
    return true;
  }
  // Adds n, saturating at a full tree (whatever the guest wrote, never into the flag bits).
  static constexpr uint16_t added(uint16_t w, uint64_t n) {
    const uint64_t f = free_of(w) + n;
    return with_free(w, f > kFramesPerTree ? kFramesPerTree : f);
  }
  std::atomic_ref<uint16_t> atomic() { return std::atomic_ref<uint16_t>(word); }
};
static_assert(sizeof(Tree) == 2 && alignof(Tree) == 2);
static_assert(std::is_standard_layout_v<Tree> && std::is_trivially_copyable_v<Tree>);
static_assert(kFramesPerTree <= Tree::kFreeMask);

// One bit per 4 KiB frame of a child; 1 = allocated. Huge allocations leave the bits at 0.
struct alignas(64) Bitfield {
  uint64_t words[kWordsPerBitfield];

  std::atomic_ref<uint64_t> atomic(unsigned i) { return std::atomic_ref<uint64_t>(words[i]); }
};
static_assert(sizeof(Bitfield) == 64 && alignof(Bitfield) == 64);
static_assert(std::is_standard_layout_v<Bitfield> && std::is_trivially_copyable_v<Bitfield>);

static_assert(std::atomic_ref<uint16_t>::required_alignment <= alignof(Child));
static_assert(std::atomic_ref<uint64_t>::required_alignment <= 8);
static_assert(std::atomic_ref<uint16_t>::is_always_lock_free);
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free);

// Guest-private, one per CPU (never shared with the host), cache-line sized. `res` is changed only
// by 64-bit CAS/exchange because other CPUs steal from it: bit 63 valid, bits 16..62 tree index,
// bits 0..15 free frames moved out of that tree. `hint` is the owner's search start (a child index).
struct alignas(64) Local {
  uint64_t res;
  uint64_t hint;
  uint8_t pad[48];

  static constexpr uint64_t kValid = uint64_t{1} << 63;
  static constexpr uint64_t make(uint64_t tree, uint64_t free) { return kValid | (tree << 16) | (free & 0xffff); }
  static constexpr bool valid_of(uint64_t r) { return (r & kValid) != 0; }
  static constexpr uint64_t tree_of(uint64_t r) { return (r & ~kValid) >> 16; }
  static constexpr uint64_t free_of(uint64_t r) { return r & 0xffff; }

  std::atomic_ref<uint64_t> res_atomic() { return std::atomic_ref<uint64_t>(res); }
  std::atomic_ref<uint64_t> hint_atomic() { return std::atomic_ref<uint64_t>(hint); }
};
static_assert(sizeof(Local) == 64 && alignof(Local) == 64);
static_assert(std::is_standard_layout_v<Local>);

// Frame-count limits: tree indices must fit 47 bits of Local::res; keep well inside that.
inline constexpr uint64_t kMaxFrames = uint64_t{1} << 40;  // 4 PiB
inline constexpr unsigned kMaxCpus = 4096;

}  // namespace hvmm::alloc
