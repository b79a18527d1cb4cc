// `bench-alloc`: the allocator benchmark inside the guest (the same loop as bench/alloc on the host,
// guest-alloc/llfree_bench.hpp), LLFree against a spinlock-protected free list, orders 0 and 9,
// one and two CPUs. Output lines match the host benchmark's table.
#include <atomic>

#include "guest-alloc/llfree_bench.hpp"
#include "guest/arch.hpp"
#include "guest/console.hpp"
#include "guest/mem.hpp"
#include "guest/percpu.hpp"
#include "guest/smp.hpp"
#include "guest/steps.hpp"
#include "guest/workload.hpp"

namespace guest {
namespace {
namespace ab = hvmm::alloc::bench;

constexpr uint64_t kMaxBatch = 256;
constexpr uint64_t kRounds = 4000;

uint64_t g_tsc_hz = 1;
uint64_t tsc_ns(void*) { return static_cast<uint64_t>(static_cast<unsigned __int128>(rdtsc()) * 1000'000'000 / g_tsc_hz); }

struct Got {
  uint64_t frame;
  bool okay;
  bool ok() const { return okay; }
};

// The guest's live LLFree, with the benchmark's calling convention.
struct LLFreeAdapter {
  Got get(unsigned, unsigned order) {
    uint64_t f = 0;
    bool ok = mem_alloc(order, f);
    return {f, ok};
  }
  void put(unsigned, uint64_t frame, unsigned order) { mem_free(frame, order); }
};

// Baseline: one stack of free blocks of one order behind a test-and-set spinlock (the guest has no
// sleeping mutex: nothing to sleep on without interrupts).
struct SpinFreeList {
  static constexpr uint64_t kCap = 2 * kMaxBatch * kMaxCpus;
  uint64_t frames[kCap];
  uint64_t count = 0;
  uint32_t lock = 0;
  void acquire() {
    std::atomic_ref<uint32_t> l(lock);
    while (l.exchange(1, std::memory_order_acquire)) cpu_relax();
  }
  void release() { std::atomic_ref<uint32_t>(lock).store(0, std::memory_order_release); }
  Got get(unsigned, unsigned) {
    acquire();
    Got g = count ? Got{frames[--count], true} : Got{0, false};
    release();
    return g;
  }
  void put(unsigned, uint64_t frame, unsigned) {
    acquire();
    if (count < kCap) frames[count++] = frame;
    release();
  }
};

SpinFreeList g_list;
uint64_t g_bufs[kMaxCpus][kMaxBatch];

struct Cell {
  bool spin;
  unsigned order, threads;
  uint64_t batch;
  uint64_t ns_sum, pairs_sum, failures;
};

void job_cell(unsigned cpu, unsigned, void* arg) {
  auto* c = static_cast<Cell*>(arg);
  if (cpu >= c->threads) return;
  ab::LoopResult r;
  if (c->spin) {
    r = ab::alloc_free_loop(g_list, cpu, c->order, g_bufs[cpu], c->batch, kRounds / (c->order ? 8 : 1), tsc_ns, nullptr);
  } else {
    LLFreeAdapter a;
    r = ab::alloc_free_loop(a, cpu, c->order, g_bufs[cpu], c->batch, kRounds / (c->order ? 8 : 1), tsc_ns, nullptr);
  }
  std::atomic_ref<uint64_t>(c->ns_sum).fetch_add(r.pairs ? r.ns * 1000 / r.pairs : 0);  // ns/1000 per pair
  std::atomic_ref<uint64_t>(c->pairs_sum).fetch_add(r.pairs);
  std::atomic_ref<uint64_t>(c->failures).fetch_add(r.failures);
}

void run_cell(bool spin, unsigned order, unsigned threads) {
  Cell c{spin, order, threads, order == 0 ? kMaxBatch : 32, 0, 0, 0};
  if (spin) {  // fill the list from the real allocator, give the blocks back afterwards
    g_list.count = 0;
    for (uint64_t i = 0; i < c.batch * threads; i++) {
      uint64_t f;
      if (!mem_alloc(order, f)) break;
      g_list.frames[g_list.count++] = f;
    }
  }
  run_on_all(job_cell, &c);
  if (spin)
    while (g_list.count) mem_free(g_list.frames[--g_list.count], order);
  uint64_t milli_ns = c.ns_sum / threads;  // mean over threads, in 1/1000 ns
  kprintf("%-22s %6u %8u %10lu.%lu %10lu\n", spin ? "spinlock free list" : "llfree", order, threads, milli_ns / 1000,
          milli_ns % 1000 / 100, c.failures);
}

uint32_t step_bench_alloc(const StepArgs& a) {
  if (a.argc != 1) return step_usage(a, "bench-alloc");
  if (a.dry) return 0;
  g_tsc_hz = a.boot->tsc_hz ? a.boot->tsc_hz : 1;
  kprintf("guest get+put latency, ns per pair (batches of 256 order-0 / 32 order-9 blocks)\n");
  kprintf("%-22s %6s %8s %12s %10s\n", "allocator", "order", "threads", "ns/pair", "failures");
  unsigned max_threads = cpu_count() < 2 ? cpu_count() : 2;
  for (unsigned order : {0u, 9u})
    for (unsigned threads = 1; threads <= max_threads; threads++) {
      run_cell(false, order, threads);
      run_cell(true, order, threads);
    }
  return 0;
}

constexpr StepDef kBench[] = {{"bench-alloc", "bench-alloc", step_bench_alloc}};

}  // namespace

extern const StepTable kBenchSteps = step_table(kBench);

}  // namespace guest
