#include "guest/hypercall.hpp"

#include "guest/arch.hpp"
#include "guest/percpu.hpp"

namespace guest {
using hvmm::abi::Hypercall;

int64_t hypercall(Hypercall nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5) {
  auto& r = this_cpu()->req;
  r.nr = static_cast<uint32_t>(nr);
  r.args[0] = a0;
  r.args[1] = a1;
  r.args[2] = a2;
  r.args[3] = a3;
  r.args[4] = a4;
  r.args[5] = a5;
  r.ret = 0;
  // Identity-mapped kernel image below 4 GiB: the virtual address is the guest-physical address.
  outl(hvmm::abi::kPortHypercall, static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&r)));
  return r.ret;
}

void console_write(const char* s, uint64_t len) {
  hypercall(Hypercall::kConsoleWrite, reinterpret_cast<uintptr_t>(s), len);
}
void sleep_ns(uint64_t ns) { hypercall(Hypercall::kSleep, ns); }
bool wait_on(const volatile uint32_t* word, uint32_t expected, uint64_t timeout_ns) {
  return hypercall(Hypercall::kWait, reinterpret_cast<uintptr_t>(word), expected, timeout_ns) !=
         static_cast<int64_t>(hvmm::abi::HypercallStatus::kTimedOut);
}
bool wait_changed(const volatile uint32_t* word, uint32_t expected, uint64_t timeout_ns) {
  const uint64_t deadline = host_now_ns() + timeout_ns;
  for (uint64_t now; __atomic_load_n(word, __ATOMIC_ACQUIRE) == expected;) {
    if ((now = host_now_ns()) >= deadline) return false;
    wait_on(word, expected, deadline - now);
  }
  return true;
}
void wake(const volatile uint32_t* word) { hypercall(Hypercall::kWake, reinterpret_cast<uintptr_t>(word)); }
uint64_t host_now_ns() { return static_cast<uint64_t>(hypercall(Hypercall::kNow)); }

void exit_vm(uint32_t code) {
  for (;;) outl(hvmm::abi::kPortExit, code);  // the VMM stops this vCPU; never returns
}

void panic(const char* msg) {
  hypercall(Hypercall::kPanic, hvmm::abi::kPanicSoftware, reinterpret_cast<uintptr_t>(msg));
  exit_vm(255);
}

}  // namespace guest
