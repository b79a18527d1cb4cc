// kernel_main: where every vCPU arrives at CPL3 after the ring-0 entry (entry.S).
#include <cstdint>

#include "guest/boot_info.hpp"
#include "guest/console.hpp"
#include "guest/hypercall.hpp"
#include "guest/mem.hpp"
#include "guest/service.hpp"
#include "guest/smp.hpp"
#include "guest/workload.hpp"

namespace guest {
// The default when no --workload is given: a demo whose memory demand rises and falls, so that
// with --auto-reclaim the host footprint visibly follows it (and without, visibly does not).
const char* const kDefaultWorkload =
    "echo hvmm demo: the guest allocates, holds and frees memory in phases (about 35-45 s);"
    "echo watch host RSS on the status line - with --auto-reclaim it follows the guest's demand;"
    "info;"
    "echo phase 1/3: allocate and touch 25% of RAM, hold it 5 s; alloc 25%; sleep 5s;"
    "echo phase 1/3: free it, idle 5 s; free; sleep 5s;"
    "echo phase 2/3: allocate and touch 50% of RAM, hold it 5 s; alloc 50%; sleep 5s;"
    "echo phase 2/3: free it, idle 5 s; free; sleep 5s;"
    "echo phase 3/3: keep 10% of RAM, add 30% for 5 s; alloc 10%; alloc 30%; sleep 5s;"
    "echo phase 3/3: free the 30%, check the 10% survived, idle 5 s; free; verify; sleep 5s;"
    "free; stats; echo demo done";
BootInfo g_boot;
}  // namespace guest

extern "C" void (*__init_array_start[])();
extern "C" void (*__init_array_end[])();

extern "C" [[noreturn]] void kernel_main(unsigned cpu, const void* zero_page) {
  using namespace guest;
  if (cpu != 0) {
    if (ap_is_service(cpu)) service_main(cpu, g_boot);
    ap_main(cpu);
  }
  // Global constructors (default member initialisers of globals); the APs only wait until the BSP
  // hands them work, so running these on the BSP alone is enough.
  for (auto* f = __init_array_start; f != __init_array_end; f++) (*f)();
  parse_boot_info(zero_page, g_boot);
  publish_cpu_roles(g_boot);
  smp_init(g_boot.cpus);
  mem_init(g_boot);
  service_cpus_release();
  await_drivers(g_boot);
  const char* w = *g_boot.workload ? g_boot.workload : kDefaultWorkload;
  uint32_t rc = run_workload(g_boot, w);
  console_flush();
  exit_vm(rc);
}
