// libFuzzer target: arbitrary guest memory contents + queue set-up, then walk every chain.
// Input layout: 16 bytes of set-up (size, ring offsets, flags), the rest is copied into guest RAM.
// Whatever the input, the walker must neither crash nor touch memory outside guest RAM (ASan
// watches the host side; GuestMemory's regions are the only memory it may read).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/queue.hpp"
#include "memory/guest_memory.hpp"

using namespace hvmm;
using namespace hvmm::virtio;

namespace {
// Two small regions with a hole, so "in RAM" has edges to hit from both sides.
constexpr uint64_t kRegionSize = 0x8000;
constexpr uint64_t kSecond = 0x10000;
GuestMemory::RegionSpec kRegions[] = {{0, kRegionSize}, {kSecond, kRegionSize}};

GuestMemory& memory() {
  static GuestMemory mem(kRegions);
  return mem;
}

struct Setup {
  uint16_t size;
  uint16_t desc, avail, used;  // offsets, scaled to cover both regions and the hole
  uint8_t flags;               // bit 0 event_idx, bit 1 indirect, bits 2..7 pops to attempt
  uint8_t max_log2;            // device maximum queue size = 1 << (max_log2 % 16)
  uint16_t push_len;
  uint16_t used_event_bias;
};
static_assert(sizeof(Setup) == 14);
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < sizeof(Setup)) return 0;
  Setup s;
  std::memcpy(&s, data, sizeof s);
  data += sizeof s;
  size -= sizeof s;

  GuestMemory& mem = memory();
  for (auto& r : mem.regions()) {
    std::memset(r.hva, 0, r.size);
    size_t n = size < r.size ? size : r.size;
    std::memcpy(r.hva, data, n);
    data += n;
    size -= n;
  }

  Virtqueue q(mem, 64);
  QueueConfig cfg{s.size, uint64_t(s.desc) * 2, uint64_t(s.avail) * 2, uint64_t(s.used) * 2,
                  (s.flags & 1) != 0, (s.flags & 2) != 0};
  if (q.enable(cfg, uint16_t(1u << (s.max_log2 % 16))) != QueueError::none) return 0;

  DescChain chain;
  unsigned attempts = 1 + (s.flags >> 2);
  for (unsigned i = 0; i < attempts; ++i) {
    auto r = q.pop(chain);
    if (r != Virtqueue::Pop::chain) break;
    // Touch every buffer through the bounds-checked path, as a device would.
    ChainReader in(mem, chain);
    uint8_t sink[256];
    while (in.read(sink, sizeof sink) == sizeof sink) {
    }
    q.push(chain.head, s.push_len);
  }
  (void)q.should_interrupt();
  return 0;
}
