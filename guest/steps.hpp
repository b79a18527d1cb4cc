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

// Basic steps (workload.cpp): info, sleep, exit, fault.
extern const StepDef kBasicSteps[];
extern const unsigned kBasicStepCount;

// Reports a bad argument for a step during the dry run.
uint32_t step_usage(const StepArgs& a, const char* usage);

}  // namespace guest
