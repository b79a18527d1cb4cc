// The workload interpreter: `--workload "STEP; STEP; …"` arrives on the kernel command line after
// " -- ". Each step is a name and arguments; the result of the whole run is the VM's exit code.
#pragma once
#include <cstdint>

#include "abi/exit_status.hpp"
#include "guest/boot_info.hpp"

namespace guest {

// Runs every step in order; returns the exit code (0 when all steps succeeded).
uint32_t run_workload(const BootInfo& boot, const char* workload);

// Exit codes of the built-in kernel (abi/exit_status.hpp keeps them clear of hvmm's own).
inline constexpr uint32_t kExitBadWorkload = hvmm::exit_status::kBadWorkload;
inline constexpr uint32_t kExitStepFailed = hvmm::exit_status::kStepFailed;

}  // namespace guest
