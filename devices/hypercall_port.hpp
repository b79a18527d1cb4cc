// The built-in guest's hypercall port (abi/ports.hpp): a 32-bit write carries the GPA of a
// HypercallRequest, which is validated, dispatched through one handler table, served in the
// calling vCPU thread, and answered in its `ret` field.
//
// The port serves the core calls itself (console, sleep, wait/wake, panic, now, barrier); a device
// or a mechanism adds its own with set_handler() while the VM is being built (e.g. HyperAlloc's
// registration). Sleep and wait block that vCPU thread only (interruptible by stop()).
#pragma once
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "abi/ports.hpp"
#include "devices/bus.hpp"
#include "devices/vm_control.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm {

// Serves one request in the calling vCPU thread; returns the value for `ret` (an
// abi::HypercallStatus, or a call's own result). The request was copied out of guest memory.
using HypercallHandler = std::function<int64_t(const abi::HypercallRequest&)>;

class HypercallPort : public BusDevice {
 public:
  HypercallPort(const GuestMemory& mem, VmControl& vm, ConsoleSink& console);
  void bus_read(uint64_t offset, uint8_t* data, unsigned len) override;
  void bus_write(uint64_t offset, const uint8_t* data, unsigned len) override;

  // Adds the handler of call `nr`. Only before the vCPUs run; throws std::logic_error when `nr`
  // is not a defined call or already has a handler. A defined call without a handler answers
  // kUnsupported (e.g. registration with --reclaim none).
  void set_handler(abi::Hypercall nr, HypercallHandler h);

  // Wakes every blocked sleep/wait; later ones return at once. Called when the VM stops.
  void stop();
  // Wakes every vCPU blocked in kWait (they re-check their word): the host's stand-in for an
  // interrupt, e.g. when a virtio device has news for the guest's driver.
  void wake_all();

  // Barriers (Hypercall::kBarrier): `continue` grants one permit; a guest barrier takes one,
  // blocking until there is one. Permits granted early are kept, so scripts need not race the guest.
  void grant_barrier();
  bool barrier_waiting() const { return barrier_waiters_.load() > 0; }
  uint64_t barriers_passed() const { return barriers_passed_.load(); }

  uint64_t calls() const { return calls_.load(); }
  uint64_t invalid() const { return invalid_.load(); }

 private:
  int64_t console_write(const abi::HypercallRequest& r);
  int64_t wait(uint64_t gpa, uint32_t expected, uint64_t timeout_ns);
  int64_t sleep(uint64_t ns);
  int64_t barrier();
  void panic(const abi::HypercallRequest& r);
  void note_invalid(const char* what, uint64_t value);

  const GuestMemory& mem_;
  VmControl& vm_;
  ConsoleSink& console_;
  std::array<HypercallHandler, abi::kHypercallMax + 1> handlers_;  // by call number; set before the VM runs
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
  uint64_t wake_gen_ = 0;
  uint64_t barrier_permits_ = 0;
  std::atomic<unsigned> barrier_waiters_{0};
  std::atomic<uint64_t> barriers_passed_{0};
  std::atomic<uint64_t> calls_{0}, invalid_{0};
};

}  // namespace hvmm
