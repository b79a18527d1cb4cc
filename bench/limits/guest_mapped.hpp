// The discard floor of memory a running guest has touched and mapped: a minimal KVM VM whose vCPU
// writes one byte per 2 MiB of a THP-backed memory slot (so KVM maps every frame), then
// MADV_DONTNEED of that memory, timed. Unlike raw madvise of memory only this process touched, it
// includes the hypervisor's unmapping (KVM's MMU notifier zaps the guest mappings): the floor for a
// shrink by any VMM on this host (issue 12; ARCHITECTURE.md, "Benchmarks").
#pragma once

#include <cstdint>
#include <vector>

namespace hvmm::limits {

struct GuestMappedDiscard {
  std::vector<double> gib_s;        // MADV_DONTNEED of guest-touched memory, one per repetition
  std::vector<double> raw_gib_s;    // MADV_DONTNEED of process-touched memory of the same size, interleaved
  std::vector<double> guest_touch_gib_s;  // the vCPU's touch before each discard (first touch through KVM)
};
// Throws std::runtime_error (with the failing step) when KVM is unavailable or refuses the VM.
GuestMappedDiscard probe_guest_mapped_discard(uint64_t bytes, unsigned reps);

}  // namespace hvmm::limits
