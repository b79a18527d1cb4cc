// The vCPUs: the BSP runs the workload; the APs block in a wait hypercall until it hands them a job.
#pragma once

namespace guest {

// BSP: waits until every AP has reported in (panics after a few seconds if one never does).
void smp_init(unsigned cpus);
// AP entry: serves jobs forever.
[[noreturn]] void ap_main(unsigned cpu);
// Runs fn(cpu, ncpus, arg) on every CPU, the BSP included, and returns when all are done.
void run_on_all(void (*fn)(unsigned cpu, unsigned ncpus, void* arg), void* arg);
unsigned cpu_count();

}  // namespace guest
