// Memory workload steps, spread over all vCPUs: alloc, alloc-huge, free, verify, stats.
#include <atomic>

#include "guest/arch.hpp"
#include "guest/console.hpp"
#include "guest/mem.hpp"
#include "guest/parse.hpp"
#include "guest/regions.hpp"
#include "guest/smp.hpp"
#include "guest/steps.hpp"
#include "guest/workload.hpp"

namespace guest {
namespace {

struct Job {
  MemRegion* region;
  uint64_t blocks;         // total wanted; 0 = until out of memory
  uint64_t got;            // blocks allocated, summed over CPUs
  uint64_t bad;            // blocks that failed verification
  MemRegion* regions[kMaxRegions];
  unsigned region_count;
};

uint64_t share(uint64_t total, unsigned cpu, unsigned ncpus) { return total / ncpus + (cpu < total % ncpus ? 1 : 0); }

void job_fill(unsigned cpu, unsigned ncpus, void* arg) {
  auto* j = static_cast<Job*>(arg);
  uint64_t want = j->blocks ? share(j->blocks, cpu, ncpus) : 0;
  uint64_t got = (j->blocks && want == 0) ? 0 : region_fill(*j->region, want);
  std::atomic_ref<uint64_t>(j->got).fetch_add(got);
}
void job_release(unsigned, unsigned, void* arg) {
  auto* j = static_cast<Job*>(arg);
  for (unsigned i = 0; i < j->region_count; i++) region_release(*j->regions[i]);
}
void job_verify(unsigned, unsigned, void* arg) {
  auto* j = static_cast<Job*>(arg);
  uint64_t bad = 0;
  for (unsigned i = 0; i < j->region_count; i++) bad += region_verify(*j->regions[i]);
  std::atomic_ref<uint64_t>(j->bad).fetch_add(bad);
}

// Elapsed time since `t0` as "<ms>.<us> ms" pieces.
struct Elapsed {
  uint64_t us;
};
Elapsed since(uint64_t t0, const BootInfo& b) {
  uint64_t ticks = rdtsc() - t0;
  return {b.tsc_hz ? ticks * 1000'000 / b.tsc_hz : 0};
}
uint64_t mib_per_s(uint64_t bytes, Elapsed e) { return e.us ? bytes / e.us * 1000'000 / (1 << 20) : 0; }

void release(MemRegion** regions, unsigned n) {
  Job j{};
  for (unsigned i = 0; i < n; i++) j.regions[j.region_count++] = regions[i];
  run_on_all(job_release, &j);
  for (unsigned i = 0; i < n; i++) regions[i]->live = false;
}

// "2G", "512M", or "25%" of guest RAM (rounded down to whole blocks).
bool parse_size_or_percent(const char* s, uint64_t ram, uint64_t block, uint64_t& out) {
  size_t n = 0;
  while (s[n]) n++;
  if (n > 1 && s[n - 1] == '%') {
    char num[24];
    if (n - 1 >= sizeof num) return false;
    for (size_t i = 0; i + 1 < n; i++) num[i] = s[i];
    num[n - 1] = 0;
    uint64_t pct;
    if (!parse_uint(num, pct) || pct > 100) return false;
    out = ram / 100 * pct / block * block;
    return true;
  }
  return parse_size(s, out);
}

uint32_t do_alloc(const StepArgs& a, unsigned order, const char* usage) {
  uint64_t bytes = 0;
  const uint64_t block = kPageSize << order;
  bool all = a.argc == 2 && str_eq(a.argv[1], "all");
  if (a.argc != 2 || (!all && (!parse_size_or_percent(a.argv[1], a.boot->ram_bytes, block, bytes) || bytes == 0)))
    return step_usage(a, usage);
  if (!all && bytes % block) {
    kprintf("workload: %s %s: not a multiple of the %lu KiB block size\n", a.argv[0], a.argv[1], block >> 10);
    return kExitBadWorkload;
  }
  if (a.dry) return 0;
  MemRegion* r = new_region(order);
  if (!r) {
    kprintf("%s: too many live regions (%u)\n", a.argv[0], kMaxRegions);
    return kExitStepFailed;
  }
  Job j{};
  j.region = r;
  j.blocks = bytes / block;
  uint64_t t0 = rdtsc();
  run_on_all(job_fill, &j);
  Elapsed e = since(t0, *a.boot);
  uint64_t got = j.got * block;
  if (!all && j.got < j.blocks) {
    kprintf("%s %s: out of memory after %lu of %lu bytes\n", a.argv[0], a.argv[1], got, bytes);
    release(&r, 1);
    return kExitStepFailed;
  }
  kprintf("%s: %lu bytes in %lu KiB blocks, %lu.%03lu ms, %lu MiB/s\n", a.argv[0], got, block >> 10, e.us / 1000,
          e.us % 1000, mib_per_s(got, e));
  return 0;
}

uint32_t step_alloc(const StepArgs& a) { return do_alloc(a, 0, "alloc <size: 2G, 512M, 25%>|all"); }
uint32_t step_alloc_huge(const StepArgs& a) { return do_alloc(a, kHugeOrder, "alloc-huge <size: multiple of 2M, or 25%>|all"); }

uint32_t step_free(const StepArgs& a) {
  bool all = a.argc == 2 && str_eq(a.argv[1], "all");
  if (a.argc > 2 || (a.argc == 2 && !all)) return step_usage(a, "free [all]");
  if (a.dry) return 0;
  MemRegion* regions[kMaxRegions];
  unsigned n = 0;
  if (all) n = live_regions(regions);
  else if (MemRegion* r = newest_region()) regions[n++] = r;
  if (n == 0) {
    kprintf("free: nothing allocated\n");
    return kExitStepFailed;
  }
  uint64_t t0 = rdtsc();
  release(regions, n);
  Elapsed e = since(t0, *a.boot);
  kprintf("free: %u region(s), %lu.%03lu ms\n", n, e.us / 1000, e.us % 1000);
  return 0;
}

uint32_t step_verify(const StepArgs& a) {
  if (a.argc != 1) return step_usage(a, "verify");
  if (a.dry) return 0;
  Job j{};
  j.region_count = live_regions(j.regions);
  uint64_t blocks = 0;
  for (unsigned i = 0; i < j.region_count; i++) blocks += region_blocks(*j.regions[i]);
  uint64_t t0 = rdtsc();
  run_on_all(job_verify, &j);
  Elapsed e = since(t0, *a.boot);
  if (j.bad) {
    kprintf("verify: FAILED: %lu of %lu blocks corrupted\n", j.bad, blocks);
    return kExitStepFailed;
  }
  kprintf("verify: ok, %lu blocks in %u region(s), %lu.%03lu ms\n", blocks, j.region_count, e.us / 1000, e.us % 1000);
  return 0;
}

uint32_t step_stats(const StepArgs& a) {
  if (a.argc != 1) return step_usage(a, "stats");
  if (a.dry) return 0;
  uint64_t free = mem_free_bytes();
  // Free huge frames with the `reclaimed` bit set (by the host with HyperAlloc, by us without).
  uint64_t flagged = 0;
  for (uint64_t c = 0; !mem_is_buddy() && c < allocator().shared().children_count(); c++) {
    auto v = allocator().shared();
    uint16_t w = v.children[c].atomic().load(std::memory_order_relaxed);
    flagged += hvmm::alloc::Child::wholly_free(w) && hvmm::alloc::Child::reclaimed_of(w);
  }
  kprintf("free=%lu used=%lu huge_free=%lu huge_free_flagged=%lu\n", free,
          a.boot->ram_bytes > free ? a.boot->ram_bytes - free : 0, mem_free_huge(), flagged);
  if (uint64_t n = mem_installs(); n && a.boot->tsc_hz) {
    uint64_t ns = mem_install_cycles() / n * 1000'000 / (a.boot->tsc_hz / 1000);
    kprintf("installs=%lu mean_install_us=%lu.%03lu\n", n, ns / 1000, ns % 1000);
    // The guest's side of the host's install_latency_us (status): exit to resume, per install.
    const auto lat = mem_install_latency().summary();
    const uint64_t per_ms = a.boot->tsc_hz / 1000;
    auto ns_of = [&](uint64_t cycles) { return cycles * 1000'000 / per_ms; };
    const uint64_t p50 = ns_of(lat.p50), p99 = ns_of(lat.p99), max = ns_of(lat.max);
    kprintf("install_latency_us p50=%lu.%03lu p99=%lu.%03lu max=%lu.%03lu\n", p50 / 1000, p50 % 1000, p99 / 1000,
            p99 % 1000, max / 1000, max % 1000);
  }
  return 0;
}

constexpr StepDef kMem[] = {
    {"alloc", "alloc <size>|<n>%|all", step_alloc},
    {"alloc-huge", "alloc-huge <size>|all", step_alloc_huge},
    {"free", "free [all]", step_free},
    {"verify", "verify", step_verify},
    {"stats", "stats", step_stats},
};

}  // namespace

extern const StepTable kMemSteps = step_table(kMem);

}  // namespace guest
