// The `hvmm` command line: `hvmm run …` boots a VM, `hvmm ctl …` talks to a running one.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "vmm/vm.hpp"

namespace hvmm::cli {

// How often --auto-reclaim looks for idle memory when no PERIOD is given (README: "Auto-reclaim").
inline constexpr std::chrono::milliseconds kDefaultAutoPeriod{500};
// virtio-mem's automatic mode decides once a second by default (the reference's policy).
inline constexpr std::chrono::milliseconds kDefaultVirtioMemAutoPeriod{1000};

// The floor under every resize and auto mode when --mem-min is not given (README, "The floor").
inline constexpr uint64_t kDefaultMemMin = 256ull << 20;

struct RunOptions {
  std::string mem = "2G";
  std::string mem_min;  // --mem-min SIZE; empty: kDefaultMemMin, or --mem if that is smaller
  unsigned cpus = 2;
  std::string kernel;
  std::string cmdline;
  std::string workload;
  bool workload_set = false;  // --workload given (an empty one is refused, not the demo)
  std::string auto_reclaim;  // empty: off; otherwise the period ("" given as flag -> default)
  bool auto_reclaim_set = false;
  int auto_reclaim_age = 0;  // --auto-reclaim-age (tuning): scans a frame must stay free; 0: default
  bool auto_reclaim_age_set = false;
  std::string reclaim = "hyperalloc";
  std::string virtio_mem_boot;  // --virtio-mem-boot SIZE; empty: --mem / 8
  std::string virtio_mem_step;  // --virtio-mem-step SIZE; empty: --mem / 16
  std::string api_sock;
  std::string mem_limit;  // --mem-limit SIZE; empty: none
  bool quiet = false;
  std::string trace;                 // --trace FILE: replay trace for the guest's `replay` step
  std::string guest_alloc = "llfree";  // --guest-alloc llfree|buddy (the built-in guest's allocator)
};

// `hvmm run --config FILE`: a JSON object whose keys are the long options of `hvmm run` without
// the dashes ("mem", "cpus", "auto-reclaim"...). Options in `given` (given on the command line) win.
// Throws std::invalid_argument with a one-line message on a bad file, key or value.
void apply_config_file(const std::string& path, RunOptions& o, const std::vector<std::string>& given);

// Validates the options into a VmConfig; throws std::invalid_argument with a one-line message.
VmConfig make_vm_config(const RunOptions& o);
// Boots and runs the VM; returns hvmm's exit status.
int run_vm(const RunOptions& o);

}  // namespace hvmm::cli
