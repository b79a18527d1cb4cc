// The workload interpreter: `--workload "STEP; STEP; …"` arrives on the kernel command line after
// " -- ". Each step is a name and arguments; the result of the whole run is the VM's exit code.
#pragma once
#include <cstdint>

#include "guest/boot_info.hpp"

namespace guest {

// Runs every step in order; returns the exit code (0 when all steps succeeded).
uint32_t run_workload(const BootInfo& boot, const char* workload);

// Exit codes of the built-in kernel (below 64, so they never collide with hvmm's own, see
// vmm/exit_status.hpp).
inline constexpr uint32_t kExitBadWorkload = 2;
inline constexpr uint32_t kExitStepFailed = 3;

}  // namespace guest
