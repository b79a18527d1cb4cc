// The artifact's interference workloads, run on every workload vCPU while the host resizes the VM:
//   `stream DURATION [SIZE]`  STREAM copy (c[i] = a[i]) over arrays of SIZE bytes in all (default 1G,
//                             split evenly between the CPUs, half source, half destination);
//   `ftq DURATION [QUANTUM]`  fixed time quantum: work units counted per quantum of QUANTUM (default
//                             1ms) of TSC time.
// Both report with timestamps relative to the step's start line, which the host (bench/interference/)
// uses to line its resize moments up with the samples. STREAM prints while it runs (one line per CPU
// and pass, a few per second: negligible next to the copying); FTQ only after it has finished (its
// samples are work per quantum, and a console exit in the middle would show up as lost work).
#include <atomic>

#include "guest/arch.hpp"
#include "guest/console.hpp"
#include "guest/frame_list.hpp"
#include "guest/mem.hpp"
#include "guest/parse.hpp"
#include "guest/smp.hpp"
#include "guest/steps.hpp"
#include "guest/workload.hpp"

namespace guest {
namespace {

constexpr uint64_t kHugeBytes = kPageSize << kHugeOrder;
constexpr uint64_t kMaxStreamBytes = uint64_t{64} << 30;
constexpr uint64_t kMaxDurationNs = uint64_t{3600} * 1000'000'000;

uint64_t ns_to_ticks(uint64_t ns, uint64_t hz) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * hz / 1000'000'000);
}
uint64_t ticks_to_us(uint64_t ticks, uint64_t hz) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(ticks) * 1000'000 / hz);
}

// What the CPUs share: the common start and end, and what they report back.
struct Run {
  const char* name;
  uint64_t hz;
  uint64_t length;   // TSC ticks from start to end
  uint64_t arg;      // STREAM: 2 MiB block pairs per CPU; FTQ: quantum in TSC ticks
  uint64_t ready;    // CPUs done setting up (atomic_ref)
  uint64_t t0;       // common start (TSC; 0 until every CPU is ready; atomic_ref)
  uint64_t end;      // common end (TSC), written before t0
  uint64_t failed;   // CPUs that could not set up (atomic_ref)
  uint64_t samples;  // passes / quanta, all CPUs (atomic_ref)
};

void count(uint64_t& field, uint64_t n) { std::atomic_ref<uint64_t>(field).fetch_add(n, std::memory_order_relaxed); }

// Parses "DURATION [SIZE-or-QUANTUM]"; the second argument is optional.
bool parse_args(const StepArgs& a, uint64_t& duration_ns, uint64_t& second, bool second_is_size) {
  if (a.argc < 2 || a.argc > 3 || !parse_duration_ns(a.argv[1], duration_ns) || duration_ns == 0 ||
      duration_ns > kMaxDurationNs)
    return false;
  if (a.argc == 3) return second_is_size ? parse_size(a.argv[2], second) : parse_duration_ns(a.argv[2], second);
  return true;
}

// Every CPU sets up first (allocating and touching its memory takes a while and varies), then all
// start at once, so that their passes overlap as STREAM's threads do. The last CPU to get ready sets
// the clock and prints "<name>: running", the host's time zero for the samples.
void start_together(Run& r, unsigned ncpus) {
  std::atomic_ref<uint64_t> t0(r.t0);
  if (std::atomic_ref<uint64_t>(r.ready).fetch_add(1, std::memory_order_acq_rel) + 1 == ncpus) {
    uint64_t now = rdtsc();
    r.end = now + r.length;
    t0.store(now, std::memory_order_release);
    kprintf("%s: running\n", r.name);
  } else {
    while (t0.load(std::memory_order_acquire) == 0) cpu_relax();
  }
}

void fill_zero(void* p, uint64_t bytes) {
  auto* w = static_cast<uint64_t*>(p);
  for (uint64_t i = 0; i < bytes / 8; i++) w[i] = 0;
}

// --- STREAM copy ---

// The copy kernel on one pair of 2 MiB blocks, out of line so that every block runs the same code
// (the guest is built for baseline x86-64: the compiler vectorises with SSE2).
__attribute__((noinline)) void copy_block(uint64_t* __restrict dst, const uint64_t* __restrict src) {
  for (uint64_t i = 0; i < kHugeBytes / 8; i++) dst[i] = src[i];
}

void job_stream(unsigned cpu, unsigned ncpus, void* arg) {
  auto* r = static_cast<Run*>(arg);
  // Source and destination blocks alternate in one list: a0 c0 a1 c1 ...
  FrameList blocks(true);
  bool ok = true;
  for (uint64_t i = 0; i < 2 * r->arg && ok; i++) {
    uint64_t f;
    ok = mem_alloc(kHugeOrder, f);
    if (ok && !blocks.push(f)) {
      mem_free(f, kHugeOrder);
      ok = false;
    }
    if (ok) {  // STREAM initialises its arrays before it measures
      auto* p = static_cast<uint64_t*>(frame_ptr(f));
      for (uint64_t k = 0; k < kHugeBytes / 8; k++) p[k] = k ^ cpu;
    }
  }
  if (!ok) {
    kprintf("stream: cpu=%u out of memory for its %lu MiB of arrays\n", cpu, 2 * r->arg * kHugeBytes >> 20);
    count(r->failed, 1);
  }
  start_together(*r, ncpus);
  if (ok) {
    const uint64_t bytes = 2 * r->arg * kHugeBytes;  // STREAM counts what copy reads plus what it writes
    for (uint64_t now = rdtsc(); now < r->end;) {
      uint64_t begin = now;
      uint64_t* dst = nullptr;
      blocks.for_each([&](uint64_t f) {  // newest first: c_n, a_n, c_n-1, ...
        if (!dst) {
          dst = static_cast<uint64_t*>(frame_ptr(f));
        } else {
          copy_block(dst, static_cast<const uint64_t*>(frame_ptr(f)));
          dst = nullptr;
        }
      });
      now = rdtsc();
      kprintf("stream: cpu=%u t_us=%lu bytes=%lu us=%lu\n", cpu, ticks_to_us(now - r->t0, r->hz), bytes,
              ticks_to_us(now - begin, r->hz));
      count(r->samples, 1);
    }
  }
  blocks.release(kHugeOrder);
}

uint32_t step_stream(const StepArgs& a) {
  constexpr const char* kUsage = "stream <duration: 60s> [<array bytes in all: 1G>]";
  uint64_t duration_ns = 0, size = uint64_t{1} << 30;
  if (!parse_args(a, duration_ns, size, true)) return step_usage(a, kUsage);
  const unsigned cpus = cpu_count();
  const uint64_t pairs = size / (2 * kHugeBytes) / (cpus ? cpus : 1);
  // Whether the arrays fit is known only when they are allocated: with virtio-mem most of the memory
  // is plugged after boot. A CPU that runs out reports it and the step fails.
  if (pairs == 0 || size > kMaxStreamBytes) {
    kprintf("workload: stream %s: needs at least 4 MiB per CPU and at most %lu GiB\n", a.argc == 3 ? a.argv[2] : "1G",
            kMaxStreamBytes >> 30);
    return kExitBadWorkload;
  }
  if (a.dry) return 0;
  const uint64_t hz = a.boot->tsc_hz ? a.boot->tsc_hz : 1;
  Run r{"stream", hz, ns_to_ticks(duration_ns, hz), pairs, 0, 0, 0, 0, 0};
  kprintf("stream: setup cpus=%u bytes_per_cpu=%lu duration_ms=%lu\n", cpus, 2 * pairs * kHugeBytes,
          duration_ns / 1000'000);
  run_on_all(job_stream, &r);
  kprintf("stream: done passes=%lu failed_cpus=%lu\n", r.samples, r.failed);
  return r.failed ? kExitStepFailed : 0;
}

// --- FTQ ---

constexpr uint64_t kMaxQuanta = 1 << 20;  // per CPU; 17 min at 1 ms

// One work unit: a short dependent chain the compiler cannot fold away.
__attribute__((noinline)) uint64_t work_unit(uint64_t x) {
  for (int i = 0; i < 32; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return x;
}

void job_ftq(unsigned cpu, unsigned ncpus, void* arg) {
  auto* r = static_cast<Run*>(arg);
  const uint64_t quanta = r->length / r->arg;
  // The counts, 4 bytes each, in 4 KiB frames of a list (no contiguous buffer needed).
  FrameList pages(true);
  const uint64_t per_page = kPageSize / 4;
  bool ok = true;
  for (uint64_t i = 0; i < (quanta + per_page - 1) / per_page && ok; i++) {
    uint64_t f;
    ok = mem_alloc(0, f);
    if (ok && !pages.push(f)) {
      mem_free(f, 0);
      ok = false;
    }
    if (ok) fill_zero(frame_ptr(f), kPageSize);  // touched before the clock starts
  }
  // The list hands its pages out newest first; an index page puts them in order for the loop.
  uint64_t index_page = 0;
  ok = ok && mem_alloc(0, index_page);
  if (!ok) {
    count(r->failed, 1);
    start_together(*r, ncpus);  // the others wait for every CPU
    pages.release(0);
    return;
  }
  const uint64_t npages = pages.size();
  auto* order = static_cast<uint32_t**>(frame_ptr(index_page));
  uint64_t k = npages;
  pages.for_each([&](uint64_t f) {
    if (k > 0 && k <= kPageSize / sizeof(void*)) order[k - 1] = static_cast<uint32_t*>(frame_ptr(f));
    k--;
  });
  uint64_t x = cpu, q = 0;
  start_together(*r, ncpus);
  for (uint64_t boundary = r->t0 + r->arg; q < quanta; q++, boundary += r->arg) {
    uint32_t n = 0;
    while (rdtsc() < boundary) {
      x = work_unit(x);
      n++;
    }
    order[q / per_page][q % per_page] = n;
  }
  // Print 16 counts a line: "ftq: cpu=C q=FIRST: n n n ...".
  char line[16 * 11 + 48];
  for (uint64_t first = 0; first < q; first += 16) {
    size_t len = ksnprintf(line, sizeof line, "ftq: cpu=%u q=%lu:", cpu, first);
    for (uint64_t i = first; i < q && i < first + 16; i++)
      len += ksnprintf(line + len, sizeof line - len, " %u", order[i / per_page][i % per_page]);
    kprintf("%s\n", line);
  }
  asm volatile("" ::"r"(x));  // the work's result is used: the loop is not dead code
  count(r->samples, q);
  mem_free(index_page, 0);
  pages.release(0);
}

uint32_t step_ftq(const StepArgs& a) {
  constexpr const char* kUsage = "ftq <duration: 60s> [<quantum: 1ms>]";
  uint64_t duration_ns = 0, quantum_ns = 1000'000;
  if (!parse_args(a, duration_ns, quantum_ns, false) || quantum_ns < 10'000 || quantum_ns > 1000'000'000)
    return step_usage(a, kUsage);
  const uint64_t quanta = duration_ns / quantum_ns;
  // The index of count pages is one 4 KiB page of pointers.
  if (quanta == 0 || quanta > kMaxQuanta || (quanta + kPageSize / 4 - 1) / (kPageSize / 4) > kPageSize / sizeof(void*)) {
    kprintf("workload: ftq: 1 .. %lu quanta per run (duration / quantum)\n", kMaxQuanta);
    return kExitBadWorkload;
  }
  if (a.dry) return 0;
  const uint64_t hz = a.boot->tsc_hz ? a.boot->tsc_hz : 1;
  const uint64_t quantum = ns_to_ticks(quantum_ns, hz);
  Run r{"ftq", hz, quanta * quantum, quantum, 0, 0, 0, 0, 0};
  kprintf("ftq: setup cpus=%u quantum_us=%lu quanta=%lu\n", cpu_count(), quantum_ns / 1000, quanta);
  run_on_all(job_ftq, &r);
  kprintf("ftq: done quanta=%lu failed_cpus=%lu\n", r.samples, r.failed);
  return r.failed ? kExitStepFailed : 0;
}

constexpr StepDef kInterference[] = {
    {"stream", "stream <duration> [<bytes>]", step_stream},
    {"ftq", "ftq <duration> [<quantum>]", step_ftq},
};

}  // namespace

extern const StepTable kInterferenceSteps = step_table(kInterference);

}  // namespace guest
