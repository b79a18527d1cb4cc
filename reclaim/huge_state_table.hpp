// The host's private 2-bit state per huge frame (ARCHITECTURE.md, "One frame's life"), packed four to a byte, with a live
// count per state. Not thread-safe: ZoneState guards it with its zone mutex (the counts are atomics
// only so that statistics can be read without that mutex).
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace hvmm::reclaim {

enum class HugeState : uint8_t {
  kInstalled = 0,  // backed (or will be faulted in on touch); the guest may use it freely
  kSoft = 1,       // discarded; shared flag `reclaimed` set; the guest must ask for an install
  kHard = 2,       // discarded and allocated as huge by the host: the guest cannot allocate it
  kExcluded = 3,   // never touched by the host: not wholly RAM / zone, or holds the shared arrays
};

class HugeStateTable {
 public:
  explicit HugeStateTable(uint64_t frames) : frames_(frames), bits_((frames + 3) / 4, 0) {
    counts_[0].store(frames, std::memory_order_relaxed);
  }

  uint64_t size() const { return frames_; }
  HugeState get(uint64_t i) const { return static_cast<HugeState>((bits_[i / 4] >> shift(i)) & 3u); }
  void set(uint64_t i, HugeState s) {
    const HugeState old = get(i);
    if (old == s) return;
    uint8_t& b = bits_[i / 4];
    b = static_cast<uint8_t>((b & ~(3u << shift(i))) | (static_cast<unsigned>(s) << shift(i)));
    counts_[static_cast<unsigned>(old)].fetch_sub(1, std::memory_order_relaxed);
    counts_[static_cast<unsigned>(s)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t count(HugeState s) const { return counts_[static_cast<unsigned>(s)].load(std::memory_order_relaxed); }

 private:
  static unsigned shift(uint64_t i) { return static_cast<unsigned>(i % 4) * 2; }
  uint64_t frames_;
  std::vector<uint8_t> bits_;
  std::array<std::atomic<uint64_t>, 4> counts_{};
};

}  // namespace hvmm::reclaim
