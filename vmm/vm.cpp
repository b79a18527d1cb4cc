#include "vmm/vm.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fmt/format.h>
#include <stdexcept>
#include <thread>

#include "abi/layout.hpp"
#include "abi/limits.hpp"
#include "base/fd.hpp"
#include "memory/host_memory.hpp"
#include "reclaim/footprint.hpp"
#include "vmm/api/http_server.hpp"
#include "vmm/api/size_parse.hpp"
#include "vmm/api/vm_json.hpp"
#include "abi/trace.hpp"
#include "vmm/boot/boot_params.hpp"
#include "vmm/mechanisms/none.hpp"
#include "vmm/status_line.hpp"
#include "vmm/x86/long_mode.hpp"

namespace hvmm {
namespace {
constexpr int kWakeMain = SIGUSR2;  // wakes the main thread's sigtimedwait() at once

void install_wake_handler() {
  struct sigaction sa{};
  sa.sa_handler = [](int) {};  // only interrupts sigtimedwait (harmless after run() unblocked it)
  sigemptyset(&sa.sa_mask);
  sigaction(kWakeMain, &sa, nullptr);
}
}  // namespace

std::string kernel_cmdline(const std::string& cmdline, const std::string& workload) {
  return workload.empty() ? cmdline : cmdline + (cmdline.empty() ? "-- " : " -- ") + workload;
}

Vm::Vm(const VmConfig& cfg) : cfg_(cfg), sys_(), vm_(sys_) {
  if (cfg.cpus == 0 || cfg.cpus > abi::kMaxWorkloadCpus || cfg.cpus > sys_.max_vcpus())
    throw std::runtime_error(fmt::format("--cpus {}: this host's KVM and hvmm allow 1 to {}", cfg.cpus,
                                         std::min(abi::kMaxWorkloadCpus, sys_.max_vcpus())));
  const layout::Range hot = layout::hotplug_region(cfg.mem_bytes, cfg.hotplug_bytes);
  mem_ = hot.size ? std::make_unique<GuestMemory>(cfg.mem_bytes, hot.start, hot.size, cfg.hotplug_block)
                  : std::make_unique<GuestMemory>(cfg.mem_bytes);
  uint32_t slot = 0;
  for (auto& r : mem_->regions()) vm_.set_memory_region(slot++, r.gpa, r.size, r.hva);
  devices_ = std::make_unique<DeviceManager>(*mem_, *this, *this, *this);

  // The mechanism adds its devices (and maybe service vCPUs) before the vCPUs and the FDT exist.
  reclaim_ = cfg.reclaim ? cfg.reclaim : std::make_shared<NoReclaim>();
  auto kernel = load_kernel(cfg);
  VmWiring wiring{*mem_, *devices_, cfg.cpus};
  // Boot data and the kernel image: the guest must never point the host at them.
  wiring.protected_ranges.push_back({0, kernel.phys_end});
  if (auto pt = layout::high_page_tables(cfg.mem_bytes, map_end()); pt.size)
    wiring.protected_ranges.push_back({pt.start, pt.size});
  const layout::Range initrd = cfg.trace_path.empty() ? layout::Range{0, 0} : load_trace(cfg.trace_path, kernel.phys_end);
  if (initrd.size) wiring.protected_ranges.push_back({initrd.start, initrd.size});
  // The hot-plug region has no memory slot: its mechanism adds and removes them as blocks come and go.
  wiring.kvm = &vm_;
  wiring.first_free_memslot = slot;
  wiring.memslots = sys_.nr_memslots();
  reclaim_->attach(wiring);

  const unsigned total = cfg.cpus + wiring.service_cpus;
  if (wiring.service_cpus > abi::kMaxServiceCpus || total > sys_.max_vcpus() || total > boot::kFdtMaxCpus)
    throw std::runtime_error(fmt::format("{} workload + {} service vCPUs: more than this host allows ({})", cfg.cpus,
                                         wiring.service_cpus, sys_.max_vcpus()));
  std::vector<std::unique_ptr<KvmVcpu>> vcpus;
  for (unsigned i = 0; i < total; i++) vcpus.push_back(std::make_unique<KvmVcpu>(sys_, vm_, i));
  runner_ = std::make_unique<VcpuRunner>(std::move(vcpus), devices_->pio(), devices_->mmio(), *this,
                                         [this] { wake_main(); });
  boot::FdtConfig fdt{.ram_bytes = cfg.mem_bytes,
                      .cpus = total,
                      .tsc_hz = runner_->vcpu(0).tsc_khz() * 1000,
                      .bootargs = {},
                      .device_nodes = devices_->fdt_nodes(),
                      .workload_cpus = cfg.cpus,
                      .map_end = map_end(),
                      .initrd_start = initrd.start,
                      .initrd_size = trace_bytes_,
                      .guest_alloc = cfg.guest_alloc};
  boot(kernel, fdt);
  // Admission check (issue 13, defect 7): a warning, not a refusal; --mem-limit is the remedy.
  if (auto info = read_host_meminfo())
    if (auto w = admission_warning(cfg.mem_limit ? cfg.mem_limit : guest_bytes(), cfg.mem_limit != 0, *info))
      fmt::print(stderr, "hvmm: warning: {}\n", *w);
}

Vm::~Vm() {
  request_exit(exit_status::kHostError, {});
  runner_.reset();  // joins the vCPU threads
  if (reclaim_) reclaim_->stop();  // its threads may use the devices: stop them before those go
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

// --trace FILE: the file goes into guest memory as the initrd (abi/layout.hpp, initrd_region); the
// guest validates its contents (guest/replay_trace.cpp), the host only its size.
layout::Range Vm::load_trace(const std::string& path, uint64_t kernel_end) {
  auto data = boot::read_file(path, "loading trace " + path);
  if (data.empty() || data.size() > abi::trace::kMaxFileBytes)
    throw std::invalid_argument(fmt::format("--trace {}: {} bytes; a trace has 1 to {} bytes", path, data.size(),
                                            abi::trace::kMaxFileBytes));
  const uint64_t floor = (kernel_end + layout::kRamAlign - 1) / layout::kRamAlign * layout::kRamAlign;
  const layout::Range r = layout::initrd_region(cfg_.mem_bytes, map_end(), data.size(), floor);
  if (!r.size)
    throw std::invalid_argument(fmt::format("--trace {}: {} bytes do not fit in low guest RAM above the kernel", path, data.size()));
  if (!mem_->write(r.start, data.data(), data.size()))
    throw std::runtime_error(fmt::format("--trace {}: initrd [{:#x}, {:#x}) is not in guest RAM", path, r.start, r.end()));
  trace_bytes_ = data.size();
  return r;
}

void Vm::boot(const boot::LoadedKernel& kernel, boot::FdtConfig& fdt) {
  auto supported = sys_.supported_cpuid();
  x86::write_boot_gdt(*mem_);
  x86::write_identity_page_tables(*mem_, cfg_.mem_bytes, map_end());

  const std::string cmdline = kernel_cmdline(cfg_.cmdline, cfg_.workload);
  fdt.bootargs = cmdline;
  auto dtb = boot::build_fdt(fdt);
  boot::write_boot_params(*mem_, {cfg_.mem_bytes, cmdline, dtb, map_end(), fdt.initrd_start, fdt.initrd_size});

  for (unsigned i = 0; i < runner_->size(); i++) {
    KvmVcpu& v = runner_->vcpu(i);
    v.set_cpuid(x86::vcpu_cpuid(supported, v.index(), fdt.cpus));
    v.set_msrs(x86::boot_msrs());
    auto s = v.get_sregs();
    x86::setup_long_mode_sregs(s);
    v.set_sregs(s);
    v.set_regs(x86::boot_regs(kernel.entry));
    v.set_mp_state_runnable();
  }
}

int Vm::run() {
  install_wake_handler();
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
  api::ApiRouter router(*this);
  std::unique_ptr<api::HttpServer> server;  // first: a socket error must leave nothing behind
  if (!cfg_.api_sock.empty()) server = std::make_unique<api::HttpServer>(cfg_.api_sock, router);
  StatusLine line(meter, [this] { return status_fields(); }, status_line_enabled(cfg_.quiet));
  status_line_.store(&line, std::memory_order_release);
  if (cfg_.auto_reclaim) {
    std::lock_guard lock(auto_mu_);
    reclaim_->start_auto(*cfg_.auto_reclaim);
    auto_period_ = cfg_.auto_reclaim;
  }

  runner_->start();
  std::thread limit_thread;
  if (cfg_.mem_limit) limit_thread = std::thread([this] { apply_mem_limit(); });
  timespec tick{1, 0};  // a safety net: request_exit() and the last vCPU wake us with kWakeMain
  while (!stopping()) {
    int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM)
      request_exit(exit_status::kInterrupted, fmt::format("stopped by {}", sig == SIGINT ? "SIGINT" : "SIGTERM"));
    if (runner_->running() == 0 && !stopping()) request_exit(0, "all vCPUs halted");
  }
  // First the mechanism: a resize that waits for the guest returns now, so that the control server's
  // threads can be joined at once (issue 13, defect 3), and auto-reclaim ends.
  reclaim_->stop();
  if (limit_thread.joinable()) limit_thread.join();
  runner_->join();
  server.reset();
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
  // Errors start with "hvmm:"; a clean or requested stop is information, without the prefix.
  const bool info = status_ == 0 || status_ == exit_status::kInterrupted;
  if (!message_.empty()) fmt::print(stderr, "{}{}\n", info ? "" : "hvmm: ", message_);
  return status_;
}

uint64_t Vm::map_end() const { return mem_ && mem_->hotplug() ? mem_->hotplug()->end() : 0; }

std::string Vm::status_fields() {
  // Most important first: a narrow terminal drops the fields at the end (compose_status_line).
  return fmt::format("host RSS {} | {} | RAM {}", format_size(read_process_rss_bytes()), reclaim_->status_line(),
                     format_size(guest_bytes()));
}

api::VmStatus Vm::status() {
  api::VmStatus s;
  s.mechanism = reclaim_->name();
  s.reclaim = reclaim_->status();
  s.guest_total_bytes = guest_bytes();
  s.host_rss_bytes = read_process_rss_bytes();
  s.vcpus = cfg_.cpus;
  s.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  s.stopping = stopping();
  // CPU time of every vCPU thread (host view): the service vCPUs' share is what the guest's
  // drivers (balloon, free page reporting) cost.
  auto cpu = runner_->cpu_seconds();
  for (unsigned i = 0; i < cpu.size(); i++) s.vcpu_cpu.push_back({i, i >= cfg_.cpus, cpu[i]});
  // What the guest asked for and how much of it was refused (counted, logged only at first).
  HypercallPort& hc = devices_->hypercalls();
  s.hypercalls = hc.calls();
  s.invalid_hypercalls = hc.invalid();
  s.unhandled_accesses = runner_->unhandled_accesses();
  s.barrier_waiting = hc.barrier_waiting();
  s.barriers_passed = hc.barriers_passed();
  s.mem_limit_bytes = cfg_.mem_limit;
  s.mem_limit_applied = mem_limit_applied_.load(std::memory_order_acquire);
  s.mem_limit_refusals = mem_limit_refusals_.load(std::memory_order_relaxed);
  return s;
}

api::VmInfo Vm::info() {
  api::VmInfo i;
  i.mechanism = reclaim_->name();
  i.mem_bytes = guest_bytes();
  i.boot_mem_bytes = cfg_.mem_bytes;
  i.mem_min_bytes = cfg_.mem_min_bytes;
  i.vcpus = cfg_.cpus;
  i.service_vcpus = runner_->size() - cfg_.cpus;
  i.kernel = cfg_.kernel_path.empty() ? "built-in" : cfg_.kernel_path;
  i.cmdline = cfg_.cmdline;
  i.workload = cfg_.workload;
  {
    std::lock_guard lock(auto_mu_);
    if (auto_period_) i.auto_reclaim_period_ms = static_cast<uint64_t>(auto_period_->count());
  }
  i.state = stopping() ? "stopping" : "running";
  i.uptime_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  return i;
}

api::AutoReclaimOutcome Vm::set_auto_reclaim(const api::AutoReclaimRequest& req) {
  api::AutoReclaimOutcome out;
  auto refuse = [&](api::ErrorCode code, std::string why) {
    out.code = code;
    out.error = std::move(why);
    return out;
  };
  if (stopping()) return refuse(api::ErrorCode::kStopping, "the VM is stopping");
  if (std::string_view(reclaim_->name()) == "none")
    return refuse(api::ErrorCode::kUnsupported, "--reclaim none has no automatic reclamation");
  std::lock_guard lock(auto_mu_);
  const std::string_view mech = reclaim_->name();
  const auto period = req.period.value_or(auto_period_.value_or(cfg_.auto_reclaim_default));
  // Off, or a new period: the running mode stops first (a new period starts it again below).
  if (auto_period_ && (!req.enabled || *auto_period_ != period)) {
    if (!reclaim_->stop_auto())
      return refuse(api::ErrorCode::kUnsupported, fmt::format("{} cannot stop its automatic reclamation", mech));
    auto_period_.reset();
  }
  if (req.enabled && !auto_period_) {
    // The balloons' free page reporting is a feature the guest's driver negotiates at boot.
    if (mech.starts_with("balloon") && !cfg_.auto_reclaim)
      return refuse(api::ErrorCode::kUnsupported,
                    "the balloon's free page reporting is negotiated at boot: start the VM with --auto-reclaim");
    if (mech == "virtio-mem" && cfg_.mem_limit)
      return refuse(api::ErrorCode::kUnsupported,
                    "virtio-mem's automatic mode plugs memory by itself, which --mem-limit does not allow");
    reclaim_->start_auto(period);
    auto_period_ = period;
  }
  out.ok = true;
  if (auto_period_) out.period_ms = static_cast<uint64_t>(auto_period_->count());
  return out;
}

api::ResizeOutcome Vm::resize(uint64_t target_bytes) {
  if (stopping()) return api::ResizeOutcome::failure("the VM is stopping", api::ErrorCode::kStopping);
  if (target_bytes < cfg_.mem_min_bytes)
    return api::ResizeOutcome::failure(fmt::format("{} is below the VM's floor of {} (--mem-min)", format_size(target_bytes),
                                                   format_size(cfg_.mem_min_bytes)),
                                       api::ErrorCode::kBelowFloor);
  if (target_bytes > guest_bytes())
    return api::ResizeOutcome::failure(fmt::format("{} is beyond the VM's maximum of {} (--mem)", format_size(target_bytes),
                                                   format_size(guest_bytes())),
                                       api::ErrorCode::kAboveMaximum);
  if (cfg_.mem_limit && target_bytes > cfg_.mem_limit) {
    mem_limit_refusals_.fetch_add(1, std::memory_order_relaxed);
    return api::ResizeOutcome::failure(fmt::format("resize to {}: above the --mem-limit of {}", format_size(target_bytes),
                                                   format_size(cfg_.mem_limit)),
                                       api::ErrorCode::kAboveMaximum);
  }
  return reclaim_->resize(target_bytes);
}

void Vm::apply_mem_limit() {
  // The mechanism refuses until the guest is ready (registration, DRIVER_OK); a balloon whose guest
  // is out of memory fails after its stall timeout. Retry until it holds or the VM stops.
  while (!stopping()) {
    if (reclaim_->resize(cfg_.mem_limit).ok) {
      mem_limit_applied_.store(true, std::memory_order_release);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Vm::continue_guest() { devices_->hypercalls().grant_barrier(); }

void Vm::shutdown() { request_exit(0, "shut down through the control API"); }

void Vm::request_exit(int status, std::string message) {
  {
    std::lock_guard lock(mu_);
    if (stopping_.exchange(true)) return;
    status_ = status;
    message_ = std::move(message);
  }
  // Everything that may block a vCPU thread or the main thread lets go.
  if (devices_) devices_->hypercalls().stop();
  if (runner_) runner_->kick_all();
  wake_main();
}

void Vm::wake_main() {
  std::lock_guard lock(mu_);
  if (main_thread_) pthread_kill(*main_thread_, kWakeMain);
}

void Vm::write(std::string_view bytes) {
  std::lock_guard lock(out_mu_);
  if (StatusLine* line = status_line_.load(std::memory_order_acquire)) return line->print_above(bytes, STDOUT_FILENO);
  write_fully(STDOUT_FILENO, bytes);  // if stdout is gone the guest's output is lost; the VM runs on
}

void Vm::serial_out(uint8_t byte) { write(std::string_view(reinterpret_cast<const char*>(&byte), 1)); }

}  // namespace hvmm
