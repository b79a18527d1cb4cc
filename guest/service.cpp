#include "guest/service.hpp"

#include <atomic>
#include <cstdint>

#include "guest/arch.hpp"
#include "guest/console.hpp"
#include "guest/hypercall.hpp"
#include "guest/virtio/balloon.hpp"
#include "guest/virtio/mem.hpp"
#include "guest/virtio/page_reporting.hpp"

namespace guest {
namespace {
constexpr uint64_t kSecond = 1'000'000'000;
uint32_t g_first_service = 0;  // 0 until the roles are known, then the first service CPU's index
uint32_t g_mem_ready = 0;
uint32_t g_drivers_ready = 0;  // set by the first service CPU once its driver is up (e.g. memory plugged)

uint32_t load(uint32_t& w) { return std::atomic_ref<uint32_t>(w).load(std::memory_order_acquire); }
void publish(uint32_t& w, uint32_t v) {
  std::atomic_ref<uint32_t>(w).store(v, std::memory_order_release);
  wake(&w);
}
void await_nonzero(uint32_t& w) {
  while (!load(w)) wait_on(&w, 0, kSecond);
}
}  // namespace

bool ap_is_service(unsigned cpu) {
  await_nonzero(g_first_service);
  if (cpu < load(g_first_service)) return false;
  await_nonzero(g_mem_ready);
  return true;
}

void publish_cpu_roles(const BootInfo& boot) { publish(g_first_service, boot.cpus); }
void service_cpus_release() { publish(g_mem_ready, 1); }

void await_drivers(const BootInfo& boot) {
  // Bounded (30 s): a driver that never comes up must not keep the workload from running.
  if (boot.service_cpus) wait_changed(&g_drivers_ready, 0, 30 * kSecond);
}

namespace {
uint32_t g_idle = 0;  // never changes: the service CPU waits on it until wake_all() or a timeout
constexpr unsigned kBatchesPerRound = 16;  // 16 x 256 balloon pages between InterruptStatus reads

uint64_t to_ns(uint64_t ticks, uint64_t hz) { return hz ? static_cast<uint64_t>((unsigned __int128)ticks * kSecond / hz) : 0; }

// The balloon driver's work loop, like Linux's balloon worker and page-reporting work items,
// but on a CPU of its own: the host's "interrupt" is wake_all(), which ends our wait early.
[[noreturn]] void balloon_loop(const BootInfo& boot) {
  using namespace virtio;
  const bool reporting = reporting_init(boot);
  uint64_t busy = 0;             // TSC ticks spent in driver work (the service CPU's cost)
  uint32_t seen_target = balloon_info().target;
  bool moving = seen_target != 0;
  uint64_t move_start = rdtsc();
  for (;;) {
    const uint64_t t0 = rdtsc();
    if (balloon_ack_interrupt() & virtio::mmio_reg::kIntConfigChange) balloon_read_target();
    balloon_service_stats();
    BalloonInfo info = balloon_info();
    if (info.target != seen_target) {
      seen_target = info.target;
      moving = true;
      move_start = t0;
    }
    const bool more = balloon_step(kBatchesPerRound);
    if (moving && !more) {
      info = balloon_info();
      const uint64_t end = rdtsc();
      kprintf("balloon: %lu MiB in the balloon (target %lu MiB%s) after %lu ms; driver CPU %lu ms so far, %lu OOM deflates\n",
              uint64_t(info.actual) * info.page_bytes >> 20, uint64_t(info.target) * info.page_bytes >> 20,
              info.actual == info.target ? ", reached" : ", out of memory",
              to_ns(end - move_start, boot.tsc_hz) / 1000000, to_ns(busy + end - t0, boot.tsc_hz) / 1000000, info.oom_deflates);
      moving = false;
    }
    if (reporting) reporting_tick(to_ns(rdtsc(), boot.tsc_hz));
    busy += rdtsc() - t0;
    if (!more) wait_on(&g_idle, 0, kSecond / 2);
  }
}
}  // namespace

void service_main(unsigned, const BootInfo& boot) {
  // virtio-mem plugs the VM's memory before the workload starts, so that it sees all of it.
  if (virtio::virtio_mem_init(boot)) {
    publish(g_drivers_ready, 1);
    virtio::virtio_mem_loop(boot);
  }
  publish(g_drivers_ready, 1);
  if (virtio::balloon_init(boot)) balloon_loop(boot);
  for (;;) wait_on(&g_mem_ready, 1, 3600 * kSecond);  // no driver to run: stay out of the way
}

}  // namespace guest
