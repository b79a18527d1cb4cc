// The vCPU threads (ARCHITECTURE.md, "Threads and ownership"): one per vCPU, each running KVM_RUN
// and dispatching its exits to the port-I/O and MMIO buses. The VM asks to stop through VmControl;
// kick_all() then gets every thread out of KVM_RUN.
//
// The kick is Firecracker's: a signal to each vCPU thread whose handler sets that thread's own
// kvm_run::immediate_exit (found through a thread-local pointer). Only the owning thread ever
// writes its kvm_run, and a kick that lands just before KVM_RUN still makes it return at once.
#pragma once
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "devices/bus.hpp"
#include "devices/vm_control.hpp"
#include "vmm/kvm/kvm.hpp"

namespace hvmm {

class VcpuRunner {
 public:
  // `pio`, `mmio` and `vm` must outlive the runner. `all_exited` runs in the last vCPU thread to
  // leave (e.g. to wake the VMM's main thread).
  VcpuRunner(std::vector<std::unique_ptr<KvmVcpu>> vcpus, Bus& pio, Bus& mmio, VmControl& vm,
             std::function<void()> all_exited);
  ~VcpuRunner();  // kick_all() and join()
  VcpuRunner(const VcpuRunner&) = delete;
  VcpuRunner& operator=(const VcpuRunner&) = delete;

  KvmVcpu& vcpu(unsigned index) { return *vcpus_.at(index); }
  unsigned size() const { return static_cast<unsigned>(vcpus_.size()); }

  void start();     // one thread per vCPU; once
  void kick_all();  // any thread: every vCPU leaves KVM_RUN and checks vm.stopping()
  void join();      // waits for every vCPU thread
  unsigned running() const { return running_.load(); }

  // CPU seconds of each vCPU thread so far (0 for one that has not started).
  std::vector<double> cpu_seconds() const;
  // Port and MMIO accesses no device took (counted; the first few logged).
  uint64_t unhandled_accesses() const { return unhandled_.load(); }

 private:
  void thread_main(unsigned index);
  // Handles one exit; false when this vCPU must stop.
  bool handle_exit(KvmVcpu& vcpu);
  void note_unhandled(const char* kind, uint64_t addr);

  std::vector<std::unique_ptr<KvmVcpu>> vcpus_;
  Bus& pio_;
  Bus& mmio_;
  VmControl& vm_;
  std::function<void()> all_exited_;
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;                 // guards handles_ and clocks_
  std::vector<pthread_t> handles_;        // live vCPU threads: the ones kick_all() signals
  std::vector<std::optional<clockid_t>> clocks_;  // per vCPU: its thread's CPU clock
  std::atomic<unsigned> running_{0};
  std::atomic<uint64_t> unhandled_{0};
};

}  // namespace hvmm
