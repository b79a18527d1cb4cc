// A running VM, thin: it wires the KVM objects, guest RAM, the DeviceManager, the reclamation
// mechanism and the VcpuRunner together, boots, and runs the VMM's main thread (signals, the
// control socket, the status line). Construction builds state only (throws std::runtime_error with
// context); run() starts the vCPUs and returns hvmm's exit status when the VM stops.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <pthread.h>
#include <span>
#include <string>
#include <vector>

#include "abi/layout.hpp"
#include "devices/serial.hpp"
#include "devices/vm_control.hpp"
#include "memory/guest_memory.hpp"
#include "vmm/api/vm_api.hpp"
#include "vmm/boot/elf_loader.hpp"
#include "vmm/boot/fdt_builder.hpp"
#include "vmm/device_manager.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/mechanisms/mechanism.hpp"
#include "vmm/vcpu_runner.hpp"

namespace hvmm {

class StatusLine;

struct VmConfig {
  uint64_t mem_bytes = 0;              // boot RAM (e820, FDT)
  uint64_t hotplug_bytes = 0;          // a virtio-mem region above it (layout::hotplug_region), 0: none
  uint64_t hotplug_block = 2ull << 20;  // its block size
  unsigned cpus = 1;
  std::string kernel_path;              // empty: the built-in kernel
  std::span<const uint8_t> builtin_kernel;
  std::string cmdline;
  std::string workload;                 // passed after " -- " on the command line
  std::shared_ptr<ReclaimMechanism> reclaim;              // nullptr: none
  std::optional<std::chrono::milliseconds> auto_reclaim;  // --auto-reclaim period
  // The mechanism's period when auto-reclaim is switched on through the API without one.
  std::chrono::milliseconds auto_reclaim_default{500};
  // --mem-min: no resize goes below it (README, "The floor"); 0: no floor.
  uint64_t mem_min_bytes = 0;
  std::string api_sock;                 // serve the control API here (empty: no socket)
  std::string trace_path;               // --trace: a replay trace loaded as the initrd (empty: none)
  std::string guest_alloc;              // --guest-alloc: "buddy" for the built-in guest (empty: LLFree)
  uint64_t mem_limit = 0;               // --mem-limit: cap on the guest's usable memory (0: none)
  bool quiet = false;                   // no live status line / summary
};

// The kernel command line the VM passes: `cmdline`, then " -- " and the workload steps if any.
std::string kernel_cmdline(const std::string& cmdline, const std::string& workload);

class Vm final : public VmControl, public ConsoleSink, public SerialSink, public api::VmApi {
 public:
  explicit Vm(const VmConfig& cfg);
  ~Vm() override;
  int run();

  // VmControl: what devices and vCPU threads may ask.
  void request_exit(int status, std::string message) override;
  bool stopping() const override { return stopping_.load(std::memory_order_acquire); }
  // ConsoleSink / SerialSink: the guest's console, drawn above the status line.
  void write(std::string_view bytes) override;
  void serial_out(uint8_t byte) override;

  // api::VmApi, served on --api-sock.
  api::VmStatus status() override;
  api::VmInfo info() override;
  api::AutoReclaimOutcome set_auto_reclaim(const api::AutoReclaimRequest& req) override;
  api::ResizeOutcome resize(uint64_t target_bytes) override;
  void shutdown() override;
  void continue_guest() override;

 private:
  boot::LoadedKernel load_kernel(const VmConfig& cfg);
  void boot(const boot::LoadedKernel& kernel, boot::FdtConfig& fdt);
  layout::Range load_trace(const std::string& path, uint64_t kernel_end);
  std::string status_fields();
  uint64_t map_end() const;
  // All the memory the guest can have: boot RAM plus a virtio-mem region.
  uint64_t guest_bytes() const { return cfg_.mem_bytes + cfg_.hotplug_bytes; }  // end of the virtio-mem region, which the identity map covers (0: none)
  void wake_main();
  // --mem-limit: shrinks the guest to the limit as soon as its mechanism can (runs in limit_thread_).
  void apply_mem_limit();

  VmConfig cfg_;
  KvmSystem sys_;
  KvmVm vm_;
  std::unique_ptr<GuestMemory> mem_;
  std::unique_ptr<DeviceManager> devices_;
  std::shared_ptr<ReclaimMechanism> reclaim_;
  std::unique_ptr<VcpuRunner> runner_;  // last: its threads go first
  std::chrono::steady_clock::time_point started_;
  uint64_t trace_bytes_ = 0;  // --trace: the initrd's size

  std::mutex mu_;  // guards status_, message_, main_thread_
  std::optional<pthread_t> main_thread_;  // the thread in run(), while it runs
  std::atomic<bool> stopping_{false};
  int status_ = 0;
  std::string message_;
  std::mutex out_mu_;
  std::atomic<StatusLine*> status_line_{nullptr};  // while run() shows one
  std::mutex auto_mu_;  // serialises starting auto-reclaim (main thread, API threads)
  std::optional<std::chrono::milliseconds> auto_period_;  // guarded by auto_mu_: running period
  std::atomic<uint64_t> mem_limit_refusals_{0};  // resizes refused for going above --mem-limit
  std::atomic<bool> mem_limit_applied_{false};
};

}  // namespace hvmm
