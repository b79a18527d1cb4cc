// virtio-mem (device ID 24, virtio 1.2 §5.15): memory hot(un)plug in blocks of a device-managed
// guest-physical region. One queue (guest-request); the driver asks to PLUG / UNPLUG ranges of
// blocks, to UNPLUG_ALL, or for the STATE of a range; the host sets requested_size.
//
// The device is a bitmap of plugged blocks plus validation; what plugging means for host memory
// (populate and map, or MADV_DONTNEED and make inaccessible) is the MemBackend's business. The
// bitmap only changes when the backend reported success, so it always says what the backend did.
//
// Error policy (as the balloon's): a structural queue error is counted in bad_chains and the
// transport marks the device DEVICE_NEEDS_RESET. A well-formed chain whose buffers cannot hold a
// request and a response, lie in unplugged blocks of this device, or would be unplugged by the
// request itself is counted in bad_buffers and completed with 0 bytes written (nothing changes).
// Everything else is answered in the response.
//
// Only VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE is offered, and a driver that does not accept it is
// refused (§5.15.5 allows the device to stop operating): the backend may make unplugged memory
// inaccessible. Device reset keeps the block states (§5.15.5.2: the device MUST NOT change them);
// a driver finding plugged_size > 0 at start-up sends UNPLUG_ALL.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "devices/virtio/device.hpp"
#include "devices/virtio/queue.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm::virtio {

// What plugging means for host memory. Called with the device lock held, in the vCPU thread, for
// block-aligned ranges inside the usable region, each wholly in the opposite state. Must not call
// back into the device, except plugged() (which takes no lock).
struct MemBackend {
  virtual ~MemBackend() = default;
  // Make [gpa, gpa+len) usable by the guest. false: nothing changed (the driver gets ERROR).
  virtual bool plug(uint64_t gpa, uint64_t len) = 0;
  // Take [gpa, gpa+len) away: discard its contents and make it inaccessible. false: it stays plugged.
  virtual bool unplug(uint64_t gpa, uint64_t len) = 0;
};

struct VirtioMemCounters {
  uint64_t plug_requests = 0;
  uint64_t unplug_requests = 0;
  uint64_t unplug_all_requests = 0;
  uint64_t state_requests = 0;
  uint64_t acks = 0;
  uint64_t nacks = 0;
  uint64_t busy = 0;               // BUSY responses (set_busy)
  uint64_t errors = 0;             // ERROR responses, whatever the reason
  uint64_t invalid_requests = 0;   // ERROR for a bad range (alignment, 0 blocks, outside usable) or type
  uint64_t state_conflicts = 0;    // ERROR because a block already was in the target state
  uint64_t backend_failures = 0;   // ERROR because the backend failed
  uint64_t bad_buffers = 0;        // chains completed with 0 bytes: no room, unplugged, or unplugging itself
  uint64_t bad_chains = 0;         // structural queue errors (the device then needs a reset)
  uint64_t notify_bound_hits = 0;  // notifies that stopped at max_requests_per_notify()
  uint64_t config_writes = 0;      // the driver wrote the read-only config space (ignored)
};

struct VirtioMemStatus {
  uint64_t block_size = 0;
  uint64_t region_addr = 0;
  uint64_t region_size = 0;
  uint64_t usable_region_size = 0;
  uint64_t plugged_size = 0;
  uint64_t requested_size = 0;
  uint64_t features = 0;  // accepted by the driver (0 before FEATURES_OK)
  bool busy = false;
  VirtioMemCounters counters;
};

class VirtioMem final : public VirtioDevice {
 public:
  static constexpr uint64_t kMinBlockSize = 4096;
  // Bitmap bound (2 MiB of bitmap); with 2 MiB blocks that is 32 TiB of region.
  static constexpr uint64_t kMaxBlocks = uint64_t{1} << 24;

  struct Options {
    uint64_t region_addr = 0;         // guest-physical, block-aligned
    uint64_t region_size = 0;         // > 0, a multiple of block_size
    uint64_t block_size = 2ull << 20;  // power of two >= kMinBlockSize
    uint64_t usable_region_size = 0;  // 0: the whole region; else a multiple of block_size <= region_size
    uint16_t queue_size = 128;        // power of two
  };
  // Throws std::invalid_argument for an inconsistent geometry. `mem` and `backend` must outlive it.
  // All blocks start unplugged; requested_size starts at 0.
  VirtioMem(const GuestMemory& mem, MemBackend& backend, Options opt);

  // Requests processed per notify at most (queue size): a guest that keeps refilling the ring
  // cannot pin the vCPU thread. Leftover chains wait for the next notify.
  uint32_t max_requests_per_notify() const { return opt_.queue_size; }

  // VMM side; any thread (takes the device lock).
  // Rounds `bytes` down to the block size and clamps it to the usable region; config change and
  // interrupt when the value changes. Returns the requested size now in effect.
  uint64_t set_requested_size(uint64_t bytes);
  // While busy, PLUG, UNPLUG and UNPLUG_ALL are answered BUSY (e.g. while the VMM snapshots the
  // layout); STATE is still answered.
  void set_busy(bool busy);
  // Unplugs every plugged block through the backend, as on a system reset (§5.15.6: the device
  // SHOULD). Stops at the first backend failure and returns false; what was unplugged stays so.
  bool unplug_all();
  VirtioMemStatus status();
  // Is `gpa` inside a plugged block? Lock-free (one atomic load), so a backend may call it; the
  // answer may be stale as soon as it returns unless the caller holds lock().
  bool plugged(uint64_t gpa) const;

  // VirtioDevice
  uint32_t device_id() const override { return mem::kDeviceId; }
  uint64_t device_features() const override { return mem::kFeatureUnpluggedInaccessible; }
  bool accept_features(uint64_t features) override;
  unsigned num_queues() const override { return 1; }
  uint16_t queue_max_size(unsigned index) const override { return index == 0 ? opt_.queue_size : 0; }
  void read_config(uint32_t offset, uint8_t* data, unsigned len) override;
  void write_config(uint32_t offset, const uint8_t* data, unsigned len) override;
  void queue_notify(unsigned index) override;
  void reset() override;

 private:
  // A run of blocks, numbered from the region start.
  struct Blocks {
    uint64_t first, count;
  };
  enum class RangeState { plugged, unplugged, mixed };

  // Returns the bytes written into the chain (0 or sizeof(mem::Response)).
  uint32_t handle_chain(const DescChain& chain);
  // The blocks of this device's region that a buffer overlaps, if any.
  std::optional<Blocks> blocks_of(const DescBuf& d) const;
  bool buffers_usable(const DescChain& chain) const;
  bool unplugs_response(const mem::Request& req, const DescChain& chain) const;
  mem::Response handle(const mem::Request& req);
  mem::Response change_state(const mem::Request& req, bool plug);
  mem::Response state(const mem::Request& req);
  mem::Response unplug_everything();
  mem::Response respond(uint16_t type, uint16_t block_state = 0);
  bool valid_range(uint64_t addr, uint64_t nb_blocks, Blocks& out) const;
  bool unplug_all_locked();

  // Bitmap. find: the first block >= from in the wanted state, or nblocks_.
  uint64_t find(uint64_t from, bool want_plugged) const;
  void assign(Blocks b, bool plug);
  RangeState range_state(Blocks b) const;
  uint64_t count_plugged(Blocks b) const;
  uint64_t gpa_of(uint64_t block) const { return opt_.region_addr + block * opt_.block_size; }

  const GuestMemory& mem_;
  MemBackend& backend_;
  Options opt_;
  uint64_t nblocks_ = 0;
  uint64_t usable_blocks_ = 0;
  // Written only under the device lock; atomics so that plugged() can read without it.
  std::unique_ptr<std::atomic<uint64_t>[]> bitmap_;
  uint64_t plugged_blocks_ = 0;
  uint64_t requested_ = 0;
  uint64_t accepted_ = 0;
  bool busy_ = false;
  VirtioMemCounters counters_;
  DescChain chain_;  // reused between pops
};

}  // namespace hvmm::virtio
