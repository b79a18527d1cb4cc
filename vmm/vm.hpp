// A running VM: KVM objects, guest RAM, buses and devices, one thread per vCPU. Construction
// builds and boots nothing but state (throws std::runtime_error with context); run() starts the
// vCPUs and returns hvmm's exit status when the VM stops.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <pthread.h>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "devices/bus.hpp"
#include "devices/exit_port.hpp"
#include "devices/hypercall_port.hpp"
#include "devices/serial.hpp"
#include "devices/vm_control.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/api/control.hpp"
#include "vmm/boot/elf_loader.hpp"
#include "vmm/kvm/kvm.hpp"
#include "vmm/reclaim_mechanism.hpp"

namespace hvmm {

class StatusLine;

struct VmConfig {
  uint64_t mem_bytes = 0;
  unsigned cpus = 1;
  std::string kernel_path;              // empty: the built-in kernel
  std::span<const uint8_t> builtin_kernel;
  std::string cmdline;
  std::string workload;                 // passed after " -- " on the command line
  std::shared_ptr<ReclaimMechanism> reclaim;              // nullptr: none
  std::optional<std::chrono::milliseconds> auto_reclaim;  // --auto-reclaim period
  std::string api_sock;                 // serve the control API here (empty: no socket)
  bool quiet = false;                   // no live status line / summary
};

class Vm final : public VmControl, public ConsoleSink, public SerialSink, public IrqLine, public api::ControlHandler {
 public:
  explicit Vm(const VmConfig& cfg);
  ~Vm() override;
  int run();

  void request_exit(int status, std::string message) override;
  bool stopping() const override { return stopping_.load(std::memory_order_acquire); }
  void write(std::string_view bytes) override;
  void serial_out(uint8_t byte) override;
  void raise() override {}  // no interrupt controller yet: the built-in guest polls

  const GuestMemory& memory() const { return *mem_; }

  // The control API (api::ControlHandler), served on --api-sock.
  nlohmann::json status() override;
  nlohmann::json resize(uint64_t target_bytes) override;
  nlohmann::json shutdown() override;
  nlohmann::json continue_guest() override;

 private:
  boot::LoadedKernel load_kernel(const VmConfig& cfg);
  void boot(const VmConfig& cfg, const boot::LoadedKernel& kernel, boot::FdtConfig& fdt);
  std::string status_fields();
  void vcpu_thread(unsigned index);
  // Handles one exit; false when this vCPU must stop.
  bool handle_exit(KvmVcpu& vcpu);
  void kick_all();
  void note_unhandled(const char* kind, uint64_t addr);

  KvmSystem sys_;
  KvmVm vm_;
  std::unique_ptr<GuestMemory> mem_;
  Bus pio_, mmio_;
  std::unique_ptr<Serial16550> serial_;
  std::unique_ptr<ExitPort> exit_port_;
  std::unique_ptr<HypercallPort> hypercalls_;
  std::shared_ptr<ReclaimMechanism> reclaim_;
  VmConfig cfg_;
  std::chrono::steady_clock::time_point started_;
  std::vector<std::unique_ptr<KvmVcpu>> vcpus_;
  std::vector<std::thread> threads_;

  std::mutex mu_;  // guards status_, message_, handles_
  std::condition_variable stopped_cv_;
  std::vector<pthread_t> handles_;
  std::map<unsigned, clockid_t> cpu_clocks_;  // vCPU index -> its thread's CPU clock
  std::optional<pthread_t> main_thread_;  // the thread in run(), while it runs
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned> running_{0};
  int status_ = 0;
  std::string message_;
  std::mutex out_mu_;
  std::atomic<StatusLine*> status_line_{nullptr};  // while run() shows one
  std::atomic<uint64_t> unhandled_{0};
};

}  // namespace hvmm
