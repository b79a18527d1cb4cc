// The built-in guest's hypercall port (guest-alloc/abi_ports.hpp): a 32-bit write carries the GPA
// of a HypercallRequest, which is validated, served in the calling vCPU thread, and answered in
// its `ret` field. Sleep and wait block that vCPU thread only (interruptible by stop()).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

#include "devices/bus.hpp"
#include "devices/vm_control.hpp"
#include "guest-alloc/abi_ports.hpp"
#include "vmm/guest_memory.hpp"

namespace hvmm {

class HypercallPort : public BusDevice {
 public:
  HypercallPort(const GuestMemory& mem, VmControl& vm, ConsoleSink& console);
  void bus_read(uint64_t offset, uint8_t* data, unsigned len) override;
  void bus_write(uint64_t offset, const uint8_t* data, unsigned len) override;

  // Wakes every blocked sleep/wait; later ones return at once. Called when the VM stops.
  void stop();
  // Wakes every vCPU blocked in kWait (they re-check their word): the host's stand-in for an
  // interrupt, e.g. when a virtio device has news for the guest's driver.
  void wake_all();
  // Serves kHyperallocRegister (a0 = GPA of the record); without a handler the call is unsupported.
  void set_register_handler(std::function<int64_t(uint64_t gpa)> h) { register_ = std::move(h); }

  // Barriers (Hypercall::kBarrier): `continue` grants one permit; a guest barrier takes one,
  // blocking until there is one. Permits granted early are kept, so scripts need not race the guest.
  void grant_barrier();
  bool barrier_waiting() const { return barrier_waiters_.load() > 0; }
  uint64_t barriers_passed() const { return barriers_passed_.load(); }

  uint64_t calls() const { return calls_.load(); }
  uint64_t invalid() const { return invalid_.load(); }

 private:
  int64_t dispatch(const abi::HypercallRequest& r);
  int64_t wait(uint64_t gpa, uint32_t expected, uint64_t timeout_ns);
  int64_t sleep(uint64_t ns);
  int64_t barrier();
  void panic(const abi::HypercallRequest& r);
  void note_invalid(const char* what, uint64_t value);

  const GuestMemory& mem_;
  VmControl& vm_;
  ConsoleSink& console_;
  std::function<int64_t(uint64_t)> register_;
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
