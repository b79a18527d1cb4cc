// Build check: every abi/ and guest-alloc/ header compiled and LINKED with the guest kernel's freestanding
// flags and no libraries. Any libc / libstdc++ / exception / RTTI dependency fails the build.
// The guest kernel provides the four functions GCC may emit calls to (see GCC -ffreestanding docs).
#include <cstddef>
#include <cstdint>

#include "abi/exit_status.hpp"
#include "abi/hyperalloc.hpp"
#include "abi/latency_histogram.hpp"
#include "abi/layout.hpp"
#include "abi/limits.hpp"
#include "abi/ports.hpp"
#include "abi/virtio.hpp"
#include "guest-alloc/llfree.hpp"
#include "guest-alloc/llfree_bench.hpp"
#include "guest-alloc/llfree_host.hpp"

extern "C" {
void* memset(void* d, int c, size_t n) {
  auto* p = static_cast<volatile unsigned char*>(d);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(c);
  return d;
}
void* memcpy(void* d, const void* s, size_t n) {
  auto* p = static_cast<volatile unsigned char*>(d);
  const auto* q = static_cast<const unsigned char*>(s);
  for (size_t i = 0; i < n; ++i) p[i] = q[i];
  return d;
}
void* memmove(void* d, const void* s, size_t n) {
  auto* p = static_cast<volatile unsigned char*>(d);
  const auto* q = static_cast<const unsigned char*>(s);
  if (p < q)
    for (size_t i = 0; i < n; ++i) p[i] = q[i];
  else
    for (size_t i = n; i-- > 0;) p[i] = q[i];
  return d;
}
int memcmp(const void* a, const void* b, size_t n) {
  const auto* p = static_cast<const unsigned char*>(a);
  const auto* q = static_cast<const unsigned char*>(b);
  for (size_t i = 0; i < n; ++i)
    if (p[i] != q[i]) return p[i] < q[i] ? -1 : 1;
  return 0;
}
}

namespace {
constexpr uint64_t kFrames = 64 * 512;
alignas(64) hvmm::alloc::Tree trees[8];
alignas(64) hvmm::alloc::Child children[64];
alignas(64) hvmm::alloc::Bitfield bitfield[64];
alignas(64) hvmm::alloc::Local locals[2];
uint64_t fake_clock(void*) { return 0; }
hvmm::abi::LatencyHistogram histogram;
}  // namespace

extern "C" [[noreturn]] void _start() {
  using namespace hvmm::alloc;
  LLFree a;
  a.init(2, kFrames, trees, children, bitfield, locals);
  a.reserve_range(0, 100);
  uint64_t sink = 0;
  for (unsigned order = 0; order <= kMaxOrder; ++order) {
    const Result r = a.get(order % 2, order);
    if (r.ok()) sink += static_cast<uint64_t>(a.put(order % 2, r.frame, order));
  }
  const SharedView v = a.shared();
  sink += host::hard_reclaim(v, 5) + host::return_huge(v, 5) + host::soft_reclaim(v, 3) + host::clear_reclaimed(v, 3);
  sink += a.check().ok() + a.free_frames() + a.free_huge() + host::shared_free_frames(v);
  uint64_t buf[4];
  sink += bench::alloc_free_loop(a, 0, 0, buf, 4, 2, fake_clock, nullptr).pairs;
  sink += hvmm::abi::hyperalloc::layout_template().size;
  sink += sizeof(hvmm::abi::virtio::VirtqDesc) + hvmm::abi::virtio::balloon::kConfigActual;
  histogram.record(sink);
  sink += histogram.summary().p99 + histogram.quantile(0.5);
  a.drain(0);
  asm volatile("" ::"r"(sink));
  for (;;) asm volatile("hlt");
}
