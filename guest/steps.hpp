// Workload steps. A step validates its arguments when `dry` is set (before anything runs, so a typo
// in step 5 is reported before step 1 starts) and does its work otherwise. Returns 0 on success or
// an exit code.
#pragma once
#include <cstdint>

#include "guest/boot_info.hpp"

namespace guest {

struct StepArgs {
  int argc;
  char** argv;  // argv[0] is the step name
  const BootInfo* boot;
  bool dry;
};

struct StepDef {
  const char* name;
  const char* usage;
  uint32_t (*run)(const StepArgs&);
};

// A file's steps. Every file that defines steps exports one table; workload.cpp lists the tables.
struct StepTable {
  const StepDef* steps;
  unsigned count;
  bool hidden = false;  // test-only steps: not listed in the unknown-step message
};
template <unsigned N>
constexpr StepTable step_table(const StepDef (&steps)[N], bool hidden = false) {
  return {steps, N, hidden};
}
extern const StepTable kBasicSteps;  // workload.cpp: info, echo, sleep, barrier, exit, fault
extern const StepTable kMemSteps;    // mem_steps.cpp: alloc, alloc-huge, free, verify, stats
extern const StepTable kBenchSteps;  // bench_steps.cpp: bench-alloc
extern const StepTable kTestSteps;   // test_steps.cpp: churn, hostile-hyperalloc
extern const StepTable kReplaySteps; // replay.cpp: replay (the --trace)
extern const StepTable kInterferenceSteps;  // interference_steps.cpp: stream, ftq
extern const StepTable kHostileSteps;  // hostile_steps.cpp: hidden attacks of a hostile guest (issue 13)

// Reports a bad argument for a step during the dry run.
uint32_t step_usage(const StepArgs& a, const char* usage);

}  // namespace guest
