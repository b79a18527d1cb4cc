// virtio-balloon (device ID 5, virtio 1.x §5.5): inflate/deflate queues, statistics queue,
// deflate-on-OOM and free page reporting. PAGE_POISON and FREE_PAGE_HINT are not offered.
//
// Queue numbering follows what Linux and QEMU do: queues that do not exist for the accepted
// features are skipped, so reporting is queue 3 when STATS_VQ was accepted and 2 otherwise.
//
// Inflated and reported ranges are coalesced (sorted, de-duplicated, merged into maximal runs that
// stay inside one RAM region) and handed to a BalloonBackend. Inflate and deflate PFNs are u32
// numbers of 4 KiB pages; a PFN outside RAM is counted and skipped (the chain still completes).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "devices/virtio/device.hpp"
#include "devices/virtio/queue.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm::virtio {

// Where balloon memory goes. Called with the device lock held, in the vCPU thread.
struct BalloonBackend {
  enum class Why { inflate, report };
  virtual ~BalloonBackend() = default;
  // Give [gpa, gpa+len) (4 KiB aligned, inside one RAM region) back to the host.
  virtual bool discard(uint64_t gpa, uint64_t len, Why why) = 0;
  // The guest took [gpa, gpa+len) back out of the balloon. Nothing to do by default: the next
  // guest touch faults fresh memory in.
  virtual void deflate(uint64_t gpa, uint64_t len) { (void)gpa, (void)len; }
};

struct BalloonCounters {
  uint64_t inflated_pages = 0;    // valid, distinct-per-chain PFNs inflated
  uint64_t deflated_pages = 0;
  uint64_t reported_bytes = 0;    // free page reporting
  uint64_t invalid_pfns = 0;      // outside RAM (or a trailing partial PFN)
  uint64_t invalid_reports = 0;   // reported buffers with no whole 4 KiB page
  uint64_t ignored_pfns = 0;      // beyond Balloon::kMaxPfnsPerChain
  uint64_t bad_chains = 0;        // structural queue errors (the device then needs a reset)
  uint64_t discard_failures = 0;
  uint64_t discard_calls = 0;     // backend calls (after coalescing)
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
  uint32_t target_pages = 0;
  uint32_t actual_pages = 0;
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
    uint16_t queue_size = 256;  // power of two, >= kMinReportingQueue
  };
  // Throws std::invalid_argument for a bad queue size. `mem` and `backend` must outlive it.
  Balloon(const GuestMemory& mem, BalloonBackend& backend, Options opt);
  Balloon(const GuestMemory& mem, BalloonBackend& backend) : Balloon(mem, backend, Options{}) {}

  // VMM side; any thread.
  void set_target_pages(uint32_t pages);  // config change + interrupt when it changes
  uint32_t target_pages();
  uint32_t actual_pages();
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
  // Sorts `pages` (4 KiB-aligned gpas), merges them into runs and hands each run on.
  void flush_pages(std::vector<uint64_t>& pages, bool inflate);
  bool discard(uint64_t gpa, uint64_t len, BalloonBackend::Why why);

  const GuestMemory& mem_;
  BalloonBackend& backend_;
  Options opt_;
  uint64_t offered_ = 0;
  uint64_t accepted_ = 0;
  std::vector<Role> roles_;
  uint32_t target_ = 0;
  uint32_t actual_ = 0;
  std::optional<uint16_t> stats_head_;  // the driver's stats buffer we hold on to
  BalloonCounters counters_;
  BalloonGuestStats guest_stats_;
  DescChain chain_;                  // reused between pops
  std::vector<uint64_t> pages_;      // reused between chains
};

}  // namespace hvmm::virtio
