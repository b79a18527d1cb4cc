#include "devices/virtio/balloon_pages.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>

namespace hvmm::virtio {

namespace {
constexpr uint64_t kWordsPerFrame = BalloonPageMap::kPagesPerFrame / 64;

uint64_t words_for(uint64_t bits) { return (bits + 63) / 64; }
}  // namespace

BalloonPageMap::BalloonPageMap(const GuestMemory& mem) : mem_(mem), bits_(mem.host_size() / kPage) {
  // calloc: a large block comes straight from mmap, zero without being touched, so a balloon that
  // never inflates costs no RSS for its map.
  words_.reset(static_cast<uint64_t*>(std::calloc(std::max<uint64_t>(words_for(bits_), 1), sizeof(uint64_t))));
  if (!words_) throw std::bad_alloc();
}

bool BalloonPageMap::first_bit(uint64_t gpa, uint64_t len, uint64_t& bit) const {
  if (len == 0 || gpa % kPage || len % kPage) return false;
  const uint8_t* h = mem_.hva(gpa, len);  // nullptr unless wholly inside one RAM region
  if (!h) return false;
  const uint64_t off = uint64_t(h - mem_.host_base());
  bit = off / kPage;
  return bit + len / kPage <= bits_;  // always, for a region of this mapping; checked all the same
}

uint64_t BalloonPageMap::change(uint64_t first, uint64_t n, bool set) {
  uint64_t changed = 0;
  for (uint64_t b = first, end = first + n; b < end;) {
    const uint64_t w = b / 64, lo = b % 64, span = std::min<uint64_t>(64 - lo, end - b);
    const uint64_t mask = (span == 64 ? ~0ull : ((1ull << span) - 1)) << lo;
    const uint64_t old = words_[w];
    words_[w] = set ? old | mask : old & ~mask;
    changed += uint64_t(std::popcount(old ^ words_[w]));
    b += span;
  }
  return changed;
}

bool BalloonPageMap::frame_full(uint64_t frame) const {
  if ((frame + 1) * kWordsPerFrame > words_for(bits_)) return false;
  for (uint64_t i = 0; i < kWordsPerFrame; ++i)
    if (words_[frame * kWordsPerFrame + i] != ~0ull) return false;
  return true;
}

bool BalloonPageMap::frame_gpa(uint64_t frame, uint64_t& gpa) const {
  const uint64_t off = frame * kFrame;
  for (const MemRegion& r : mem_.regions()) {
    const uint64_t start = uint64_t(r.hva - mem_.host_base());
    if (off >= start && off - start <= r.size && r.size - (off - start) >= kFrame) {
      gpa = r.gpa + (off - start);
      return true;
    }
  }
  return false;
}

bool BalloonPageMap::add(uint64_t gpa, uint64_t len, std::vector<uint64_t>& whole) {
  uint64_t first;
  if (!first_bit(gpa, len, first)) return false;
  const uint64_t end = first + len / kPage;
  for (uint64_t f = first / kPagesPerFrame; f * kPagesPerFrame < end; ++f) {
    const uint64_t f_start = f * kPagesPerFrame, f_end = f_start + kPagesPerFrame;
    const uint64_t lo = std::max(first, f_start), hi = std::min(end, f_end);
    const uint64_t changed = change(lo, hi - lo, true);
    pages_ += changed;
    const bool covered = lo == f_start && hi == f_end;
    uint64_t frame;
    if (changed && !covered && frame_full(f) && frame_gpa(f, frame)) whole.push_back(frame);
  }
  return true;
}

bool BalloonPageMap::remove(uint64_t gpa, uint64_t len) {
  uint64_t first;
  if (!first_bit(gpa, len, first)) return false;
  pages_ -= change(first, len / kPage, false);
  return true;
}

void BalloonPageMap::clear() {
  if (!pages_) return;  // drivers reset at every boot: do not touch an unused map
  std::memset(words_.get(), 0, words_for(bits_) * sizeof(uint64_t));
  pages_ = 0;
}

bool BalloonPageMap::contains(uint64_t gpa) const {
  uint64_t bit;
  if (!first_bit(gpa & ~(kPage - 1), kPage, bit)) return false;
  return (words_[bit / 64] >> (bit % 64)) & 1;
}

}  // namespace hvmm::virtio
