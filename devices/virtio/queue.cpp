#include "devices/virtio/queue.hpp"

#include <atomic>
#include <bit>
#include <cstring>

namespace hvmm::virtio {
namespace {

static_assert(std::endian::native == std::endian::little, "virtio rings are little-endian");

// Ring field offsets (§2.7.6, §2.7.8).
constexpr uint64_t kAvailIdx = 2;
constexpr uint64_t kAvailRing = 4;
constexpr uint64_t kUsedIdx = 2;
constexpr uint64_t kUsedRing = 4;

uint16_t load16(uint8_t* p, std::memory_order o) {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).load(o);
}
void store16(uint8_t* p, uint16_t v, std::memory_order o) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(v, o);
}
void store32(uint8_t* p, uint32_t v) {
  std::atomic_ref<uint32_t>(*reinterpret_cast<uint32_t*>(p)).store(v, std::memory_order_relaxed);
}

}  // namespace

const char* to_string(QueueError e) {
  switch (e) {
    case QueueError::none: return "none";
    case QueueError::size_invalid: return "queue size invalid";
    case QueueError::desc_misaligned: return "descriptor table misaligned";
    case QueueError::avail_misaligned: return "driver area misaligned";
    case QueueError::used_misaligned: return "device area misaligned";
    case QueueError::desc_outside_ram: return "descriptor table outside RAM";
    case QueueError::avail_outside_ram: return "driver area outside RAM";
    case QueueError::used_outside_ram: return "device area outside RAM";
    case QueueError::avail_idx_jump: return "avail idx moved by more than the queue size";
    case QueueError::head_out_of_range: return "chain head out of range";
    case QueueError::next_out_of_range: return "descriptor next out of range";
    case QueueError::chain_too_long: return "descriptor chain too long or looping";
    case QueueError::indirect_not_negotiated: return "indirect descriptor not negotiated";
    case QueueError::indirect_nested: return "nested indirect descriptor";
    case QueueError::indirect_with_next: return "indirect descriptor with NEXT";
    case QueueError::indirect_bad_size: return "indirect table size invalid";
    case QueueError::indirect_outside_ram: return "indirect table outside RAM";
    case QueueError::buffer_outside_ram: return "buffer outside RAM";
    case QueueError::readable_after_writable: return "readable descriptor after writable one";
  }
  return "?";
}

uint64_t DescChain::readable_bytes() const {
  uint64_t n = 0;
  for (auto& b : readable) n += b.len;
  return n;
}

uint64_t DescChain::writable_bytes() const {
  uint64_t n = 0;
  for (auto& b : writable) n += b.len;
  return n;
}

size_t ChainReader::read(void* dst, size_t n) {
  auto* out = static_cast<uint8_t*>(dst);
  size_t done = 0;
  while (done < n && buf_ < chain_.readable.size()) {
    const DescBuf& b = chain_.readable[buf_];
    uint64_t left = b.len - off_;
    uint64_t take = left < n - done ? left : n - done;
    // Re-checked by GuestMemory; the chain was validated, so this only fails on a logic error.
    if (!mem_.read(b.gpa + off_, out + done, take)) return done;
    done += take;
    off_ += take;
    if (off_ == b.len) {
      ++buf_;
      off_ = 0;
    }
  }
  return done;
}

QueueError Virtqueue::enable(const QueueConfig& cfg, uint16_t max_size) {
  reset();
  const uint64_t n = cfg.size;
  if (n == 0 || !std::has_single_bit(n) || n > max_size || n > kMaxQueueSize)
    return QueueError::size_invalid;
  if (cfg.desc % 16) return QueueError::desc_misaligned;
  if (cfg.avail % 2) return QueueError::avail_misaligned;
  if (cfg.used % 4) return QueueError::used_misaligned;
  const uint64_t ev = cfg.event_idx ? 2 : 0;  // used_event / avail_event trailers
  desc_ = mem_.hva(cfg.desc, 16 * n);
  avail_ = mem_.hva(cfg.avail, kAvailRing + 2 * n + ev);
  used_ = mem_.hva(cfg.used, kUsedRing + 8 * n + ev);
  if (!desc_) return QueueError::desc_outside_ram;
  if (!avail_) return QueueError::avail_outside_ram;
  if (!used_) return QueueError::used_outside_ram;
  cfg_ = cfg;
  ready_ = true;
  // The used ring is the device's: start it clean (flags 0 = notifications wanted, idx 0).
  store16(used_, 0, std::memory_order_relaxed);
  store16(used_ + kUsedIdx, 0, std::memory_order_release);
  return QueueError::none;
}

void Virtqueue::reset() {
  cfg_ = {};
  ready_ = broken_ = signalled_valid_ = false;
  last_error_ = QueueError::none;
  desc_ = avail_ = used_ = nullptr;
  last_avail_ = used_idx_ = signalled_used_ = 0;
  in_flight_ = 0;
}

Virtqueue::Pop Virtqueue::fail(QueueError e) {
  broken_ = true;
  last_error_ = e;
  ++counters_.errors;
  return Pop::error;
}

uint16_t Virtqueue::load_avail_idx() const {
  // Acquire: the ring entries and descriptors the driver wrote before bumping idx are visible.
  return load16(avail_ + kAvailIdx, std::memory_order_acquire);
}

Virtqueue::Pop Virtqueue::pop(DescChain& out) {
  out.clear();
  if (!ready_ || broken_) return Pop::empty;
  uint16_t avail = load_avail_idx();
  if (avail == last_avail_ && cfg_.event_idx) {
    // Ask for a notification at the next entry, then look again: the driver may have added one
    // between our load and the store (it checks avail_event after its own full barrier). The
    // seq_cst store/load pair is the StoreLoad barrier (xchg on x86; understood by TSan, unlike
    // a standalone fence).
    store16(used_ + kUsedRing + 8 * uint64_t(cfg_.size), last_avail_, std::memory_order_seq_cst);
    avail = load16(avail_ + kAvailIdx, std::memory_order_seq_cst);
  }
  if (avail == last_avail_) return Pop::empty;
  if (uint16_t(avail - last_avail_) > cfg_.size) return fail(QueueError::avail_idx_jump);

  uint8_t* slot = avail_ + kAvailRing + 2 * uint64_t(last_avail_ % cfg_.size);
  uint16_t head = load16(slot, std::memory_order_relaxed);
  ++last_avail_;
  if (head >= cfg_.size) return fail(QueueError::head_out_of_range);
  out.head = head;
  if (QueueError e = walk(head, out); e != QueueError::none) return fail(e);
  ++counters_.popped;
  ++in_flight_;
  return Pop::chain;
}

QueueError Virtqueue::walk(uint16_t head, DescChain& out) const {
  const uint8_t* table = desc_;
  uint32_t table_len = cfg_.size;
  uint32_t budget = table_len;  // more visits than entries means a loop
  uint32_t idx = head;
  bool indirect = false;
  for (;;) {
    if (idx >= table_len) return QueueError::next_out_of_range;
    if (budget-- == 0) return QueueError::chain_too_long;
    VirtqDesc d;
    std::memcpy(&d, table + 16 * uint64_t(idx), sizeof d);  // one snapshot, validated below

    if (d.flags & kDescFlagIndirect) {
      if (indirect) return QueueError::indirect_nested;
      if (!cfg_.indirect) return QueueError::indirect_not_negotiated;
      if (d.flags & kDescFlagNext) return QueueError::indirect_with_next;
      if (d.len == 0 || d.len % 16 || d.len / 16 > max_indirect_)
        return QueueError::indirect_bad_size;
      table = mem_.hva(d.addr, d.len);
      if (!table) return QueueError::indirect_outside_ram;
      table_len = budget = d.len / 16;
      idx = 0;
      indirect = true;
      continue;
    }

    if (d.len != 0) {  // a zero-length buffer names no memory; it is kept out of the chain
      if (!mem_.contains(d.addr, d.len)) return QueueError::buffer_outside_ram;
      if (d.flags & kDescFlagWrite) {
        out.writable.push_back({d.addr, d.len});
      } else {
        if (!out.writable.empty()) return QueueError::readable_after_writable;
        out.readable.push_back({d.addr, d.len});
      }
    }
    if (!(d.flags & kDescFlagNext)) return QueueError::none;
    idx = d.next;
  }
}

bool Virtqueue::push(uint16_t head, uint32_t written) {
  if (!ready_ || in_flight_ == 0) {
    ++counters_.bad_pushes;
    return false;
  }
  uint8_t* elem = used_ + kUsedRing + 8 * uint64_t(used_idx_ % cfg_.size);
  store32(elem, head);
  store32(elem + 4, written);
  ++used_idx_;
  // Release: the element (and the data written into the buffers) is visible before the index.
  // seq_cst rather than release so that should_interrupt()'s seq_cst load of the driver's
  // suppression field cannot be ordered before it (the StoreLoad barrier of §2.7.10).
  store16(used_ + kUsedIdx, used_idx_, std::memory_order_seq_cst);
  --in_flight_;
  ++counters_.pushed;
  return true;
}

bool Virtqueue::should_interrupt() {
  if (!ready_) return false;
  // seq_cst loads: ordered after push()'s seq_cst used.idx store (see there).
  if (!cfg_.event_idx)
    return !(load16(avail_, std::memory_order_seq_cst) & kAvailFlagNoInterrupt);
  uint16_t event = load16(avail_ + kAvailRing + 2 * uint64_t(cfg_.size), std::memory_order_seq_cst);
  uint16_t old = signalled_used_, now = used_idx_;
  bool valid = signalled_valid_;
  signalled_used_ = now;
  signalled_valid_ = true;
  if (!valid) return true;
  // vring_need_event: interrupt iff `event` lies in (old, now].
  return uint16_t(now - event - 1) < uint16_t(now - old);
}

}  // namespace hvmm::virtio
