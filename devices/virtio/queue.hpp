// Split virtqueue (virtio 1.x §2.7), device side, over guest RAM the driver controls.
//
// Everything read from the guest is untrusted and validated. Error policy (one rule, everywhere):
// a *structural* error in guest-supplied queue memory (bad head index, descriptor loop, chain too
// long, nested indirect, buffer outside RAM, avail idx jumping past the queue size, ...) is counted
// and puts the queue in the `broken` state: pop() returns Pop::error once and nothing more is taken
// from the queue until it is reset. The transport turns that into DEVICE_NEEDS_RESET (the spec's
// way for a device to say "I cannot go on"). Payload errors (e.g. a PFN outside RAM inside a
// well-formed buffer) are the device's business: counted and skipped, the chain still completes.
//
// Concurrency: the guest runs concurrently. avail.idx is loaded with acquire, used.idx is stored
// with (at least) release, and our used.idx / avail_event stores are ordered before reading the
// driver's suppression fields by seq_cst store/load pairs (the counterpart of the driver's
// barrier). Descriptors are snapshotted once
// and validated from the copy, so a guest changing them under us cannot cause a TOCTOU.
// A Virtqueue is not itself thread-safe: the owning device serialises calls (VirtioDevice lock).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "abi/virtio.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm::virtio {

// Ring layout (kDescFlag*, VirtqDesc, VirtqUsedElem, kMaxQueueSize) from the shared ABI.
using namespace abi::virtio;

inline constexpr uint32_t kDefaultMaxIndirect = 1024;

// Why a queue refused to start or broke. Values are stable (used in logs and tests).
enum class QueueError : uint8_t {
  none,
  // set-up (QueueReady = 1)
  size_invalid,          // 0, not a power of two, or above the device maximum
  desc_misaligned,       // descriptor table not 16-byte aligned
  avail_misaligned,      // driver area not 2-byte aligned
  used_misaligned,       // device area not 4-byte aligned
  desc_outside_ram,
  avail_outside_ram,
  used_outside_ram,
  // run time
  avail_idx_jump,        // more than `size` new entries at once
  head_out_of_range,     // avail ring names a descriptor >= size
  next_out_of_range,     // `next` beyond the (direct or indirect) table
  chain_too_long,        // more descriptors than the table holds: a loop or an over-long chain
  indirect_not_negotiated,
  indirect_nested,       // INDIRECT inside an indirect table
  indirect_with_next,    // INDIRECT together with NEXT
  indirect_bad_size,     // len 0, not a multiple of 16, or too many entries
  indirect_outside_ram,
  buffer_outside_ram,
  readable_after_writable,
};
const char* to_string(QueueError e);

// One guest buffer of a chain; [gpa, gpa+len) was checked to lie in one RAM region (len > 0).
struct DescBuf {
  uint64_t gpa;
  uint32_t len;
};

// A popped descriptor chain: device-readable buffers first, then device-writable ones.
struct DescChain {
  uint16_t head = 0;
  std::vector<DescBuf> readable;
  std::vector<DescBuf> writable;
  uint64_t readable_bytes() const;
  uint64_t writable_bytes() const;
  void clear() {
    readable.clear();
    writable.clear();
  }
};

// Reads the readable part of a chain as one byte stream (buffers may split any value).
class ChainReader {
 public:
  ChainReader(const GuestMemory& mem, const DescChain& chain) : mem_(mem), chain_(chain) {}
  // Copies up to n bytes; returns how many were copied (short at the end of the chain).
  size_t read(void* dst, size_t n);

 private:
  const GuestMemory& mem_;
  const DescChain& chain_;
  size_t buf_ = 0;     // current buffer index
  uint64_t off_ = 0;   // offset inside it
};

struct QueueConfig {
  uint16_t size = 0;
  uint64_t desc = 0, avail = 0, used = 0;  // guest-physical ring addresses
  bool event_idx = false;                  // VIRTIO_F_EVENT_IDX negotiated
  bool indirect = false;                   // VIRTIO_F_INDIRECT_DESC negotiated
};

struct QueueCounters {
  uint64_t popped = 0;
  uint64_t pushed = 0;
  uint64_t errors = 0;       // structural errors (each breaks the queue)
  uint64_t bad_pushes = 0;   // push() of a head that was not popped / when not ready
};

class Virtqueue {
 public:
  explicit Virtqueue(const GuestMemory& mem, uint32_t max_indirect = kDefaultMaxIndirect)
      : mem_(mem), max_indirect_(max_indirect) {}

  // Validates the driver's set-up against RAM and `max_size`; on success the queue is ready.
  QueueError enable(const QueueConfig& cfg, uint16_t max_size);
  // Back to the state after device reset (not ready, not broken, indices 0). Counters are kept.
  void reset();

  bool ready() const { return ready_; }
  bool broken() const { return broken_; }
  QueueError last_error() const { return last_error_; }
  const QueueConfig& config() const { return cfg_; }
  const QueueCounters& counters() const { return counters_; }
  uint16_t last_avail_idx() const { return last_avail_; }
  uint16_t used_idx() const { return used_idx_; }

  enum class Pop { chain, empty, error };
  // Takes the next available chain. `error` means the queue just broke (see last_error()).
  Pop pop(DescChain& out);
  // Returns a popped chain to the driver with `written` bytes written into its writable part.
  bool push(uint16_t head, uint32_t written);
  // Notification decision after pushes (§2.7.10 / event index). Call once per batch.
  bool should_interrupt();

 private:
  Pop fail(QueueError e);
  QueueError walk(uint16_t head, DescChain& out) const;
  uint16_t load_avail_idx() const;

  const GuestMemory& mem_;
  uint32_t max_indirect_;
  QueueConfig cfg_{};
  bool ready_ = false;
  bool broken_ = false;
  QueueError last_error_ = QueueError::none;
  // Host pointers of the validated rings (the guest RAM mapping is fixed for its lifetime).
  uint8_t* desc_ = nullptr;
  uint8_t* avail_ = nullptr;
  uint8_t* used_ = nullptr;
  uint16_t last_avail_ = 0;
  uint16_t used_idx_ = 0;
  uint16_t signalled_used_ = 0;
  bool signalled_valid_ = false;
  uint32_t in_flight_ = 0;  // popped, not yet pushed
  QueueCounters counters_;
};

}  // namespace hvmm::virtio
