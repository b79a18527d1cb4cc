// --reclaim virtio-mem: memory hot(un)plug. --mem is the VM's maximum; the guest boots with `boot`
// bytes of RAM (never unplugged) and a virtio-mem device (devices/virtio/mem.hpp) manages the rest,
// a region above RAM (layout::hotplug_region) in 2 MiB blocks. The guest's driver
// (guest/virtio/mem.cpp, on a service vCPU) plugs and unplugs blocks to follow requested_size.
//
// Unplugged memory is really gone (VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE): a plugged block has a KVM
// memory slot of its own and is accessible in GuestMemory; unplugging removes the slot (a guest
// access becomes an MMIO exit, counted and answered with all-ones by the vCPU runner), makes the
// block inaccessible to device models and hypercalls, and discards it. One slot per block rather
// than merged runs: a slot then never has to be split or moved while the guest may use its memory,
// and the cost (about 40 us per plug, 140 us per unplug on this host, 0.5 s for 7 GiB) is small
// next to the guest's own work. KVM's slot count bounds the region (32764 here: 64 GiB).
//
// resize(target) sets requested_size = target - boot and waits for the guest's driver; automatic
// mode (--auto-reclaim) is the reference's policy on the free memory the driver reports by hypercall.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "devices/virtio/mem.hpp"
#include "devices/virtio/mmio.hpp"
#include "vmm/mechanisms/mechanism.hpp"

namespace hvmm {

class VirtioMemMechanism final : public ReclaimMechanism {
 public:
  struct Options {
    std::chrono::milliseconds stall_timeout{10000};  // resize fails when plugged_size stops moving this long
    uint64_t auto_step = 0;                          // --virtio-mem-step; 0: the VM's size / 16
    uint64_t floor = 0;                              // --mem-min: the auto policy never goes below it
  };
  VirtioMemMechanism() : VirtioMemMechanism(Options{}) {}
  explicit VirtioMemMechanism(Options opt);
  ~VirtioMemMechanism() override;

  const char* name() const override { return "virtio-mem"; }
  void attach(VmWiring& w) override;
  api::MechanismStatus status() override;
  api::ResizeOutcome resize(uint64_t target_bytes) override;
  void start_auto(std::chrono::milliseconds period) override;
  bool stop_auto() override;
  std::string status_line() override;
  void stop() override;

  // The auto policy (the reference's): one decision from the guest's free memory and the current
  // usable size; returns the new usable target, bounded to [lo, hi]. Public for unit tests.
  static uint64_t auto_target(uint64_t usable, uint64_t free, uint64_t step, uint64_t lo, uint64_t hi);

 private:
  class Backend;
  int64_t on_free_report(uint64_t free_bytes, bool urgent);
  void auto_loop(std::chrono::milliseconds period);
  uint64_t usable_bytes() const;
  bool driver_ok();

  Options opt_;
  uint64_t boot_ = 0, region_ = 0, total_ = 0, step_ = 0;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<virtio::VirtioMem> dev_;
  virtio::MmioTransport* transport_ = nullptr;  // the DeviceManager's
  std::mutex resize_mu_;  // one resize at a time
  std::atomic<uint64_t> last_resize_ms_{0};
  // The driver's free-memory reports (bounded by the VM's size).
  std::atomic<uint64_t> free_reports_{0}, bad_free_reports_{0}, last_free_{0};
  std::atomic<bool> have_free_{false}, free_lie_{false};
  // Automatic mode.
  std::atomic<bool> auto_on_{false};
  std::atomic<uint64_t> auto_period_ms_{0}, auto_grows_{0}, auto_shrinks_{0};
  std::mutex auto_mu_;
  std::condition_variable auto_cv_;
  bool stopping_ = false, auto_kick_ = false;
  bool auto_cancel_ = false;  // stop_auto(): the policy thread ends, the device goes on
  std::mutex join_mu_;        // stop() and stop_auto() may both want to join the policy thread
  std::atomic<bool> stop_resize_{false};  // stop(): a running resize returns at once
  std::chrono::steady_clock::time_point last_urgent_{};  // the guest's last out-of-memory report
  std::thread auto_thread_;
};

}  // namespace hvmm
