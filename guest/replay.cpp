// `replay TIME-SCALE MEM-SCALE [SAMPLE]`: drives guest memory with a recorded workload's demand (the
// --trace initrd, abi/trace.hpp; bench/compiling/TRACE_FORMAT.md). Processes are 4 KiB allocations,
// each page touched, held from the process's start to its end; the page cache is a pool of 4 KiB
// allocations that follows the trace's cache level, allocated in time between the processes' (which
// fragments memory) and shrunk by freeing randomly chosen pages (`clean` deletes objects written all
// over the build). Times are divided by TIME-SCALE, sizes multiplied by MEM-SCALE (decimals allowed).
//
// Every workload CPU replays: process slot s belongs to CPU s % ncpus, each CPU holds 1/ncpus of the
// cache. CPU 0 also prints the phase marks and, every SAMPLE (default 500ms), the "ideal" curve: the
// memory in use (what the guest used before the replay plus what the replay holds), stamped with the
// host's clock (the `now` hypercall, CLOCK_MONOTONIC) so the host can line it up with its RSS samples:
//
//   replay: start host_ns=N events=E time_scale=T mem_scale=M
//   replay: phase build host_ns=N t_ms=0
//   replay: sample host_ns=N t_ms=T inuse=B replay=B free=B
//   replay: done host_ns=N wall_ms=W max_lag_ms=L oom_pages=P
//
// A page the allocator cannot give is counted (oom_pages) and the replay goes on; the step fails at
// the end if any was missing.
#include <atomic>

#include "abi/trace.hpp"
#include "guest/console.hpp"
#include "guest/frame_list.hpp"
#include "guest/hypercall.hpp"
#include "guest/mem.hpp"
#include "guest/parse.hpp"
#include "guest/percpu.hpp"
#include "guest/replay_trace.hpp"
#include "guest/smp.hpp"
#include "guest/steps.hpp"
#include "guest/workload.hpp"

namespace guest {
namespace {
namespace tr = hvmm::abi::trace;

// The page-cache pool of one CPU: frame numbers in 4 MiB chunks (order-10 blocks) so that any page
// can be taken out in O(1) (swap with the last).
constexpr uint64_t kChunkEntries = (kPageSize << 10) / sizeof(uint64_t);
constexpr unsigned kMaxChunks = 256;  // 128 Mi pages = 512 GiB per CPU
struct CachePool {
  uint64_t* chunks[kMaxChunks];
  uint64_t count;
  uint64_t rng;
};

struct Replay {
  TraceView trace;
  uint64_t time_milli, mem_milli;  // scales x 1000
  uint64_t sample_ns;
  uint64_t start_ns;
  uint64_t base_used;              // bytes in use before the replay
  uint64_t pages;                  // pages the replay holds (all CPUs)
  uint64_t oom_pages;
  uint64_t max_lag_ns;
};

FrameList g_procs[tr::kMaxSlots];
uint64_t g_proc_pages[tr::kMaxSlots];
CachePool g_cache[kMaxCpus];

void add_pages(Replay& r, int64_t d) { std::atomic_ref<uint64_t>(r.pages).fetch_add(static_cast<uint64_t>(d), std::memory_order_relaxed); }

void touch(uint64_t frame) { *static_cast<volatile uint64_t*>(frame_ptr(frame)) = frame; }

uint64_t scaled_pages(const Replay& r, uint32_t kib) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(kib) * r.mem_milli / 1000 + 3) / 4);
}

uint64_t& pool_at(CachePool& p, uint64_t i) { return p.chunks[i / kChunkEntries][i % kChunkEntries]; }

bool pool_push(CachePool& p, uint64_t frame) {
  const uint64_t c = p.count / kChunkEntries;
  if (p.count % kChunkEntries == 0) {
    uint64_t block;
    if (c >= kMaxChunks || !mem_alloc(10, block)) return false;
    p.chunks[c] = static_cast<uint64_t*>(frame_ptr(block));
  }
  pool_at(p, p.count++) = frame;
  return true;
}

// Takes a pseudo-random page out of the pool.
uint64_t pool_take(CachePool& p) {
  p.rng ^= p.rng << 13, p.rng ^= p.rng >> 7, p.rng ^= p.rng << 17;  // xorshift64
  const uint64_t i = p.rng % p.count;
  const uint64_t frame = pool_at(p, i);
  pool_at(p, i) = pool_at(p, p.count - 1);
  p.count--;
  if (p.count % kChunkEntries == 0) mem_free(reinterpret_cast<uintptr_t>(p.chunks[p.count / kChunkEntries]) / kPageSize, 10);
  return frame;
}

void set_cache(Replay& r, CachePool& p, uint64_t want) {
  int64_t delta = 0;
  while (p.count < want) {
    uint64_t f;
    if (!mem_alloc(0, f)) {
      std::atomic_ref<uint64_t>(r.oom_pages).fetch_add(want - p.count, std::memory_order_relaxed);
      break;
    }
    touch(f);
    if (!pool_push(p, f)) {
      mem_free(f, 0);
      std::atomic_ref<uint64_t>(r.oom_pages).fetch_add(want - p.count, std::memory_order_relaxed);
      break;
    }
    delta++;
  }
  while (p.count > want) {
    mem_free(pool_take(p), 0);
    delta--;
  }
  add_pages(r, delta);
}

void proc_start(Replay& r, uint32_t slot, uint32_t kib) {
  const uint64_t want = scaled_pages(r, kib);
  uint64_t got = 0;
  for (; got < want; got++) {
    uint64_t f;
    if (!mem_alloc(0, f)) break;
    touch(f);
    if (!g_procs[slot].push(f)) {
      mem_free(f, 0);
      break;
    }
  }
  if (got < want) std::atomic_ref<uint64_t>(r.oom_pages).fetch_add(want - got, std::memory_order_relaxed);
  g_proc_pages[slot] = got;
  add_pages(r, static_cast<int64_t>(got));
}

void proc_end(Replay& r, uint32_t slot) {
  g_procs[slot].release(0);
  add_pages(r, -static_cast<int64_t>(g_proc_pages[slot]));
  g_proc_pages[slot] = 0;
}

uint64_t trace_ms_at(const Replay& r, uint64_t now) {
  return now > r.start_ns ? static_cast<uint64_t>((unsigned __int128)(now - r.start_ns) * r.time_milli / 1000'000'000) : 0;
}

void print_sample(const Replay& r, uint64_t now) {
  const uint64_t held = std::atomic_ref<uint64_t>(const_cast<uint64_t&>(r.pages)).load(std::memory_order_relaxed) * kPageSize;
  kprintf("replay: sample host_ns=%lu t_ms=%lu inuse=%lu replay=%lu free=%lu\n", now, trace_ms_at(r, now),
          r.base_used + held, held, mem_free_bytes());
}

// Sleeps until host time `target`; CPU 0 prints samples on the way.
void wait_until(const Replay& r, uint64_t target, bool sampler, uint64_t& next_sample) {
  for (;;) {
    uint64_t now = host_now_ns();
    if (sampler && now >= next_sample) {
      print_sample(r, now);
      next_sample = now + r.sample_ns;
    }
    if (now >= target) return;
    const uint64_t until = sampler && next_sample < target ? next_sample : target;
    sleep_ns(until - now);
  }
}

void job_replay(unsigned cpu, unsigned ncpus, void* arg) {
  auto& r = *static_cast<Replay*>(arg);
  CachePool& pool = g_cache[cpu];
  pool.count = 0;
  pool.rng = 0x9E3779B97F4A7C15ull ^ (cpu + 1);
  const bool sampler = cpu == 0;
  uint64_t next_sample = r.start_ns, lag = 0;
  for (uint32_t i = 0; i < r.trace.count; i++) {
    const tr::Event& e = r.trace.events[i];
    const auto kind = static_cast<tr::Kind>(e.kind);
    const bool mine = kind == tr::Kind::kCache || (kind == tr::Kind::kPhase ? cpu == 0 : e.slot % ncpus == cpu);
    if (!mine) continue;
    const uint64_t target = r.start_ns + static_cast<uint64_t>((unsigned __int128)e.t_ms * 1000'000'000 / r.time_milli);
    wait_until(r, target, sampler, next_sample);
    const uint64_t now = host_now_ns();
    if (now - target > lag) lag = now - target;
    switch (kind) {
      case tr::Kind::kProcStart: proc_start(r, e.slot, e.kib); break;
      case tr::Kind::kProcEnd: proc_end(r, e.slot); break;
      case tr::Kind::kCache: {
        const uint64_t total = scaled_pages(r, e.kib);
        set_cache(r, pool, total / ncpus + (cpu < total % ncpus ? 1 : 0));
        break;
      }
      case tr::Kind::kPhase:
        kprintf("replay: phase %s host_ns=%lu t_ms=%u\n", tr::kPhaseNames[e.arg], now, e.t_ms);
        print_sample(r, now);
        break;
    }
  }
  // Whatever the trace left (a process without end is impossible after validation; the last cache level).
  set_cache(r, pool, 0);
  for (uint32_t s = cpu; s < r.trace.slots; s += ncpus)
    if (g_proc_pages[s]) proc_end(r, s);
  uint64_t& max = r.max_lag_ns;
  std::atomic_ref<uint64_t> m(max);
  for (uint64_t cur = m.load(); lag > cur && !m.compare_exchange_weak(cur, lag);) {
  }
}

// "6", "0.5", "2.25" -> x 1000 (three decimals at most), within [1, max_milli].
bool parse_milli(const char* s, uint64_t max_milli, uint64_t& out) {
  uint64_t v = 0, frac = 0, digits = 0;
  bool dot = false, any = false;
  for (; *s; s++) {
    if (*s == '.' && !dot) {
      dot = true;
      continue;
    }
    if (*s < '0' || *s > '9') return false;
    any = true;
    if (dot) {
      if (++digits > 3) return false;
      frac = frac * 10 + uint64_t(*s - '0');
    } else if ((v = v * 10 + uint64_t(*s - '0')) > max_milli) {
      return false;
    }
  }
  while (digits++ < 3) frac *= 10;
  out = v * 1000 + frac;
  return any && out >= 1 && out <= max_milli;
}

uint32_t step_replay(const StepArgs& a) {
  constexpr const char* kUsage = "replay <time-scale: 6, 0.5> <mem-scale: 8, 0.25> [<sample period: 500ms>]";
  uint64_t time_milli, mem_milli, sample_ns = 500'000'000;
  if (a.argc < 3 || a.argc > 4 || !parse_milli(a.argv[1], 1000'000, time_milli) ||
      !parse_milli(a.argv[2], 1000'000, mem_milli) || (a.argc == 4 && !parse_duration_ns(a.argv[3], sample_ns)) ||
      sample_ns < 10'000'000)
    return step_usage(a, kUsage);
  static Replay r;
  const char* why = nullptr;
  if (!trace_open(*a.boot, r.trace, why)) {
    kprintf("replay: %s\n", why);
    return kExitBadWorkload;
  }
  if (a.dry) return 0;
  r.time_milli = time_milli;
  r.mem_milli = mem_milli;
  r.sample_ns = sample_ns;
  r.pages = r.oom_pages = r.max_lag_ns = 0;
  for (uint32_t s = 0; s < r.trace.slots; s++) g_proc_pages[s] = 0;
  r.base_used = mem_used_bytes();
  r.start_ns = host_now_ns();
  kprintf("replay: start host_ns=%lu events=%u slots=%u duration_ms=%u time_scale=%s mem_scale=%s base_used=%lu\n",
          r.start_ns, r.trace.count, r.trace.slots, r.trace.header->duration_ms, a.argv[1], a.argv[2], r.base_used);
  run_on_all(job_replay, &r);
  const uint64_t end = host_now_ns();
  print_sample(r, end);
  kprintf("replay: done host_ns=%lu wall_ms=%lu max_lag_ms=%lu oom_pages=%lu\n", end, (end - r.start_ns) / 1000'000,
          r.max_lag_ns / 1000'000, r.oom_pages);
  if (r.oom_pages) {
    kprintf("replay: FAILED: %lu pages could not be allocated (mem-scale too large for this VM?)\n", r.oom_pages);
    return kExitStepFailed;
  }
  return 0;
}

constexpr StepDef kReplay[] = {{"replay", "replay <time-scale> <mem-scale> [<sample>]", step_replay}};

}  // namespace

extern const StepTable kReplaySteps = step_table(kReplay);

}  // namespace guest
