#include "vmm/vm.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

#include "guest-alloc/abi_ports.hpp"
#include "vmm/boot/boot_params.hpp"
#include "vmm/boot/elf_loader.hpp"
#include "vmm/boot/fdt_builder.hpp"
#include "reclaim/footprint.hpp"
#include "vmm/api/server.hpp"
#include "vmm/api/size_parse.hpp"
#include "vmm/fd.hpp"
#include "vmm/layout.hpp"
#include "vmm/reclaim_none.hpp"
#include "vmm/status_line.hpp"
#include "vmm/x86/long_mode.hpp"

namespace hvmm {
namespace {
constexpr int kKickSignal = SIGUSR1;  // interrupts KVM_RUN in a vCPU thread
constexpr int kWakeMain = SIGUSR2;    // wakes the main thread's sigtimedwait() at once

void install_kick_handler() {
  struct sigaction sa{};
  sa.sa_handler = [](int) {};  // only interrupts KVM_RUN
  sigemptyset(&sa.sa_mask);
  sigaction(kKickSignal, &sa, nullptr);  // no SA_RESTART: KVM_RUN returns EINTR
  sigaction(kWakeMain, &sa, nullptr);    // harmless if it arrives after run() unblocked it
}
}  // namespace

Vm::Vm(const VmConfig& cfg) : sys_(), vm_(sys_), cfg_(cfg) {
  if (cfg.cpus == 0 || cfg.cpus > sys_.max_vcpus())
    throw std::runtime_error(fmt::format("--cpus {}: this host's KVM allows 1 to {}", cfg.cpus, sys_.max_vcpus()));
  mem_ = std::make_unique<GuestMemory>(cfg.mem_bytes);
  for (uint32_t slot = 0; auto& r : mem_->regions()) vm_.set_memory_region(slot++, r.gpa, r.size, r.hva);

  serial_ = std::make_unique<Serial16550>(*this, *this);
  exit_port_ = std::make_unique<ExitPort>(*this);
  hypercalls_ = std::make_unique<HypercallPort>(*mem_, *this, *this);
  pio_.add(abi::kPortSerial, 8, serial_.get());
  pio_.add(abi::kPortExit, 4, exit_port_.get());
  pio_.add(abi::kPortHypercall, 4, hypercalls_.get());

  // The mechanism adds its devices (and maybe service vCPUs) before the vCPUs and the FDT exist.
  reclaim_ = cfg.reclaim ? cfg.reclaim : std::make_shared<NoReclaim>();
  auto kernel = load_kernel(cfg);
  boot::FdtConfig fdt{cfg.mem_bytes, cfg.cpus, 0, {}, std::nullopt, {}};
  VmWiring wiring{*mem_, pio_, mmio_, fdt, *hypercalls_, cfg.cpus};
  // Boot data and the kernel image: a mechanism must never let the guest point the host at them.
  wiring.protected_ranges.push_back({0, kernel.phys_end});
  if (auto pt = layout::high_page_tables(cfg.mem_bytes); pt.size) wiring.protected_ranges.push_back({pt.start, pt.size});
  reclaim_->attach(wiring);
  const unsigned total = cfg.cpus + wiring.service_cpus;
  if (total > sys_.max_vcpus() || total > boot::kFdtMaxCpus)
    throw std::runtime_error(fmt::format("{} workload + {} service vCPUs: more than this host allows", cfg.cpus, wiring.service_cpus));
  fdt.cpus = total;
  fdt.workload_cpus = cfg.cpus;
  for (unsigned i = 0; i < total; i++) vcpus_.push_back(std::make_unique<KvmVcpu>(sys_, vm_, i));
  boot(cfg, kernel, fdt);
}

Vm::~Vm() {
  request_exit(exit_status::kHostError, {});
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

boot::LoadedKernel Vm::load_kernel(const VmConfig& cfg) {
  std::vector<uint8_t> file;
  std::span<const uint8_t> image = cfg.builtin_kernel;
  std::string what = "loading the built-in kernel";
  if (!cfg.kernel_path.empty()) {
    what = "loading kernel " + cfg.kernel_path;
    file = boot::read_file(cfg.kernel_path, what);
    image = file;
  }
  auto kernel = boot::load_elf64(image, *mem_, what);
  if (kernel.phys_start < layout::kKernelStart)
    throw std::runtime_error(fmt::format("{}: segment at {:#x} overlaps the boot area below 1 MiB", what, kernel.phys_start));
  return kernel;
}

void Vm::boot(const VmConfig& cfg, const boot::LoadedKernel& kernel, boot::FdtConfig& fdt) {
  auto supported = sys_.supported_cpuid();
  x86::write_boot_gdt(*mem_);
  x86::write_identity_page_tables(*mem_, cfg.mem_bytes);

  std::string cmdline = cfg.cmdline;
  if (!cfg.workload.empty()) cmdline += (cmdline.empty() ? "-- " : " -- ") + cfg.workload;
  fdt.tsc_hz = vcpus_[0]->tsc_khz() * 1000;
  fdt.bootargs = cmdline;
  auto dtb = boot::build_fdt(fdt);
  boot::write_boot_params(*mem_, {cfg.mem_bytes, cmdline, dtb});

  for (auto& v : vcpus_) {
    v->set_cpuid(x86::vcpu_cpuid(supported, v->index(), fdt.cpus));
    v->set_msrs(x86::boot_msrs());
    auto s = v->get_sregs();
    x86::setup_long_mode_sregs(s);
    v->set_sregs(s);
    v->set_regs(x86::boot_regs(kernel.entry));
    v->set_mp_state_runnable();
  }
}

int Vm::run() {
  install_kick_handler();
  // SIGINT/SIGTERM are taken synchronously below; every thread started from here inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, kWakeMain);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  {
    std::lock_guard lock(mu_);
    main_thread_ = pthread_self();
  }

  started_ = std::chrono::steady_clock::now();
  FootprintMeter meter;
  std::unique_ptr<api::ControlServer> server;  // first: a socket error must leave nothing behind
  if (!cfg_.api_sock.empty()) server = std::make_unique<api::ControlServer>(cfg_.api_sock, *this);
  StatusLine line(meter, [this] { return status_fields(); }, status_line_enabled(cfg_.quiet));
  status_line_.store(&line, std::memory_order_release);
  if (cfg_.auto_reclaim) reclaim_->start_auto(*cfg_.auto_reclaim);

  running_ = static_cast<unsigned>(vcpus_.size());
  for (unsigned i = 0; i < vcpus_.size(); i++) threads_.emplace_back([this, i] { vcpu_thread(i); });

  timespec tick{1, 0};  // a safety net: request_exit() and the last vCPU wake us with kWakeMain
  while (!stopping()) {
    int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM)
      request_exit(exit_status::kInterrupted, fmt::format("stopped by {}", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    if (running_.load() == 0 && !stopping())
      request_exit(0, "all vCPUs halted");
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  server.reset();
  reclaim_->stop();
  {
    std::lock_guard lock(out_mu_);  // no console write may be inside print_above now
    status_line_.store(nullptr, std::memory_order_release);
  }
  line.stop();
  {
    std::lock_guard lock(mu_);
    main_thread_.reset();
  }
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  std::lock_guard lock(mu_);
  if (!message_.empty()) fmt::print(stderr, "hvmm: {}\n", message_);
  return status_;
}

std::string Vm::status_fields() {
  return fmt::format("RAM {} | host RSS {} | {}", format_size(cfg_.mem_bytes), format_size(read_process_rss_bytes()),
                     reclaim_->status_line());
}

nlohmann::json Vm::status() {
  nlohmann::json j = reclaim_->status();
  j["mechanism"] = reclaim_->name();
  j["guest_total_bytes"] = cfg_.mem_bytes;
  j["host_rss_bytes"] = read_process_rss_bytes();
  j["vcpus"] = cfg_.cpus;
  j["uptime_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  j["stopping"] = stopping();
  // CPU time of every vCPU thread (host view): the service vCPUs' share is what the guest's
  // drivers (balloon, free page reporting) cost.
  nlohmann::json cpu = nlohmann::json::array();
  {
    std::lock_guard lock(mu_);
    for (unsigned i = 0; i < vcpus_.size(); i++) {
      timespec ts{};
      bool ok = cpu_clocks_.count(i) && clock_gettime(cpu_clocks_[i], &ts) == 0;
      cpu.push_back({{"vcpu", i}, {"service", i >= cfg_.cpus}, {"cpu_s", ok ? ts.tv_sec + ts.tv_nsec / 1e9 : 0.0}});
    }
  }
  j["vcpu_cpu"] = cpu;
  // What the guest asked for and how much of it was refused (counted, logged only at first).
  j["hypercalls"] = hypercalls_->calls();
  j["invalid_hypercalls"] = hypercalls_->invalid();
  j["unhandled_accesses"] = unhandled_.load();
  j["barrier_waiting"] = hypercalls_->barrier_waiting();
  j["barriers_passed"] = hypercalls_->barriers_passed();
  return j;
}

nlohmann::json Vm::resize(uint64_t target_bytes) {
  if (stopping()) return {{"ok", false}, {"error", "the VM is stopping"}};
  return reclaim_->resize(target_bytes);
}

nlohmann::json Vm::continue_guest() {
  hypercalls_->grant_barrier();
  return {{"ok", true}};
}

nlohmann::json Vm::shutdown() {
  request_exit(0, "shut down through the control API");
  return {{"ok", true}};
}

void Vm::request_exit(int status, std::string message) {
  {
    std::lock_guard lock(mu_);
    if (stopping_.exchange(true)) return;
    status_ = status;
    message_ = std::move(message);
  }
  kick_all();
}

void Vm::kick_all() {
  if (hypercalls_) hypercalls_->stop();
  for (auto& v : vcpus_) v->run_data()->immediate_exit = 1;
  std::lock_guard lock(mu_);
  for (auto h : handles_) pthread_kill(h, kKickSignal);
  if (main_thread_) pthread_kill(*main_thread_, kWakeMain);
}

void Vm::write(std::string_view bytes) {
  std::lock_guard lock(out_mu_);
  if (StatusLine* line = status_line_.load(std::memory_order_acquire)) return line->print_above(bytes, STDOUT_FILENO);
  write_fully(STDOUT_FILENO, bytes);  // if stdout is gone the guest's output is lost; the VM runs on
}

void Vm::serial_out(uint8_t byte) { write(std::string_view(reinterpret_cast<const char*>(&byte), 1)); }

void Vm::note_unhandled(const char* kind, uint64_t addr) {
  if (unhandled_.fetch_add(1) < 8) fmt::print(stderr, "hvmm: guest accessed unmapped {} {:#x}; ignored\n", kind, addr);
}

void Vm::vcpu_thread(unsigned index) {
  {
    std::lock_guard lock(mu_);
    handles_.push_back(pthread_self());
    clockid_t clock;
    if (pthread_getcpuclockid(pthread_self(), &clock) == 0) cpu_clocks_[index] = clock;
  }
  auto& vcpu = *vcpus_[index];
  try {
    while (!stopping()) {
      if (!vcpu.run()) {
        vcpu.run_data()->immediate_exit = 0;
        continue;  // kicked: the loop condition decides
      }
      if (!handle_exit(vcpu)) break;
    }
  } catch (const std::exception& e) {
    request_exit(exit_status::kHostError, fmt::format("vCPU {}: {}", index, e.what()));
  }
  if (running_.fetch_sub(1) == 1) {
    std::lock_guard lock(mu_);
    if (main_thread_) pthread_kill(*main_thread_, kWakeMain);
  }
}

bool Vm::handle_exit(KvmVcpu& vcpu) {
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
      request_exit(exit_status::kTripleFault,
                   fmt::format("guest triple fault on vCPU {} at rip={:#x}", vcpu.index(), vcpu.get_regs().rip));
      return false;
    case KVM_EXIT_SYSTEM_EVENT:
      request_exit(0, {});
      return false;
    case KVM_EXIT_INTERNAL_ERROR:
      request_exit(exit_status::kKvmError, fmt::format("KVM internal error on vCPU {} (suberror {}) at rip={:#x}",
                                                      vcpu.index(), run->internal.suberror, vcpu.get_regs().rip));
      return false;
    case KVM_EXIT_FAIL_ENTRY:
      request_exit(exit_status::kKvmError, fmt::format("KVM entry failed on vCPU {} (reason {:#x})", vcpu.index(),
                                                      run->fail_entry.hardware_entry_failure_reason));
      return false;
    default:
      request_exit(exit_status::kKvmError, fmt::format("unexpected KVM exit {} on vCPU {}", run->exit_reason, vcpu.index()));
      return false;
  }
}

}  // namespace hvmm
