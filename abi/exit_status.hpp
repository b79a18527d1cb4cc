// hvmm's process exit status: one table for the VMM, which returns it, and the built-in guest, whose
// own error codes must stay clear of it. The guest's code (0..255, from the exit port) is passed
// through; the values below are what hvmm reports when the guest cannot report for itself.
#pragma once

namespace hvmm::exit_status {

// The built-in kernel's own codes (below kFirstHostStatus).
inline constexpr int kBadWorkload = 2;  // a `--workload` step did not parse / does not fit
inline constexpr int kStepFailed = 3;   // a workload step ran and failed
// The command line was refused before any VM existed (the same number as kBadWorkload: both are
// "what you asked for is not valid").
inline constexpr int kUsage = 2;

inline constexpr int kFirstHostStatus = 120;
inline constexpr int kHostError = 120;       // hvmm itself failed (setup, KVM ioctl, ...)
inline constexpr int kGuestException = 121;  // the guest reported a CPU exception or a panic
inline constexpr int kTripleFault = 122;     // KVM_EXIT_SHUTDOWN
inline constexpr int kKvmError = 123;        // KVM internal error / failed entry / unknown exit
inline constexpr int kInterrupted = 130;     // SIGINT / SIGTERM

}  // namespace hvmm::exit_status
