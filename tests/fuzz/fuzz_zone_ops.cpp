// libFuzzer target: the host's operations on a HyperAlloc zone (reclaim/zone_state.*) over
// arbitrary shared allocator words. The zone is built in guest RAM as the guest builds it, then the
// fuzzer's bytes overwrite its child, tree and bitfield words (a guest may write anything there at
// any time) and drive a sequence of shrink / grow / soft reclaim / install / audit / stats. Whatever
// the words: no crash, no access outside guest RAM (ASan), usable memory within [0, RAM], and the
// host's own frame counts adding up.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/reclaim/guest_zone.hpp"

using namespace hvmm;
using namespace hvmm::reclaim;
using namespace hvmm::reclaim::test;

namespace {
uint64_t take(const uint8_t*& data, size_t& size, size_t n) {
  uint64_t v = 0;
  n = std::min(n, size);
  std::memcpy(&v, data, n);
  data += n, size -= n;
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // 24 MiB in two regions with a hole: 12 huge frames, some of them excluded.
  GuestZone g({{0, 16 * MiB}, {20 * MiB, 8 * MiB}}, 1);
  if (!g.ok) std::abort();
  ZoneState zs(g.mem, g.host_zone());
  const uint64_t frames = zs.zone().huge_frames, ram = g.mem.ram_bytes();
  // The words: [count][index, value] pairs over the three arrays.
  const unsigned writes = unsigned(take(data, size, 1));
  const auto v = g.view();
  for (unsigned i = 0; i < writes && size >= 3; i++) {
    const uint64_t at = take(data, size, 1);
    const uint16_t val = uint16_t(take(data, size, 2));
    switch (at % 3) {
      case 0: v.children[(at / 3) % v.children_count()].atomic().store(val); break;
      case 1: v.trees[(at / 3) % v.trees_count()].atomic().store(val); break;
      default: {
        auto* words = reinterpret_cast<uint16_t*>(v.bitfield);
        words[(at / 3) % (v.children_count() * sizeof(alloc::Bitfield) / 2)] = val;
      }
    }
  }
  // The operations.
  while (size >= 2) {
    const uint8_t op = uint8_t(take(data, size, 1));
    const uint64_t arg = take(data, size, 1);
    ResizeResult r;
    switch (op % 6) {
      case 0: r = zs.shrink(arg % (frames + 2) * kHugeBytes); break;
      case 1: r = zs.grow(arg % (frames + 2) * kHugeBytes); break;
      case 2: r = zs.resize(arg % (frames + 2) * kHugeBytes); break;
      case 3: {
        std::vector<uint64_t> idx{arg % (frames + 4), (arg * 7) % (frames + 4), ~uint64_t{0}};
        (void)zs.soft_reclaim(idx);
        break;
      }
      case 4: (void)zs.install(arg % (frames + 4)); break;
      default: (void)zs.audit(); break;
    }
    if (op % 6 < 3 && r.usable_bytes > ram) std::abort();
    const ZoneStats s = zs.stats();
    if (s.usable_bytes > ram || s.installed + s.soft + s.hard + s.excluded != s.huge_frames) std::abort();
  }
  return 0;
}
