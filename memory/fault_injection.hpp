// Test seam (issue 13): make GuestMemory's discard or populate fail as madvise can (ENOMEM, EFAULT,
// ...), to test that every caller reports, counts and carries on. Off unless asked for:
//   HVMM_FAULT_INJECT="discard=ENOMEM,populate=EFAULT,every=3"
// read once, at the first discard/populate of the process: every 3rd call of each kind fails with
// that errno (every=1: all of them). Unit tests set a plan directly.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>

namespace hvmm {

struct FaultPlan {
  int discard_errno = 0;   // 0: discard never fails by injection
  int populate_errno = 0;  // 0: populate never fails by injection
  uint32_t every = 1;      // the Nth, 2Nth, ... call of a kind fails
};

// "discard=ENOMEM,populate=EFAULT,every=3" (any subset); nullopt if malformed.
std::optional<FaultPlan> parse_fault_plan(std::string_view text);
// Replaces the plan (tests); nullopt: none.
void set_fault_plan(std::optional<FaultPlan> plan);
enum class FaultSite { discard, populate };
// Whether this call at `site` must fail, and with which errno (0: it must not). Thread-safe.
int injected_fault(FaultSite site);

}  // namespace hvmm
