#include "vmm/vcpu_runner.hpp"

#include <signal.h>

#include <algorithm>

#include <fmt/format.h>

#include "base/log.hpp"

namespace hvmm {
namespace {

constexpr int kKickSignal = SIGUSR1;

// The kvm_run of the vCPU this thread runs (nullptr in other threads).
thread_local kvm_run* t_run = nullptr;

void on_kick(int) {
  if (kvm_run* r = t_run) reinterpret_cast<volatile uint8_t&>(r->immediate_exit) = 1;
}

void install_kick_handler() {
  struct sigaction sa{};
  sa.sa_handler = on_kick;
  sigemptyset(&sa.sa_mask);
  sigaction(kKickSignal, &sa, nullptr);  // no SA_RESTART: KVM_RUN returns EINTR
}

}  // namespace

VcpuRunner::VcpuRunner(std::vector<std::unique_ptr<KvmVcpu>> vcpus, Bus& pio, Bus& mmio, VmControl& vm,
                       std::function<void()> all_exited)
    : vcpus_(std::move(vcpus)), pio_(pio), mmio_(mmio), vm_(vm), all_exited_(std::move(all_exited)),
      clocks_(vcpus_.size()) {}

VcpuRunner::~VcpuRunner() {
  kick_all();
  join();
}

void VcpuRunner::start() {
  if (!threads_.empty()) return;
  install_kick_handler();
  running_ = size();
  for (unsigned i = 0; i < size(); i++) threads_.emplace_back([this, i] { thread_main(i); });
}

void VcpuRunner::kick_all() {
  std::lock_guard lock(mu_);
  for (auto h : handles_) pthread_kill(h, kKickSignal);
}

void VcpuRunner::join() {
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

std::vector<double> VcpuRunner::cpu_seconds() const {
  std::lock_guard lock(mu_);
  std::vector<double> out;
  for (const auto& c : clocks_) {
    timespec ts{};
    out.push_back(c && clock_gettime(*c, &ts) == 0 ? ts.tv_sec + ts.tv_nsec / 1e9 : 0.0);
  }
  return out;
}

void VcpuRunner::thread_main(unsigned index) {
  auto& vcpu = *vcpus_[index];
  t_run = vcpu.run_data();  // before this thread can be kicked
  {
    std::lock_guard lock(mu_);
    handles_.push_back(pthread_self());
    clockid_t clock;
    if (pthread_getcpuclockid(pthread_self(), &clock) == 0) clocks_[index] = clock;
  }
  try {
    while (!vm_.stopping()) {
      if (!vcpu.run()) {
        vcpu.run_data()->immediate_exit = 0;
        continue;  // kicked: the loop condition decides
      }
      if (!handle_exit(vcpu)) break;
    }
  } catch (const std::exception& e) {
    vm_.request_exit(exit_status::kHostError, fmt::format("vCPU {}: {}", index, e.what()));
  }
  {
    // Leave the kick list while still alive: signalling a thread that has ended is undefined.
    std::lock_guard lock(mu_);
    std::erase(handles_, pthread_self());
  }
  if (running_.fetch_sub(1) == 1 && all_exited_) all_exited_();
}

void VcpuRunner::note_unhandled(const char* kind, uint64_t addr) {
  log_rate_limited(unhandled_.fetch_add(1) + 1, "guest accessed unmapped {} {:#x}; ignored", kind, addr);
}

bool VcpuRunner::handle_exit(KvmVcpu& vcpu) {
  kvm_run* run = vcpu.run_data();
  switch (run->exit_reason) {
    case KVM_EXIT_IO: {
      auto* data = reinterpret_cast<uint8_t*>(run) + run->io.data_offset;
      for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
        bool ok = run->io.direction == KVM_EXIT_IO_OUT ? pio_.write(run->io.port, data, run->io.size)
                                                       : pio_.read(run->io.port, data, run->io.size);
        if (!ok) note_unhandled("port", run->io.port);
      }
      return true;
    }
    case KVM_EXIT_MMIO: {
      bool ok = run->mmio.is_write ? mmio_.write(run->mmio.phys_addr, run->mmio.data, run->mmio.len)
                                   : mmio_.read(run->mmio.phys_addr, run->mmio.data, run->mmio.len);
      if (!ok) note_unhandled("MMIO address", run->mmio.phys_addr);
      return true;
    }
    case KVM_EXIT_INTR:
      return true;
    case KVM_EXIT_HLT:
      return false;  // no interrupts are ever delivered: a halted vCPU is done
    case KVM_EXIT_SHUTDOWN:
      vm_.request_exit(exit_status::kTripleFault,
                       fmt::format("guest triple fault on vCPU {} at rip={:#x}", vcpu.index(), vcpu.get_regs().rip));
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      vm_.request_exit(0, {});
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      vm_.request_exit(exit_status::kKvmError, fmt::format("KVM internal error on vCPU {} (suberror {}) at rip={:#x}",
                                                          vcpu.index(), run->internal.suberror, vcpu.get_regs().rip));
      return false;
    case KVM_EXIT_FAIL_ENTRY:
      vm_.request_exit(exit_status::kKvmError, fmt::format("KVM entry failed on vCPU {} (reason {:#x})", vcpu.index(),
                                                          run->fail_entry.hardware_entry_failure_reason));
      return false;
    default:
      vm_.request_exit(exit_status::kKvmError,
                       fmt::format("unexpected KVM exit {} on vCPU {}", run->exit_reason, vcpu.index()));
      return false;
  }
}

}  // namespace hvmm
