#include "guest/smp.hpp"

#include <atomic>
#include <cstdint>

#include "guest/console.hpp"
#include "guest/hypercall.hpp"

namespace guest {
namespace {
constexpr uint64_t kSecond = 1'000'000'000;

uint32_t g_online = 0;   // APs that reached ap_main
uint32_t g_job_gen = 0;  // bumped once per job
uint32_t g_done = 0;     // APs finished with the current job
unsigned g_cpus = 1;
void (*g_job)(unsigned, unsigned, void*) = nullptr;
void* g_arg = nullptr;

uint32_t load(uint32_t& w) { return std::atomic_ref<uint32_t>(w).load(std::memory_order_acquire); }
}  // namespace

unsigned cpu_count() { return g_cpus; }

void smp_init(unsigned cpus) {
  g_cpus = cpus ? cpus : 1;
  // Give up only after a stall: every AP's wake() ends our wait, and with many vCPUs sharing few
  // host cores (ring-0 set-up is emulated) they arrive slowly, so a count of waits means nothing.
  constexpr uint64_t kStall = 10 * kSecond;
  uint32_t seen = load(g_online);
  uint64_t progress_at = host_now_ns();
  for (uint32_t n; (n = load(g_online)) != g_cpus - 1;) {
    const uint64_t now = host_now_ns();
    if (n != seen) {
      seen = n;
      progress_at = now;
    } else if (now - progress_at > kStall) {
      kprintf("smp: only %u of %u CPUs came up\n", n + 1, g_cpus);
      panic("smp: CPUs missing");
    }
    wait_on(&g_online, n, kSecond);
  }
}

void ap_main(unsigned cpu) {
  std::atomic_ref<uint32_t>(g_online).fetch_add(1, std::memory_order_acq_rel);
  wake(&g_online);
  uint32_t seen = 0;
  for (;;) {
    uint32_t gen = load(g_job_gen);
    if (gen == seen) {
      wait_on(&g_job_gen, seen, 10 * kSecond);
      continue;
    }
    seen = gen;
    g_job(cpu, g_cpus, g_arg);
    console_flush();
    std::atomic_ref<uint32_t>(g_done).fetch_add(1, std::memory_order_acq_rel);
    wake(&g_done);
  }
}

void run_on_all(void (*fn)(unsigned, unsigned, void*), void* arg) {
  if (g_cpus > 1) {
    g_job = fn;
    g_arg = arg;
    std::atomic_ref<uint32_t>(g_done).store(0, std::memory_order_relaxed);
    std::atomic_ref<uint32_t>(g_job_gen).fetch_add(1, std::memory_order_release);
    wake(&g_job_gen);
  }
  fn(0, g_cpus, arg);
  for (uint32_t d; (d = load(g_done)) != g_cpus - 1 && g_cpus > 1;) wait_on(&g_done, d, kSecond);
}

}  // namespace guest
