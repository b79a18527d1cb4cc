#include "guest/service.hpp"

#include <atomic>
#include <cstdint>

#include "guest/hypercall.hpp"

namespace guest {
namespace {
constexpr uint64_t kSecond = 1'000'000'000;
uint32_t g_first_service = 0;  // 0 until the roles are known, then the first service CPU's index
uint32_t g_mem_ready = 0;

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

void service_main(unsigned, const BootInfo&) {
  for (;;) wait_on(&g_mem_ready, 1, 3600 * kSecond);  // no drivers yet: stay out of the way
}

}  // namespace guest
