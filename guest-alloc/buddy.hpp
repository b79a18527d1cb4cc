// A Linux-like binary buddy allocator, the built-in guest's alternative to LLFree
// (`hvmm run --guest-alloc buddy`), so that free page reporting can be measured on the allocator Linux
// uses as well as on LLFree (ARCHITECTURE.md, "The built-in guest").
//
//   Buddy b; b.init(frames, meta);          // meta: Buddy::meta_bytes(frames) bytes; all frames allocated
//   b.free_range(first, count);             // init-time: hand free RAM to the allocator
//   uint64_t f; if (b.get(order, f)) ...    // 2^order frames, naturally aligned
//   b.put(f, order);                        // kDoubleFree / kInvalid refused, nothing changed
//
// As Linux's zone free lists (mm/page_alloc.c): one free list per order 0..10 (MAX_ORDER 11 of
// Linux 6.1); get() takes the head of the smallest non-empty list at or above the order and splits,
// the lower half staying allocated and each upper half going to its list; put() merges with free
// buddies and puts the result at the head (recently freed = hot, reused first), or at the tail with
// `tail` (free page reporting puts reported blocks there, as Linux does). One spinlock for all of it
// (Linux's zone->lock; no per-CPU page lists). Metadata lives outside the frames (Linux's struct
// page): the frames themselves are never written, so free memory given back to the host stays away.
// Per frame: a state byte (head of a free block of order o / head of an allocated block of order o /
// inside a block) and two 32-bit list links. Freestanding, header-only.
#pragma once
#include <atomic>
#include <cstdint>

namespace hvmm::alloc {

class Buddy {
 public:
  static constexpr unsigned kMaxOrder = 10;
  static constexpr uint64_t kMaxFrames = 0xFFFF'FFFEull;  // links are 32-bit frame numbers
  enum class Error : uint8_t { kOk = 0, kNoMemory, kInvalid, kDoubleFree };

  static constexpr uint64_t meta_bytes(uint64_t frames) { return frames * (2 * sizeof(uint32_t) + 1); }

  // All frames allocated (order-0 heads) until free_range() hands them over. False on bad arguments.
  bool init(uint64_t frames, void* meta) {
    if (frames == 0 || frames > kMaxFrames || !meta || reinterpret_cast<uintptr_t>(meta) % 8) return false;
    frames_ = frames;
    next_ = static_cast<uint32_t*>(meta);
    prev_ = next_ + frames;
    state_ = reinterpret_cast<uint8_t*>(prev_ + frames);
    for (uint64_t f = 0; f < frames; f++) state_[f] = kAllocHead;  // order 0
    for (unsigned o = 0; o <= kMaxOrder; o++) head_[o] = tail_[o] = kNone, count_[o] = 0;
    free_ = 0;
    lock_ = 0;
    return true;
  }

  // Init-time (or with nothing else running): frees [first, first + count) in the largest naturally
  // aligned blocks that fit, merging with free neighbours. Every frame in it must be allocated at
  // order 0 (as init() leaves them); others are skipped.
  void free_range(uint64_t first, uint64_t count) {
    if (first >= frames_) return;
    if (count > frames_ - first) count = frames_ - first;
    const uint64_t end = first + count;
    for (uint64_t f = first; f < end;) {
      unsigned o = 0;
      while (o < kMaxOrder && f % (uint64_t{2} << o) == 0 && f + (uint64_t{2} << o) <= end) o++;
      bool all = true;  // every frame an order-0 allocated head: mark it one block of order o
      for (uint64_t i = 0; i < (uint64_t{1} << o) && all; i++) all = state_[f + i] == kAllocHead;
      if (all) {
        for (uint64_t i = 1; i < (uint64_t{1} << o); i++) state_[f + i] = kInside;
        state_[f] = static_cast<uint8_t>(kAllocHead | o);
        free_block(f, o, false);
      }
      f += uint64_t{1} << o;
    }
  }

  bool get(unsigned order, uint64_t& frame) {
    if (order > kMaxOrder) return false;
    lock();
    unsigned o = order;
    while (o <= kMaxOrder && head_[o] == kNone) o++;
    if (o > kMaxOrder) {
      unlock();
      return false;
    }
    const uint64_t f = head_[o];
    unlink(f, o);
    while (o > order) {  // split: the upper half goes back to its list (Linux's expand())
      o--;
      push(f + (uint64_t{1} << o), o, false);
    }
    state_[f] = static_cast<uint8_t>(kAllocHead | order);
    bump(free_, -(int64_t{1} << order));
    unlock();
    frame = f;
    return true;
  }

  Error put(uint64_t frame, unsigned order, bool tail = false) {
    if (order > kMaxOrder || frame >= frames_ || frame % (uint64_t{1} << order) ||
        (uint64_t{1} << order) > frames_ - frame)
      return Error::kInvalid;
    lock();
    if (state_[frame] != (kAllocHead | order)) {  // not an allocated block of this order: refuse
      unlock();
      return Error::kDoubleFree;
    }
    free_block(frame, order, tail);
    unlock();
    return Error::kOk;
  }

  uint64_t frames() const { return frames_; }
  uint64_t free_frames() const { return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(free_)).load(std::memory_order_relaxed); }
  // Free blocks of `order` on its list (not counting parts of larger blocks).
  uint64_t free_blocks(unsigned order) const {
    return order > kMaxOrder ? 0 : std::atomic_ref<uint64_t>(const_cast<uint64_t&>(count_[order])).load(std::memory_order_relaxed);
  }
  // Free 2^order-frame blocks available, counting larger free blocks as several.
  uint64_t free_at_least(unsigned order) const {
    uint64_t n = 0;
    for (unsigned o = order; o <= kMaxOrder; o++) n += free_blocks(o) << (o - order);
    return n;
  }
  // Checks every list against the state bytes and the counters (tests; quiescent only).
  bool consistent() const {
    uint64_t total = 0;
    for (unsigned o = 0; o <= kMaxOrder; o++) {
      uint64_t n = 0;
      uint32_t prev = kNone;
      for (uint32_t f = head_[o]; f != kNone; prev = f, f = next_[f]) {
        if (state_[f] != (kFreeHead | o) || prev_[f] != prev || f % (uint64_t{1} << o)) return false;
        if (++n > frames_) return false;
      }
      if (tail_[o] != prev || n != count_[o]) return false;
      total += n << o;
    }
    return total == free_;
  }

 private:
  static constexpr uint32_t kNone = 0xFFFF'FFFF;
  static constexpr uint8_t kInside = 0;        // a frame inside a block whose head is elsewhere
  static constexpr uint8_t kAllocHead = 0x40;  // | order
  static constexpr uint8_t kFreeHead = 0x80;   // | order

  // Adds an allocated block (state already kAllocHead | order) to the free lists, merging buddies.
  void free_block(uint64_t f, unsigned o, bool tail) {
    bump(free_, int64_t{1} << o);
    state_[f] = kInside;
    while (o < kMaxOrder) {
      const uint64_t b = f ^ (uint64_t{1} << o);
      if (b >= frames_ || (uint64_t{1} << o) > frames_ - b || state_[b] != (kFreeHead | o)) break;
      unlink(b, o);
      state_[b] = kInside;
      f = f < b ? f : b;
      o++;
    }
    push(f, o, tail);
  }
  void push(uint64_t f, unsigned o, bool tail) {
    const uint32_t x = static_cast<uint32_t>(f);
    state_[f] = static_cast<uint8_t>(kFreeHead | o);
    if (head_[o] == kNone) {
      next_[x] = prev_[x] = kNone;
      head_[o] = tail_[o] = x;
    } else if (tail) {
      next_[x] = kNone, prev_[x] = tail_[o];
      next_[tail_[o]] = x, tail_[o] = x;
    } else {
      prev_[x] = kNone, next_[x] = head_[o];
      prev_[head_[o]] = x, head_[o] = x;
    }
    bump(count_[o], 1);
  }
  void unlink(uint64_t f, unsigned o) {
    const uint32_t n = next_[f], p = prev_[f];
    if (p == kNone) head_[o] = n;
    else next_[p] = n;
    if (n == kNone) tail_[o] = p;
    else prev_[n] = p;
    state_[f] = kInside;
    bump(count_[o], -1);
  }
  // Counters change under the lock but are read without it (free_frames(), free_blocks()).
  static void bump(uint64_t& x, int64_t d) {
    std::atomic_ref<uint64_t> a(x);
    a.store(a.load(std::memory_order_relaxed) + static_cast<uint64_t>(d), std::memory_order_relaxed);
  }
  void lock() {
    std::atomic_ref<uint32_t> l(lock_);
    while (l.exchange(1, std::memory_order_acquire))
      while (l.load(std::memory_order_relaxed)) __builtin_ia32_pause();
  }
  void unlock() {
    std::atomic_ref<uint32_t>(lock_).store(0, std::memory_order_release);
  }

  uint64_t frames_ = 0;
  uint32_t* next_ = nullptr;
  uint32_t* prev_ = nullptr;
  uint8_t* state_ = nullptr;
  uint32_t head_[kMaxOrder + 1] = {};
  uint32_t tail_[kMaxOrder + 1] = {};
  uint64_t count_[kMaxOrder + 1] = {};
  uint64_t free_ = 0;
  uint32_t lock_ = 0;
};

}  // namespace hvmm::alloc
