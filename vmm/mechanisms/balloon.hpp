// --reclaim balloon: the classic baseline. A virtio-balloon device (devices/virtio) on a virtio-mmio
// slot from the DeviceManager, driven by the built-in guest's balloon driver on a service vCPU
// (guest/virtio/).
//
// resize(target) sets the balloon target to (RAM - target) / 4 KiB pages and waits for the guest
// to get there; inflated pages are discarded (MADV_DONTNEED) as they arrive, and each 2 MiB frame
// once more, whole, when its last page went in (so that it is a huge page again when reused:
// devices/virtio/balloon_pages.hpp). Free page reporting
// (--auto-reclaim) is offered to the guest only when asked for at launch, as a Linux host enables it
// per device: the guest then reports free 2 MiB blocks 2 s after frees and the host discards them.
// Without it the guest keeps reusing its resident memory first, which is what the balloon relies on.
//
// --reclaim balloon-huge (Options::huge): the same device also offers hvmm's 2 MiB balloon pages
// (VIRTIO_BALLOON_F_HVMM_HUGE_PAGES, abi/virtio.hpp), which the built-in driver accepts: it inflates
// and deflates 2 MiB blocks, and the target and `actual` count 2 MiB units. A driver that does not
// accept it (a stock Linux guest) gets the 4 KiB balloon; sizes follow whatever it negotiated.
//
// The driver's `actual` is its own word: usable memory and a resize's success follow the host's own
// count of ballooned pages (virtio::BalloonStatus::host_pages), and `actual` only has to agree with
// it (issue 13, defect 4). A resize waits at most until the VM stops, the host's count stops moving
// for Options::stall_timeout, or its deadline (defect 3).
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include "devices/virtio/balloon.hpp"
#include "devices/virtio/mmio.hpp"
#include "vmm/mechanisms/mechanism.hpp"

namespace hvmm {

class BalloonMechanism final : public ReclaimMechanism {
 public:
  struct Options {
    std::chrono::milliseconds stats_period{2000};   // how often we ask the guest for statistics
    // A resize fails when the host's count of ballooned pages stops moving this long (the driver
    // is stuck, the guest out of memory, or it lies about `actual`)...
    std::chrono::milliseconds stall_timeout{10000};
    // ...or when it takes longer than this plus 1 s per 256 MiB moved, however it moves (a driver
    // that keeps inflating and deflating must not hold the resize forever).
    std::chrono::milliseconds deadline_base{10000};
    bool reporting = false;                          // offer VIRTIO_BALLOON_F_REPORTING (--auto-reclaim)
    bool huge = false;                               // offer 2 MiB balloon pages (balloon-huge)
    bool deflate_on_oom = true;                      // off with --mem-limit: the guest must not take pages back
  };
  BalloonMechanism() : BalloonMechanism(Options{}) {}
  explicit BalloonMechanism(Options opt);
  ~BalloonMechanism() override;

  const char* name() const override { return opt_.huge ? "balloon-huge" : "balloon"; }
  void attach(VmWiring& w) override;
  api::MechanismStatus status() override;
  api::ResizeOutcome resize(uint64_t target_bytes) override;
  void start_auto(std::chrono::milliseconds period) override;
  bool stop_auto() override;
  std::string status_line() override;
  void stop() override;

 private:
  class Backend;
  void stats_poller();
  // RAM minus `pages` balloon pages of page_bytes (bounded by RAM: `pages` may be the guest's word).
  uint64_t usable_bytes(uint32_t pages, uint64_t page_bytes) const;

  Options opt_;
  const GuestMemory* mem_ = nullptr;
  uint64_t ram_bytes_ = 0;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<virtio::Balloon> balloon_;
  virtio::MmioTransport* transport_ = nullptr;  // the DeviceManager's
  std::mutex resize_mu_;  // one resize at a time
  std::atomic<uint64_t> last_resize_ms_{0};
  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool stopping_ = false;  // guarded by poll_mu_
  std::atomic<bool> stop_resize_{false};  // stop(): a running resize returns at once
  std::thread poller_;
};

}  // namespace hvmm
