#include "guest/regions.hpp"

#include "guest/console.hpp"
#include "guest/mem.hpp"

namespace guest {

namespace {
MemRegion g_regions[kMaxRegions];
uint64_t g_next_seed = 0x5eed'0001;

inline uint64_t pattern(uint64_t seed, uint64_t frame, uint64_t word) {
  return (seed * 0x9e37'79b9'7f4a'7c15ULL) ^ (frame << 20) ^ word;
}

void fill(uint64_t seed, uint64_t frame, unsigned order) {
  auto* p = static_cast<uint64_t*>(frame_ptr(frame));
  const uint64_t words = (kPageSize << order) / 8;
  for (uint64_t i = 0; i < words; i++) p[i] = pattern(seed, frame, i);
}

bool check(uint64_t seed, uint64_t frame, unsigned order, uint64_t& bad_word, uint64_t& got) {
  auto* p = static_cast<const uint64_t*>(frame_ptr(frame));
  const uint64_t words = (kPageSize << order) / 8;
  for (uint64_t i = 0; i < words; i++) {
    if (p[i] != pattern(seed, frame, i)) {
      bad_word = i;
      got = p[i];
      return false;
    }
  }
  return true;
}
}  // namespace

MemRegion* newest_region() {
  for (unsigned i = kMaxRegions; i-- > 0;)
    if (g_regions[i].live) return &g_regions[i];
  return nullptr;
}

MemRegion* new_region(unsigned order) {
  // Regions are used as a stack: the new one goes above the newest live one.
  MemRegion* top = newest_region();
  unsigned idx = top ? static_cast<unsigned>(top - g_regions) + 1 : 0;
  if (idx == kMaxRegions) return nullptr;
  MemRegion& r = g_regions[idx];
  r = MemRegion{};
  r.live = true;
  r.order = order;
  r.seed = g_next_seed++;
  return &r;
}

uint64_t region_blocks(const MemRegion& r) {
  uint64_t n = 0;
  for (auto& l : r.lists) n += l.size();
  return n;
}

unsigned live_regions(MemRegion** out) {
  unsigned n = 0;
  for (auto& r : g_regions)
    if (r.live) out[n++] = &r;
  return n;
}

uint64_t region_fill(MemRegion& r, uint64_t blocks) {
  FrameList& l = r.lists[this_cpu()->id];
  uint64_t done = 0;
  for (; blocks == 0 || done < blocks; done++) {
    uint64_t frame;
    if (!mem_alloc(r.order, frame)) break;
    fill(r.seed, frame, r.order);
    if (!l.push(frame)) {
      mem_free(frame, r.order);
      break;
    }
  }
  return done;
}

uint64_t region_verify(const MemRegion& r) {
  uint64_t bad = 0;
  r.lists[this_cpu()->id].for_each([&](uint64_t frame) {
    uint64_t word, got;
    if (!check(r.seed, frame, r.order, word, got) && bad++ == 0)
      kprintf("verify: frame %#lx (order %u) word %lu: expected %#lx, found %#lx\n", frame, r.order, word,
              pattern(r.seed, frame, word), got);
  });
  return bad;
}

void region_release(MemRegion& r) { r.lists[this_cpu()->id].release(r.order); }

}  // namespace guest
