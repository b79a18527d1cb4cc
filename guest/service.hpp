// Service CPUs: extra vCPUs the VMM adds for guest drivers (the balloon driver, free page
// reporting), so drivers run beside the workload without interrupts, as Linux's balloon worker
// does. They block in wait hypercalls; the host wakes them when a device has news.
#pragma once

#include "guest/boot_info.hpp"

namespace guest {

// AP: blocks until the BSP has published the CPU roles; for a service CPU then also until memory is
// set up, and returns true. Returns false for a workload CPU.
bool ap_is_service(unsigned cpu);
// BSP: after parsing the boot info / after mem_init.
void publish_cpu_roles(const BootInfo& boot);
void service_cpus_release();
// BSP, before the workload: waits (at most 30 s) until the service CPU's driver is up, e.g. until
// virtio-mem has plugged the memory the host asked for. Returns at once without service CPUs.
void await_drivers(const BootInfo& boot);
// The service loop of a service CPU. Never returns.
[[noreturn]] void service_main(unsigned cpu, const BootInfo& boot);

}  // namespace guest
