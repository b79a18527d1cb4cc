// The core loop of the allocator benchmark, freestanding so the guest kernel can run the very same
// loop (bench/alloc/alloc_bench.cpp runs it on the host). The caller supplies the clock.
#pragma once
#include <cstdint>

namespace hvmm::alloc::bench {

using Clock = uint64_t (*)(void* ctx);  // monotonic nanoseconds

struct LoopResult {
  uint64_t pairs = 0;     // successful get+put pairs
  uint64_t failures = 0;  // get() that failed (out of memory)
  uint64_t ns = 0;        // wall time of the whole loop
  uint64_t ns_per_pair() const { return pairs ? ns / pairs : 0; }
};

// `rounds` times: get `batch` blocks of 2^order frames into buf[], then put them all back.
// Alloc needs get(cpu, order) -> {ok(), frame} and put(cpu, frame, order).
template <class Alloc>
LoopResult alloc_free_loop(Alloc& a, unsigned cpu, unsigned order, uint64_t* buf, uint64_t batch, uint64_t rounds,
                           Clock now, void* clock_ctx) {
  LoopResult r;
  const uint64_t t0 = now(clock_ctx);
  for (uint64_t round = 0; round < rounds; ++round) {
    uint64_t got = 0;
    for (uint64_t i = 0; i < batch; ++i) {
      const auto res = a.get(cpu, order);
      if (!res.ok()) {
        ++r.failures;
        continue;
      }
      buf[got++] = res.frame;
    }
    for (uint64_t i = 0; i < got; ++i) a.put(cpu, buf[i], order);
    r.pairs += got;
  }
  r.ns = now(clock_ctx) - t0;
  return r;
}

}  // namespace hvmm::alloc::bench
