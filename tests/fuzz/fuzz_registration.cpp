// libFuzzer target: the HyperAlloc registration validator (reclaim/registration.*) on arbitrary
// records and protected ranges. Whatever the record: refused with a reason, or a zone whose shared
// arrays lie wholly in guest RAM, do not overlap each other or a protected range.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "abi/hyperalloc.hpp"
#include "memory/guest_memory.hpp"
#include "reclaim/registration.hpp"

using namespace hvmm;
using namespace hvmm::reclaim;

namespace {
// 8 MiB, a hole, 4 MiB: a zone may cover the hole (reserved by the guest), arrays may not.
GuestMemory::RegionSpec kRegions[] = {{0, 8u << 20}, {12u << 20, 4u << 20}};
GuestMemory& memory() {
  static GuestMemory mem(kRegions);
  return mem;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  abi::hyperalloc::Registration r = abi::hyperalloc::layout_template();
  // Without this, most inputs die at the magic/layout check: the first byte picks whether the
  // fuzzer's bytes replace the template's header too.
  const bool raw = size && (data[0] & 1);
  if (size) data++, size--;
  const size_t head = raw ? 0 : offsetof(abi::hyperalloc::Registration, first_pfn);
  const size_t n = std::min(size, sizeof r - head);
  std::memcpy(reinterpret_cast<uint8_t*>(&r) + head, data, n);
  data += n, size -= n;
  std::vector<GpaRange> prot;
  while (size >= 16 && prot.size() < 4) {
    GpaRange g;
    std::memcpy(&g.gpa, data, 8);
    std::memcpy(&g.len, data + 8, 8);
    prot.push_back(g);
    data += 16, size -= 16;
  }
  GuestMemory& mem = memory();
  auto res = validate_registration(mem, r, prot);
  if (!res) {
    if (res.error.empty()) std::abort();
    return 0;
  }
  const HostZone& z = *res.zone;
  for (const GpaRange* a : {&z.trees, &z.children, &z.bitfield}) {
    if (!mem.contains(a->gpa, a->len)) std::abort();
    for (const GpaRange& p : prot)
      if (p.len && a->overlaps(p)) std::abort();
  }
  if (z.trees.overlaps(z.children) || z.trees.overlaps(z.bitfield) || z.children.overlaps(z.bitfield)) std::abort();
  return 0;
}
