// Driver side of a split virtqueue (virtio 1.x §2.7). The host processes a queue synchronously
// inside the QueueNotify write, so after kick() returns the used ring already holds the answer.
// Not thread-safe: one owner (or the owner's lock) per queue.
#pragma once
#include <cstdint>

#include "guest/virtio/mmio.hpp"

namespace guest::virtio {

struct VirtqBuf {
  uint64_t addr;  // guest-physical
  uint32_t len;
  bool device_writable;
};

class Virtq {
 public:
  static constexpr uint16_t kMaxSize = 256;  // rings fit one 16 KiB block

  // Allocates the rings and enables queue `index` on `dev`. `interrupts`: false sets
  // VIRTQ_AVAIL_F_NO_INTERRUPT (callers that poll the used ring right after kick() need none).
  // False when the device lacks the queue or memory is short.
  bool init(const MmioDevice& dev, unsigned index, bool interrupts);
  // Adds one chain (device-readable buffers must come first). False when descriptors are short.
  bool add(const VirtqBuf* bufs, unsigned n);
  // Publishes the added chains and notifies the device (one exit).
  void kick();
  // Takes one used chain, returning its descriptors to the free list.
  bool pop_used(uint16_t& head, uint32_t& written);
  uint16_t size() const { return size_; }
  bool ready() const { return size_ != 0; }

 private:
  MmioDevice dev_;
  unsigned index_ = 0;
  uint16_t size_ = 0;
  VirtqDesc* desc_ = nullptr;
  uint16_t* avail_ = nullptr;  // flags, idx, ring[size], used_event
  uint8_t* used_ = nullptr;    // flags, idx, ring[size] of VirtqUsedElem, avail_event
  uint16_t free_head_ = 0, num_free_ = 0;
  uint16_t avail_idx_ = 0, last_used_ = 0;
};

}  // namespace guest::virtio
