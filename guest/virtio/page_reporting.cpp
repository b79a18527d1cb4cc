#include "guest/virtio/page_reporting.hpp"

#include <cstring>

#include "guest/console.hpp"
#include "guest/mem.hpp"
#include "guest/virtio/balloon.hpp"

namespace guest::virtio {
namespace {
constexpr uint64_t kDelayNs = 2'000'000'000;  // Linux: PAGE_REPORTING_DELAY (2 s)
constexpr unsigned kCapacity = 32;            // Linux: PAGE_REPORTING_CAPACITY blocks per request
constexpr uint64_t kBlock = kPageSize << kHugeOrder;
constexpr uint64_t kThreshold = kCapacity;    // unreported free blocks that make a pass worthwhile

struct State {
  Virtq* q = nullptr;
  uint64_t* marks = nullptr;     // one bit per 2 MiB frame (shared with guest/mem.cpp)
  uint64_t mark_words = 0;
  uint32_t* aside = nullptr;     // reported blocks isolated during a pass, freed at its end
  uint64_t aside_cap = 0;
  uint64_t due_ns = 0;           // 0: no pass scheduled
  ReportingInfo info;
};
State s;

uint64_t marked() {
  uint64_t n = 0;
  for (uint64_t i = 0; i < s.mark_words; i++) n += __builtin_popcountll(__atomic_load_n(&s.marks[i], __ATOMIC_RELAXED));
  return n;
}

void report(const uint64_t* frames, unsigned n) {
  VirtqBuf bufs[kCapacity];
  for (unsigned i = 0; i < n; i++) bufs[i] = {frames[i] * kPageSize, static_cast<uint32_t>(kBlock), true};
  if (s.q->add(bufs, n)) {
    s.q->kick();
    uint16_t head;
    uint32_t len;
    while (s.q->pop_used(head, len)) {
    }
  }
  // Marked before they go back: an allocation racing with the free then clears the mark itself.
  for (unsigned i = 0; i < n; i++) {
    mem_mark_reported(frames[i] >> kHugeOrder);
    mem_free_reported(frames[i]);  // reused after resident memory, as Linux queues reported pages last
  }
  s.info.reported_blocks += n;
}

void pass() {
  balloon_set_reporting_busy(true);
  uint64_t aside = 0;
  for (bool more = true; more;) {
    uint64_t batch[kCapacity];
    unsigned n = 0;
    while (n < kCapacity) {
      uint64_t frame;
      bool reported;
      if (!mem_isolate_huge(frame, reported)) {
        more = false;
        break;
      }
      if (!reported) batch[n++] = frame;
      else if (aside < s.aside_cap) s.aside[aside++] = static_cast<uint32_t>(frame >> kHugeOrder);
      else {  // cannot happen (one slot per frame); put it back and stop rather than loop
        mem_free(frame, kHugeOrder);
        more = false;
        break;
      }
    }
    if (n) report(batch, n);
  }
  for (uint64_t i = 0; i < aside; i++) mem_free_reported(uint64_t(s.aside[i]) << kHugeOrder);
  balloon_set_reporting_busy(false);
  s.info.passes++;
}

unsigned order_for(uint64_t bytes) {
  unsigned o = 0;
  while ((kPageSize << o) < bytes) o++;
  return o;
}
}  // namespace

bool reporting_init(const BootInfo&) {
  s.q = balloon_reporting_queue();
  if (!s.q) return false;
  const uint64_t huge = mem_huge_frames();
  s.mark_words = (huge + 63) / 64;
  const uint64_t bytes = s.mark_words * 8 + huge * 4;
  const unsigned order = order_for(bytes);
  uint64_t frame;
  if (order > 10 || !mem_alloc(order, frame)) {
    kprintf("virtio-balloon: no memory for free page reporting; it stays off\n");
    s.q = nullptr;
    return false;
  }
  auto* p = static_cast<uint8_t*>(frame_ptr(frame));
  memset(p, 0, bytes);
  s.marks = reinterpret_cast<uint64_t*>(p);
  s.aside = reinterpret_cast<uint32_t*>(p + s.mark_words * 8);
  s.aside_cap = huge;
  mem_reported_init(s.marks);
  return true;
}

void reporting_tick(uint64_t now_ns) {
  if (!s.q) return;
  if (!s.due_ns) {
    const uint64_t free = mem_free_huge(), done = marked();
    if (free > done && free - done >= kThreshold) s.due_ns = now_ns + kDelayNs;
    return;
  }
  if (now_ns < s.due_ns) return;
  s.due_ns = 0;
  pass();
}

ReportingInfo reporting_info() { return s.info; }

}  // namespace guest::virtio
