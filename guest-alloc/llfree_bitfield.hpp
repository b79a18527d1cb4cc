// Atomic operations on one child's 512-bit bitfield: claim the first free naturally aligned block of
// 2^order frames (order 0..8), and release a block with a double-free check. Freestanding.
#pragma once
#include <bit>
#include <cstdint>

#include "guest-alloc/llfree_words.hpp"

namespace hvmm::alloc::bits {

// Bit 0 of every naturally aligned 2^order-bit slot of a word (order <= 6).
constexpr uint64_t slot_starts(unsigned order) {
  constexpr uint64_t kPattern[7] = {~uint64_t{0},         0x5555555555555555ull, 0x1111111111111111ull,
                                    0x0101010101010101ull, 0x0001000100010001ull, 0x0000000100000001ull,
                                    0x1ull};
  return kPattern[order];
}

constexpr uint64_t block_mask(unsigned order) { return order >= 6 ? ~uint64_t{0} : (uint64_t{1} << (1u << order)) - 1; }

// Positions (as set bits) of the aligned free slots of 2^order bits in word v (order <= 6).
constexpr uint64_t free_slots(uint64_t v, unsigned order) {
  uint64_t f = ~v;
  for (unsigned s = 1; s < (1u << order); s <<= 1) f &= f >> s;
  return f & slot_starts(order);
}

// Claims the first free aligned block, starting the search at word `start_word` (wrapping).
// Returns the bit index within the child, or -1 when the bits are too fragmented.
inline int set_first(Bitfield& bf, unsigned order, unsigned start_word = 0) {
  if (order <= 6) {
    for (unsigned i = 0; i < kWordsPerBitfield; ++i) {
      const unsigned w = (start_word + i) % kWordsPerBitfield;
      auto word = bf.atomic(w);
      uint64_t v = word.load(std::memory_order_relaxed);
      for (;;) {
        const uint64_t slots = free_slots(v, order);
        if (slots == 0) break;
        const unsigned pos = static_cast<unsigned>(std::countr_zero(slots));
        if (word.compare_exchange_weak(v, v | (block_mask(order) << pos), std::memory_order_acq_rel,
                                       std::memory_order_relaxed))
          return static_cast<int>(w * 64 + pos);
      }
    }
    return -1;
  }
  // Orders 7 and 8 span 2 or 4 whole words: claim them 0 -> ~0 one by one, undo on conflict.
  const unsigned n = 1u << (order - 6);
  for (unsigned first = 0; first < kWordsPerBitfield; first += n) {
    unsigned done = 0;
    for (; done < n; ++done) {
      uint64_t expected = 0;
      if (!bf.atomic(first + done).compare_exchange_strong(expected, ~uint64_t{0}, std::memory_order_acq_rel,
                                                           std::memory_order_relaxed))
        break;
    }
    if (done == n) return static_cast<int>(first * 64);
    while (done-- > 0) bf.atomic(first + done).store(0, std::memory_order_release);
  }
  return -1;
}

// Releases the block of 2^order bits at `bit` (aligned). Returns false, changing nothing, when any
// of its bits was not set (double free or wrong order).
inline bool clear(Bitfield& bf, unsigned bit, unsigned order) {
  if (order <= 6) {
    auto word = bf.atomic(bit / 64);
    const uint64_t mask = block_mask(order) << (bit % 64);
    uint64_t v = word.load(std::memory_order_relaxed);
    do {
      if ((v & mask) != mask) return false;
    } while (!word.compare_exchange_weak(v, v & ~mask, std::memory_order_acq_rel, std::memory_order_relaxed));
    return true;
  }
  const unsigned n = 1u << (order - 6), first = bit / 64;
  unsigned done = 0;
  for (; done < n; ++done) {
    uint64_t expected = ~uint64_t{0};
    if (!bf.atomic(first + done).compare_exchange_strong(expected, 0, std::memory_order_acq_rel,
                                                         std::memory_order_relaxed))
      break;
  }
  if (done == n) return true;
  while (done-- > 0) bf.atomic(first + done).fetch_or(~uint64_t{0}, std::memory_order_relaxed);
  return false;
}

// SWAR popcount: std::popcount without -mpopcnt calls libgcc's __popcountdi2, which a -nostdlib
// kernel does not link.
constexpr unsigned popcount64(uint64_t x) {
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
  return static_cast<unsigned>((x * 0x0101010101010101ull) >> 56);
}
static_assert(popcount64(0) == 0 && popcount64(~uint64_t{0}) == 64 && popcount64(0x8000000000000001ull) == 2);

inline unsigned popcount(Bitfield& bf) {
  unsigned n = 0;
  for (unsigned i = 0; i < kWordsPerBitfield; ++i)
    n += popcount64(bf.atomic(i).load(std::memory_order_relaxed));
  return n;
}

}  // namespace hvmm::alloc::bits
