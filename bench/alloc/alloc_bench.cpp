// alloc_bench: get+put latency of LLFree (guest-alloc) for order 0 and order 9 with 1 and 2 threads,
// next to a plain mutex-protected free list as baseline. The loop is guest-alloc/llfree_bench.hpp,
// the same one the guest kernel can run. Usage: alloc_bench [milliseconds per cell, default 300]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "guest-alloc/llfree.hpp"
#include "guest-alloc/llfree_bench.hpp"

namespace {

using namespace hvmm::alloc;

constexpr uint64_t kFrames = (1ull << 30) >> kFrameShift;  // a 1 GiB zone
constexpr unsigned kCpus = 2;

uint64_t now_ns(void*) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};

// LLFree in caller-provided (heap) memory.
class LLFreeZone {
 public:
  LLFreeZone() {
    const Sizes s = LLFree::sizes(kFrames, kCpus);
    for (const Region& r : {s.trees, s.children, s.bitfield, s.locals})
      mem_.emplace_back(std::aligned_alloc(r.align, (r.bytes + r.align - 1) / r.align * r.align));
    if (!a_.init(kCpus, kFrames, mem_[0].get(), mem_[1].get(), mem_[2].get(), mem_[3].get())) std::abort();
  }
  Result get(unsigned cpu, unsigned order) { return a_.get(cpu, order); }
  void put(unsigned cpu, uint64_t frame, unsigned order) { a_.put(cpu, frame, order); }

 private:
  std::vector<std::unique_ptr<void, FreeDeleter>> mem_;
  LLFree a_;
};

// Baseline: one free list of blocks of a single order behind one mutex.
class MutexFreeList {
 public:
  explicit MutexFreeList(unsigned order) {
    for (uint64_t f = 0; f < kFrames; f += uint64_t{1} << order) free_.push_back(f);
  }
  struct Got {
    uint64_t frame;
    bool has;
    bool ok() const { return has; }
  };
  Got get(unsigned, unsigned) {
    std::lock_guard lock(m_);
    if (free_.empty()) return {0, false};
    const uint64_t f = free_.back();
    free_.pop_back();
    return {f, true};
  }
  void put(unsigned, uint64_t frame, unsigned) {
    std::lock_guard lock(m_);
    free_.push_back(frame);
  }

 private:
  std::mutex m_;
  std::vector<uint64_t> free_;
};

struct Cell {
  double ns_per_pair;
  uint64_t failures;
};

// Runs the shared loop on `threads` threads (cpu = thread index) for about `ms` each; reports the
// mean latency of one get+put pair as each thread sees it.
template <class Alloc>
Cell run(Alloc& a, unsigned order, unsigned threads, unsigned ms) {
  const uint64_t batch = order == 0 ? 256 : 32;
  // Calibrate rounds with a short single run so every cell takes about `ms`.
  std::vector<uint64_t> buf(batch);
  const bench::LoopResult probe = bench::alloc_free_loop(a, 0, order, buf.data(), batch, 50, now_ns, nullptr);
  const uint64_t per_round = probe.ns / 50 + 1;
  const uint64_t rounds = uint64_t{ms} * 1000000 / per_round + 1;

  std::vector<bench::LoopResult> results(threads);
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::vector<uint64_t> b(batch);
      results[t] = bench::alloc_free_loop(a, t, order, b.data(), batch, rounds, now_ns, nullptr);
    });
  for (auto& th : pool) th.join();
  double sum = 0;
  uint64_t failures = 0;
  for (const auto& r : results) {
    sum += r.pairs ? static_cast<double>(r.ns) / static_cast<double>(r.pairs) : 0;
    failures += r.failures;
  }
  return {sum / threads, failures};
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned ms = argc > 1 ? static_cast<unsigned>(std::stoul(argv[1])) : 300;
  std::printf("get+put latency, ns per pair (batches of 256 order-0 / 32 order-9 blocks), 1 GiB zone, %u ms per cell\n",
              ms);
  std::printf("%-22s %6s %8s %14s %10s\n", "allocator", "order", "threads", "ns/pair", "failures");
  for (unsigned order : {0u, 9u})
    for (unsigned threads : {1u, 2u}) {
      LLFreeZone llfree;
      const Cell l = run(llfree, order, threads, ms);
      std::printf("%-22s %6u %8u %14.1f %10llu\n", "llfree", order, threads, l.ns_per_pair,
                  static_cast<unsigned long long>(l.failures));
      MutexFreeList list(order);
      const Cell m = run(list, order, threads, ms);
      std::printf("%-22s %6u %8u %14.1f %10llu\n", "mutex free list", order, threads, m.ns_per_pair,
                  static_cast<unsigned long long>(m.failures));
    }
  return 0;
}
