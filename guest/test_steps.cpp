// Steps that exist for hvmm's own tests: `churn` (every vCPU allocates, verifies and frees random
// blocks for a while) and `hostile-hyperalloc` (sends malformed registration records and install
// requests, as a malicious guest would; needs `--cmdline hvmm.no_register`) and `hostile-virtio-mem`
// (touches unplugged virtio-mem memory behind the driver's back).
#include <atomic>

#include "guest/arch.hpp"
#include "guest/console.hpp"
#include "guest/hypercall.hpp"
#include "guest/mem.hpp"
#include "guest/parse.hpp"
#include "guest/percpu.hpp"
#include "guest/smp.hpp"
#include "guest/steps.hpp"
#include "guest/workload.hpp"

namespace guest {
namespace {

constexpr unsigned kMaxLive = 512;

struct Block {
  uint64_t frame, seed;
  unsigned order;
};
Block g_live[kMaxCpus][kMaxLive];

struct Churn {
  uint64_t deadline_tsc;
  uint64_t allocs, frees, oom, bad;
};

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// One word per 64 bytes keeps big blocks cheap while still catching lost or swapped pages.
void fill(const Block& b) {
  auto* p = static_cast<uint64_t*>(frame_ptr(b.frame));
  for (uint64_t i = 0; i < (kPageSize << b.order) / 8; i += 8) p[i] = b.seed ^ (b.frame << 16) ^ i;
}
bool check(const Block& b) {
  auto* p = static_cast<const uint64_t*>(frame_ptr(b.frame));
  for (uint64_t i = 0; i < (kPageSize << b.order) / 8; i += 8)
    if (p[i] != (b.seed ^ (b.frame << 16) ^ i)) {
      kprintf("churn: block %#lx order %u word %lu corrupted\n", b.frame, b.order, i);
      return false;
    }
  return true;
}

void job_churn(unsigned cpu, unsigned, void* arg) {
  auto* c = static_cast<Churn*>(arg);
  Block* live = g_live[cpu];
  unsigned n = 0;
  uint64_t rng = rdtsc() ^ (uint64_t(cpu + 1) << 32) ^ 0x9e3779b97f4a7c15ULL;
  uint64_t allocs = 0, frees = 0, oom = 0, bad = 0;
  auto release = [&](unsigned i) {
    if (!check(live[i])) bad++;
    mem_free(live[i].frame, live[i].order);
    live[i] = live[--n];
    frees++;
  };
  while (rdtsc() < c->deadline_tsc) {
    uint64_t r = xorshift(rng);
    if (n < kMaxLive && (n == 0 || (r & 1))) {
      unsigned order = (r >> 8) % 4 == 0 ? unsigned((r >> 16) % 11) : unsigned((r >> 16) % 4);
      Block b{0, r, order};
      if (mem_alloc(order, b.frame)) {
        fill(b);
        live[n++] = b;
        allocs++;
      } else {
        oom++;
        if (n) release(unsigned((r >> 24) % n));
      }
    } else {
      release(unsigned((r >> 24) % n));
    }
  }
  while (n) release(n - 1);
  std::atomic_ref<uint64_t>(c->allocs).fetch_add(allocs);
  std::atomic_ref<uint64_t>(c->frees).fetch_add(frees);
  std::atomic_ref<uint64_t>(c->oom).fetch_add(oom);
  std::atomic_ref<uint64_t>(c->bad).fetch_add(bad);
}

uint32_t step_churn(const StepArgs& a) {
  uint64_t ns;
  if (a.argc != 2 || !parse_duration_ns(a.argv[1], ns)) return step_usage(a, "churn <duration>");
  if (a.dry) return 0;
  Churn c{rdtsc() + ns / 1000 * (a.boot->tsc_hz / 1000'000), 0, 0, 0, 0};
  run_on_all(job_churn, &c);
  kprintf("churn: %lu allocations, %lu frees, %lu out-of-memory, %lu corrupted\n", c.allocs, c.frees, c.oom, c.bad);
  return c.bad ? kExitStepFailed : 0;
}

using hvmm::abi::hyperalloc::Registration;

struct Hostile {
  const char* what;
  void (*mutate)(Registration&);
};
const Hostile kHostile[] = {
    {"trees outside RAM", [](Registration& r) { r.trees_gpa = 0x7f00'0000'0000ULL; }},
    {"bitfield in the MMIO hole", [](Registration& r) { r.bitfield_gpa = 0xd000'0000ULL; }},
    {"children over the kernel image", [](Registration& r) { r.children_gpa = 0x100000; }},
    {"absurd bitfield length", [](Registration& r) { r.bitfield_len = 1ULL << 62; }},
    {"wrapping children range", [](Registration& r) { r.children_gpa = ~0ULL - 63; }},
    {"zone larger than RAM", [](Registration& r) { r.frames = 1ULL << 40; }},
    {"zero frames", [](Registration& r) { r.frames = 0; }},
    {"unaligned zone start", [](Registration& r) { r.first_pfn = 1; }},
    {"misaligned trees", [](Registration& r) { r.trees_gpa += 4; }},
    {"arrays overlap", [](Registration& r) { r.children_gpa = r.trees_gpa; }},
    {"bad magic", [](Registration& r) { r.magic ^= 1; }},
    {"wrong layout", [](Registration& r) { r.frames_per_child = 256; }},
};

Registration g_record;

uint32_t step_hostile(const StepArgs& a) {
  if (a.argc != 1) return step_usage(a, "hostile-hyperalloc");
  if (a.dry) return 0;
  if (a.boot->hyperalloc_port < 0 || mem_install_port() >= 0) {
    kprintf("hostile-hyperalloc: needs a hyperalloc device and --cmdline hvmm.no_register\n");
    return kExitStepFailed;
  }
  unsigned refused = 0, n = sizeof(kHostile) / sizeof(kHostile[0]);
  for (auto& h : kHostile) {
    g_record = mem_registration();
    h.mutate(g_record);
    int64_t rc = hypercall(hvmm::abi::Hypercall::kHyperallocRegister, reinterpret_cast<uintptr_t>(&g_record));
    if (rc != 0) refused++;
    else kprintf("hostile-hyperalloc: '%s' was ACCEPTED\n", h.what);
  }
  int64_t bad_gpa = hypercall(hvmm::abi::Hypercall::kHyperallocRegister, 0x7f00'0000'0000ULL);
  g_record = mem_registration();
  int64_t valid = hypercall(hvmm::abi::Hypercall::kHyperallocRegister, reinterpret_cast<uintptr_t>(&g_record));
  int64_t again = hypercall(hvmm::abi::Hypercall::kHyperallocRegister, reinterpret_cast<uintptr_t>(&g_record));
  // Install requests the host must refuse: beyond the zone, far beyond, and a frame that was never
  // reclaimed (the kernel's own).
  auto port = static_cast<uint16_t>(a.boot->hyperalloc_port);
  outl(port, 0x00ff'ffff);
  outl(port, 0xffff'ffff);
  outl(port, 0);
  kprintf("hostile-hyperalloc: %u of %u bad records refused, record outside RAM %s, valid record %s, second %s\n",
          refused, n, bad_gpa ? "refused" : "ACCEPTED", valid == 0 ? "accepted" : "REFUSED",
          again ? "refused" : "ACCEPTED");
  return refused == n && bad_gpa && valid == 0 && again ? 0 : kExitStepFailed;
}

// hostile-virtio-mem: touches the first and last word of the virtio-mem region as a guest that
// ignores the driver would, and points a hypercall at it. Run it after the host unplugged the
// region (resize to the boot size): the loads must read all-ones, the stores must be dropped, the
// hypercall refused, and the VM must run on.
uint32_t step_hostile_virtio_mem(const StepArgs& a) {
  if (a.dry) return 0;
  const uint64_t start = mem_hotplug_start();
  if (!start) {
    kprintf("hostile-virtio-mem: no virtio-mem region\n");
    return kExitStepFailed;
  }
  auto* first = reinterpret_cast<volatile uint64_t*>(start);
  const uint64_t before = *first;
  *first = 0x1234'5678'9abc'def0ULL;
  const uint64_t after = *first;
  auto* last = reinterpret_cast<volatile uint32_t*>(start + (1ull << 21) - 4);
  const uint32_t last_val = *last;
  const int64_t rc = hypercall(hvmm::abi::Hypercall::kConsoleWrite, start, 16);
  const bool ok = before == ~0ull && after == ~0ull && last_val == ~0u && rc != 0;
  kprintf("hostile-virtio-mem: read 0x%lx, after a write 0x%lx, last word 0x%x, console hypercall %s: %s\n", before,
          after, last_val, rc ? "refused" : "ACCEPTED", ok ? "refused and counted" : "SERVED");
  return ok ? 0 : kExitStepFailed;
}

constexpr StepDef kTest[] = {
    {"churn", "churn <duration>", step_churn},
    {"hostile-hyperalloc", "hostile-hyperalloc", step_hostile},
    {"hostile-virtio-mem", "hostile-virtio-mem", step_hostile_virtio_mem},
};

}  // namespace

extern const StepTable kTestSteps = step_table(kTest);

}  // namespace guest
