// Memory workload steps (alloc, free, verify, stats): they arrive with the shared allocator.
#include "guest/steps.hpp"

namespace guest {
extern const StepDef kMemSteps[];
extern const unsigned kMemStepCount;
const StepDef kMemSteps[] = {{"", "", nullptr}};
const unsigned kMemStepCount = 0;
}  // namespace guest
