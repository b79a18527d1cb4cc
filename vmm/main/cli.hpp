// The `hvmm` command line: `hvmm run …` boots a VM, `hvmm ctl …` talks to a running one.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

#include "vmm/vm.hpp"

namespace hvmm::cli {

// How often --auto-reclaim looks for idle memory when no PERIOD is given (README: "Auto-reclaim").
inline constexpr std::chrono::milliseconds kDefaultAutoPeriod{500};
// virtio-mem's automatic mode decides once a second by default (the reference's policy).
inline constexpr std::chrono::milliseconds kDefaultVirtioMemAutoPeriod{1000};

struct RunOptions {
  std::string mem = "2G";
  unsigned cpus = 2;
  std::string kernel;
  std::string cmdline;
  std::string workload;
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
};

// Validates the options into a VmConfig; throws std::invalid_argument with a one-line message.
VmConfig make_vm_config(const RunOptions& o);
// Boots and runs the VM; returns hvmm's exit status.
int run_vm(const RunOptions& o);

}  // namespace hvmm::cli
