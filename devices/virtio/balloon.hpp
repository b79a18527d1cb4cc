// virtio-balloon (device ID 5, virtio 1.x §5.5): inflate/deflate queues, statistics queue,
// deflate-on-OOM and free page reporting. PAGE_POISON and FREE_PAGE_HINT are not offered.
//
// Queue numbering follows what Linux and QEMU do: queues that do not exist for the accepted
// features are skipped, so reporting is queue 3 when STATS_VQ was accepted and 2 otherwise.
//
// Inflated and reported ranges are coalesced (sorted, de-duplicated, merged into maximal runs that
// stay inside one RAM region) and handed to a BalloonBackend. Inflate and deflate PFNs are u32
// numbers of 4 KiB pages; a PFN outside RAM is counted and skipped (the chain still completes).
//
// With Options::huge_pages the device also offers hvmm's VIRTIO_BALLOON_F_HVMM_HUGE_PAGES
// (abi/virtio.hpp). A driver that accepts it balloons 2 MiB pages: each PFN must be 2 MiB aligned
// with its whole 2 MiB in one RAM region (else it is counted as invalid and skipped), and
// `num_pages`, `actual` and the page counters count 2 MiB units. A driver that does not accept it
// gets the 4 KiB balloon. The device keeps a map of ballooned pages (devices/virtio/balloon_pages.hpp):
// it is the host's own count of what is in the balloon, which a resize checks against the driver's
// `actual` (a driver can write any `actual`; issue 13, defect 4), and with 4 KiB pages it discards
// each 2 MiB frame once more, whole, when its last page goes in, so that the host can back it with
// a huge page again after a deflate.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "devices/virtio/balloon_pages.hpp"
#include "devices/virtio/device.hpp"
#include "devices/virtio/queue.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm::virtio {

// Where balloon memory goes. Called with the device lock held, in the vCPU thread.
struct BalloonBackend {
  // frame: all 512 pages of the 2 MiB frame at gpa are in a 4 KiB balloon and were discarded
  // already, in pieces; discarding it whole lets the host back it with a huge page again.
  enum class Why { inflate, report, frame };
  virtual ~BalloonBackend() = default;
  // Give [gpa, gpa+len) (4 KiB aligned, inside one RAM region) back to the host.
  virtual bool discard(uint64_t gpa, uint64_t len, Why why) = 0;
  // The guest took [gpa, gpa+len) back out of the balloon. Nothing to do by default: the next
  // guest touch faults fresh memory in.
  virtual void deflate(uint64_t gpa, uint64_t len) { (void)gpa, (void)len; }
};

struct BalloonCounters {
  uint64_t inflated_pages = 0;    // valid, distinct-per-chain PFNs inflated (in balloon pages)
  uint64_t deflated_pages = 0;
  uint64_t reported_bytes = 0;    // free page reporting
  uint64_t invalid_pfns = 0;      // outside RAM, a misaligned huge PFN (or a trailing partial PFN)
  uint64_t invalid_reports = 0;   // reported buffers with no whole 4 KiB page
  uint64_t ignored_pfns = 0;      // beyond Balloon::kMaxPfnsPerChain
  uint64_t bad_chains = 0;        // structural queue errors (the device then needs a reset)
  uint64_t discard_failures = 0;
  uint64_t discard_calls = 0;     // backend calls (after coalescing)
  uint64_t whole_frame_discards = 0;  // 4 KiB balloon: 2 MiB frames discarded whole once full
  uint64_t stats_updates = 0;
  uint64_t unknown_stat_tags = 0;
  uint64_t extra_stats_buffers = 0;  // driver queued a second stats buffer while we held one
};

struct BalloonGuestStats {
  std::array<uint64_t, balloon::kStatTags> value{};
  uint32_t valid_mask = 0;  // bit t set: value[t] came with the last update
  uint64_t updates = 0;
};

struct BalloonStatus {
  uint32_t target_pages = 0;  // in balloon pages of page_bytes
  uint32_t actual_pages = 0;  // the driver's word: untrusted, may be anything
  // The host's own count: distinct balloon pages the driver inflated and has not deflated (from
  // the device's page map, never from `actual`). A resize is done when both agree.
  uint32_t host_pages = 0;
  uint64_t page_bytes = balloon::kPageSize;  // 2 MiB when the driver accepted kFeatureHvmmHugePages
  uint64_t features = 0;  // accepted by the driver (0 before FEATURES_OK)
  BalloonCounters counters;
  BalloonGuestStats guest;  // the last statistics the driver sent
};

class Balloon final : public VirtioDevice {
 public:
  static constexpr uint32_t kMaxPfnsPerChain = 65536;  // more is ignored (and counted): bounds vCPU time
  static constexpr uint32_t kMaxStatsPerChain = 256;

  struct Options {
    bool stats = true;
    bool deflate_on_oom = true;
    bool reporting = true;
    bool huge_pages = false;    // offer kFeatureHvmmHugePages (--reclaim balloon-huge)
    bool whole_frames = true;   // 4 KiB balloon: discard full 2 MiB frames whole (balloon_pages.hpp)
                                // (the page map exists either way: it is the host's count)
    uint16_t queue_size = 256;  // power of two, >= kMinReportingQueue
  };
  // Throws std::invalid_argument for a bad queue size. `mem` and `backend` must outlive it.
  Balloon(const GuestMemory& mem, BalloonBackend& backend, Options opt);
  Balloon(const GuestMemory& mem, BalloonBackend& backend) : Balloon(mem, backend, Options{}) {}

  // VMM side; any thread. Pages are balloon pages of page_bytes(): 4 KiB, or 2 MiB when the driver
  // accepted kFeatureHvmmHugePages. The target is kept in bytes, so it means the same memory if a
  // driver resets and negotiates the other page size.
  void set_target_pages(uint32_t pages);  // config change + interrupt when it changes
  uint32_t target_pages();
  uint32_t actual_pages();
  uint32_t host_pages();  // BalloonStatus::host_pages
  uint64_t page_bytes();
  // Hands the held statistics buffer back so the driver refills it; false when none is held.
  bool request_stats();
  BalloonStatus stats();

  // VirtioDevice
  uint32_t device_id() const override { return balloon::kDeviceId; }
  uint64_t device_features() const override { return offered_; }
  bool accept_features(uint64_t features) override;
  unsigned num_queues() const override { return unsigned(roles_.size()); }
  uint16_t queue_max_size(unsigned index) const override;
  void read_config(uint32_t offset, uint8_t* data, unsigned len) override;
  void write_config(uint32_t offset, const uint8_t* data, unsigned len) override;
  void queue_notify(unsigned index) override;
  void reset() override;

  enum class Role { inflate, deflate, stats, reporting };
  // Queue index of a role for the current feature set, if that queue exists.
  std::optional<unsigned> queue_index(Role r) const;

 private:
  void layout_queues(uint64_t features);
  void process_pfns(Virtqueue& q, unsigned index, bool inflate);
  void process_stats(Virtqueue& q, unsigned index);
  void process_reports(Virtqueue& q, unsigned index);
  bool huge() const { return accepted_ & balloon::kFeatureHvmmHugePages; }
  // Bytes per balloon page.
  uint64_t unit() const { return huge() ? balloon::kHugePageSize : balloon::kPageSize; }
  uint32_t target_units() const { return uint32_t(target_bytes_ / unit()); }
  // The gpa of a guest PFN if it names a valid balloon page for the accepted page size.
  bool pfn_gpa(uint32_t pfn, uint64_t& gpa) const;
  // Sorts `pages` (unit()-aligned gpas), merges them into runs and hands each run on.
  void flush_pages(std::vector<uint64_t>& pages, bool inflate);
  void inflate_run(uint64_t gpa, uint64_t len);
  void deflate_run(uint64_t gpa, uint64_t len);
  bool discard(uint64_t gpa, uint64_t len, BalloonBackend::Why why);

  const GuestMemory& mem_;
  BalloonBackend& backend_;
  Options opt_;
  uint64_t offered_ = 0;
  uint64_t accepted_ = 0;
  std::vector<Role> roles_;
  uint64_t target_bytes_ = 0;  // a multiple of the page size it was set in
  uint32_t actual_ = 0;       // the driver's word, in its balloon pages
  std::optional<uint16_t> stats_head_;  // the driver's stats buffer we hold on to
  BalloonCounters counters_;
  BalloonGuestStats guest_stats_;
  DescChain chain_;                  // reused between pops
  std::vector<uint64_t> pages_;      // reused between chains
  uint32_t host_units() const { return uint32_t(std::min<uint64_t>(page_map_.pages() * BalloonPageMap::kPage / unit(), UINT32_MAX)); }
  BalloonPageMap page_map_;          // 4 KiB pages in the balloon: the host's count, whole frames
  std::vector<uint64_t> whole_;      // frames the last run completed (reused)
};

}  // namespace hvmm::virtio
