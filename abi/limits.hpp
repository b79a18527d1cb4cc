/* How many vCPUs a VM may have: one definition for the CLI, the VMM, the guest kernel's per-CPU
 * arrays and its ring-0 entry (guest/entry.S includes this file, so it stays assembler-safe: only
 * #defines outside the C++ part).
 *
 * Workload vCPUs run the user's workload (--cpus). A reclamation mechanism may add service vCPUs
 * that run the guest's device drivers (the balloon driver, virtio-mem): they count in the total,
 * so a guest built with HVMM_MAX_CPUS slots runs every --cpus value with its service vCPUs. */
#ifndef HVMM_ABI_LIMITS_HPP
#define HVMM_ABI_LIMITS_HPP

#define HVMM_MAX_WORKLOAD_CPUS 64
#define HVMM_MAX_SERVICE_CPUS 1
#define HVMM_MAX_CPUS (HVMM_MAX_WORKLOAD_CPUS + HVMM_MAX_SERVICE_CPUS)

#ifndef __ASSEMBLER__
namespace hvmm::abi {
inline constexpr unsigned kMaxWorkloadCpus = HVMM_MAX_WORKLOAD_CPUS;
inline constexpr unsigned kMaxServiceCpus = HVMM_MAX_SERVICE_CPUS;
inline constexpr unsigned kMaxCpus = HVMM_MAX_CPUS;
}  // namespace hvmm::abi
#endif

#endif
