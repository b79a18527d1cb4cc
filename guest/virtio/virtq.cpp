#include "guest/virtio/virtq.hpp"

#include <atomic>
#include <cstring>

#include "guest/mem.hpp"

namespace guest::virtio {
namespace {
constexpr unsigned kRingOrder = 2;  // 16 KiB: descriptors, avail ring, used ring, 4 KiB apart

uint64_t gpa(const void* p) { return reinterpret_cast<uintptr_t>(p); }  // identity mapped
}  // namespace

bool Virtq::init(const MmioDevice& dev, unsigned index, bool interrupts) {
  dev.write(mmio_reg::kQueueSel, index);
  const uint32_t max = dev.read(mmio_reg::kQueueNumMax);
  if (max == 0 || dev.read(mmio_reg::kQueueReady) != 0) return false;
  uint16_t n = kMaxSize;
  while (n > max) n /= 2;  // the device's maximum need not be a power of two
  uint64_t frame;
  if (n == 0 || !mem_alloc(kRingOrder, frame)) return false;
  auto* base = static_cast<uint8_t*>(frame_ptr(frame));
  memset(base, 0, kPageSize << kRingOrder);

  dev_ = dev;
  index_ = index;
  size_ = n;
  desc_ = reinterpret_cast<VirtqDesc*>(base);
  avail_ = reinterpret_cast<uint16_t*>(base + kPageSize);
  used_ = base + 2 * kPageSize;
  for (uint16_t i = 0; i < n; i++) desc_[i].next = static_cast<uint16_t>(i + 1);
  free_head_ = 0;
  num_free_ = n;
  avail_[0] = interrupts ? 0 : kAvailFlagNoInterrupt;

  dev.write(mmio_reg::kQueueNum, n);
  dev.write(mmio_reg::kQueueDescLow, static_cast<uint32_t>(gpa(desc_)));
  dev.write(mmio_reg::kQueueDescHigh, static_cast<uint32_t>(gpa(desc_) >> 32));
  dev.write(mmio_reg::kQueueDriverLow, static_cast<uint32_t>(gpa(avail_)));
  dev.write(mmio_reg::kQueueDriverHigh, static_cast<uint32_t>(gpa(avail_) >> 32));
  dev.write(mmio_reg::kQueueDeviceLow, static_cast<uint32_t>(gpa(used_)));
  dev.write(mmio_reg::kQueueDeviceHigh, static_cast<uint32_t>(gpa(used_) >> 32));
  dev.write(mmio_reg::kQueueReady, 1);
  if (dev.read(mmio_reg::kQueueReady) != 1) {  // the device refused our set-up
    mem_free(frame, kRingOrder);
    size_ = 0;
    return false;
  }
  return true;
}

bool Virtq::add(const VirtqBuf* bufs, unsigned n) {
  if (n == 0 || n > num_free_) return false;
  const uint16_t head = free_head_;
  uint16_t i = head, last = head;
  for (unsigned k = 0; k < n; k++) {
    VirtqDesc& d = desc_[i];
    d.addr = bufs[k].addr;
    d.len = bufs[k].len;
    d.flags = static_cast<uint16_t>((bufs[k].device_writable ? kDescFlagWrite : 0) | (k + 1 < n ? kDescFlagNext : 0));
    last = i;
    i = d.next;
  }
  free_head_ = desc_[last].next;  // the chain's tail `next` still points into the free list
  num_free_ = static_cast<uint16_t>(num_free_ - n);
  avail_[2 + avail_idx_ % size_] = head;
  avail_idx_++;
  return true;
}

void Virtq::kick() {
  std::atomic_ref<uint16_t>(avail_[1]).store(avail_idx_, std::memory_order_release);
  dev_.write(mmio_reg::kQueueNotify, index_);
}

bool Virtq::pop_used(uint16_t& head, uint32_t& written) {
  const uint16_t idx = std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(used_ + 2)).load(std::memory_order_acquire);
  if (idx == last_used_) return false;
  const auto* ring = reinterpret_cast<const VirtqUsedElem*>(used_ + 4);
  const VirtqUsedElem e = ring[last_used_ % size_];
  last_used_++;
  if (e.id >= size_) return false;  // a broken device: leak the chain rather than corrupt the list
  head = static_cast<uint16_t>(e.id);
  written = e.len;
  // Back onto the free list: walk to the chain's tail.
  uint16_t i = head;
  uint16_t n = 1;
  while ((desc_[i].flags & kDescFlagNext) && n < size_) {
    i = desc_[i].next;
    n++;
  }
  desc_[i].next = free_head_;
  free_head_ = head;
  num_free_ = static_cast<uint16_t>(num_free_ + n);
  return true;
}

}  // namespace guest::virtio
