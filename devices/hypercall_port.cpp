#include "devices/hypercall_port.hpp"

#include "base/log.hpp"

#include <chrono>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

namespace hvmm {
using abi::Hypercall;
using abi::HypercallStatus;

namespace {
constexpr uint64_t kMaxConsoleWrite = 64 * 1024;
constexpr uint64_t kMaxPanicMessage = 512;

int64_t status(HypercallStatus s) { return static_cast<int64_t>(s); }

const char* vector_name(uint64_t v) {
  static const char* const names[32] = {
      "divide error (#DE)", "debug (#DB)", "NMI", "breakpoint (#BP)", "overflow (#OF)",
      "bound range (#BR)", "invalid opcode (#UD)", "device not available (#NM)", "double fault (#DF)",
      "coprocessor overrun", "invalid TSS (#TS)", "segment not present (#NP)", "stack fault (#SS)",
      "general protection (#GP)", "page fault (#PF)", "reserved", "x87 error (#MF)",
      "alignment check (#AC)", "machine check (#MC)", "SIMD error (#XM)", "virtualization (#VE)",
      "control protection (#CP)"};
  return v < 22 ? names[v] : "exception";
}
}  // namespace

HypercallPort::HypercallPort(const GuestMemory& mem, VmControl& vm, ConsoleSink& console)
    : mem_(mem), vm_(vm), console_(console) {
  set_handler(Hypercall::kConsoleWrite, [this](const auto& r) { return console_write(r); });
  set_handler(Hypercall::kSleep, [this](const auto& r) { return sleep(r.args[0]); });
  set_handler(Hypercall::kWait, [this](const auto& r) {
    return wait(r.args[0], static_cast<uint32_t>(r.args[1]), r.args[2]);
  });
  set_handler(Hypercall::kWake, [this](const auto&) {
    wake_all();
    return status(HypercallStatus::kOk);
  });
  set_handler(Hypercall::kPanic, [this](const auto& r) {
    panic(r);
    return status(HypercallStatus::kOk);
  });
  set_handler(Hypercall::kBarrier, [this](const auto&) { return barrier(); });
  set_handler(Hypercall::kNow, [](const auto&) -> int64_t {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  });
}

void HypercallPort::set_handler(Hypercall nr, HypercallHandler h) {
  const auto i = static_cast<uint32_t>(nr);
  if (i == 0 || i >= handlers_.size()) throw std::logic_error(fmt::format("hypercall {}: not a defined call", i));
  if (handlers_[i]) throw std::logic_error(fmt::format("hypercall {}: a handler is already set", i));
  handlers_[i] = std::move(h);
}

void HypercallPort::bus_read(uint64_t, uint8_t* data, unsigned len) { std::memset(data, 0xff, len); }

void HypercallPort::note_invalid(const char* what, uint64_t value) {
  log_rate_limited(invalid_.fetch_add(1) + 1, "hypercall: {} ({:#x}); ignored", what, value);
}

void HypercallPort::bus_write(uint64_t, const uint8_t* data, unsigned len) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  if (len != 4) return note_invalid("access is not 32 bits wide", len);
  uint32_t gpa;
  std::memcpy(&gpa, data, 4);
  abi::HypercallRequest r;
  if (gpa % alignof(abi::HypercallRequest) || !mem_.read_obj(gpa, r))
    return note_invalid("request block outside guest RAM or misaligned", gpa);
  int64_t ret;
  if (r.nr < handlers_.size() && handlers_[r.nr]) {
    ret = handlers_[r.nr](r);
  } else {
    if (r.nr == 0 || r.nr > abi::kHypercallMax) note_invalid("unknown hypercall", r.nr);
    ret = status(HypercallStatus::kUnsupported);  // defined but not offered by this VM: no complaint
  }
  mem_.write(gpa + offsetof(abi::HypercallRequest, ret), &ret, sizeof ret);
}

int64_t HypercallPort::console_write(const abi::HypercallRequest& r) {
  uint64_t len = std::min(r.args[1], kMaxConsoleWrite);
  auto* p = mem_.hva(r.args[0], len);
  if (!p) {
    note_invalid("console buffer outside guest RAM", r.args[0]);
    return status(HypercallStatus::kInvalid);
  }
  console_.write(std::string_view(reinterpret_cast<const char*>(p), len));
  return status(HypercallStatus::kOk);
}

int64_t HypercallPort::sleep(uint64_t ns) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(std::min<uint64_t>(ns, 1ull << 62));
  std::unique_lock lock(mu_);
  cv_.wait_until(lock, deadline, [&] { return stopped_; });
  return status(HypercallStatus::kOk);
}

int64_t HypercallPort::wait(uint64_t gpa, uint32_t expected, uint64_t timeout_ns) {
  auto* p = mem_.hva(gpa, 4);
  if (!p || gpa % 4) {
    note_invalid("wait word outside guest RAM or misaligned", gpa);
    return status(HypercallStatus::kInvalid);
  }
  std::atomic_ref<uint32_t> word(*reinterpret_cast<uint32_t*>(p));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(std::min<uint64_t>(timeout_ns, 1ull << 62));
  std::unique_lock lock(mu_);
  // Futex semantics: the word is checked under the lock that wake() takes, so a change followed
  // by a wake cannot slip between the check and the sleep.
  uint64_t gen = wake_gen_;
  while (!stopped_ && word.load(std::memory_order_acquire) == expected && wake_gen_ == gen) {
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) return status(HypercallStatus::kTimedOut);
  }
  return status(HypercallStatus::kOk);
}

int64_t HypercallPort::barrier() {
  std::unique_lock lock(mu_);
  barrier_waiters_++;
  cv_.wait(lock, [&] { return stopped_ || barrier_permits_ > 0; });
  barrier_waiters_--;
  if (stopped_) return status(HypercallStatus::kOk);
  barrier_permits_--;
  barriers_passed_++;
  return status(HypercallStatus::kOk);
}

void HypercallPort::grant_barrier() {
  {
    std::lock_guard lock(mu_);
    barrier_permits_++;
  }
  cv_.notify_all();
}

void HypercallPort::wake_all() {
  {
    std::lock_guard lock(mu_);
    wake_gen_++;
  }
  cv_.notify_all();
}

void HypercallPort::stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
}

void HypercallPort::panic(const abi::HypercallRequest& r) {
  if (r.args[0] == abi::kPanicSoftware) {
    char msg[kMaxPanicMessage + 1] = {};
    // Copy what lies in RAM, up to the limit; a bad pointer still stops the VM.
    for (uint64_t i = 0; i < kMaxPanicMessage && mem_.read(r.args[1] + i, &msg[i], 1) && msg[i]; i++) {}
    return vm_.request_exit(exit_status::kGuestException, fmt::format("guest panic: {}", msg));
  }
  uint64_t vec = r.args[0];
  std::string m = fmt::format("guest exception: {} (vector {}) at rip={:#x}", vector_name(vec), vec, r.args[2]);
  if (vec == 14) m += fmt::format(", address {:#x}", r.args[3]);
  if (r.args[1]) m += fmt::format(", error code {:#x}", r.args[1]);
  m += fmt::format(" (cs={:#x} rflags={:#x})", r.args[5], r.args[4]);
  vm_.request_exit(exit_status::kGuestException, m);
}

}  // namespace hvmm
