#include "memory/guest_memory.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <fmt/format.h>
#include <stdexcept>

#include "abi/layout.hpp"
#include "memory/fault_injection.hpp"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace hvmm {
namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kHuge = 2 * 1024 * 1024;
}  // namespace

GuestMemory::Mapping GuestMemory::map_aligned(uint64_t bytes, const char* what) {
  // Over-map by 2 MiB so the start can be aligned to a huge page; THP needs the alignment.
  Mapping m;
  m.raw_size = bytes + kHuge;
  void* p = mmap(nullptr, m.raw_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    throw std::runtime_error(fmt::format("mapping {} MiB of {}: {}", bytes >> 20, what, strerror(errno)));
  m.raw = static_cast<uint8_t*>(p);
  m.base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(m.raw) + kHuge - 1) & ~(kHuge - 1));
  // Best effort: without THP everything still works, only slower (ARCHITECTURE.md, "The built-in guest").
  madvise(m.base, bytes, MADV_HUGEPAGE);
  return m;
}

void GuestMemory::map(uint64_t bytes) {
  Mapping m = map_aligned(bytes, "guest RAM");
  raw_ = m.raw;
  raw_size_ = m.raw_size;
  base_ = m.base;
  map_size_ = bytes;
}

GuestMemory::GuestMemory(uint64_t ram_bytes) : ram_bytes_(ram_bytes) {
  if (ram_bytes == 0 || ram_bytes % layout::kRamAlign)
    throw std::invalid_argument(fmt::format("guest RAM size {} is not a positive multiple of 2 MiB", ram_bytes));
  map(ram_bytes);
  auto s = layout::split_ram(ram_bytes);
  regions_.push_back({0, s.low_bytes, base_});
  if (s.high_bytes) regions_.push_back({layout::kHoleEnd, s.high_bytes, base_ + s.low_bytes});
}

GuestMemory::GuestMemory(uint64_t ram_bytes, uint64_t hotplug_gpa, uint64_t hotplug_bytes, uint64_t block)
    : GuestMemory(ram_bytes) {
  if (block < kHuge || (block & (block - 1)) || hotplug_bytes == 0 || hotplug_bytes % block || hotplug_gpa % block ||
      hotplug_gpa < std::max(layout::ram_end(ram_bytes), layout::kHoleEnd) || hotplug_bytes > layout::kMaxRam)
    throw std::invalid_argument(fmt::format("hot-plug region [{:#x}, +{:#x}) with {:#x}-byte blocks: not block-aligned, "
                                            "empty or overlapping RAM or the MMIO hole",
                                            hotplug_gpa, hotplug_bytes, block));
  hot_map_ = map_aligned(hotplug_bytes, "the virtio-mem region");
  hot_ = {hotplug_gpa, hotplug_bytes, hot_map_.base};
  hot_block_ = block;
  // Value-initialised: every block starts unplugged.
  hot_bits_ = std::make_unique<std::atomic<uint64_t>[]>((hotplug_bytes / block + 63) / 64);
}

GuestMemory::GuestMemory(std::span<const RegionSpec> specs) {
  uint64_t total = 0, prev_end = 0;
  for (auto& r : specs) {
    if (r.size == 0 || r.size % kPage || r.gpa % kPage || r.gpa < prev_end)
      throw std::invalid_argument("GuestMemory: regions must be page-aligned, sorted and disjoint");
    prev_end = r.gpa + r.size;
    total += r.size;
  }
  ram_bytes_ = total;
  map((total + kHuge - 1) & ~(kHuge - 1));
  uint64_t off = 0;
  for (auto& r : specs) {
    regions_.push_back({r.gpa, r.size, base_ + off});
    off += r.size;
  }
}

GuestMemory::~GuestMemory() {
  if (raw_) munmap(raw_, raw_size_);
  if (hot_map_.raw) munmap(hot_map_.raw, hot_map_.raw_size);
}

namespace {
// Written to avoid overflow: gpa + len may wrap for hostile inputs.
bool inside(const MemRegion& r, uint64_t gpa, uint64_t len) {
  return gpa >= r.gpa && gpa - r.gpa < r.size && len <= r.size - (gpa - r.gpa);
}
}  // namespace

bool GuestMemory::blocks_plugged(uint64_t gpa, uint64_t len) const {
  // Caller checked that [gpa, gpa+len) is inside hot_ (len >= 1).
  const uint64_t first = (gpa - hot_.gpa) / hot_block_, last = (gpa - hot_.gpa + len - 1) / hot_block_;
  for (uint64_t b = first; b <= last; b++)
    if (!((hot_bits_[b / 64].load(std::memory_order_acquire) >> (b % 64)) & 1)) return false;
  return true;
}

const MemRegion* GuestMemory::find(uint64_t gpa, uint64_t len) const {
  if (len == 0) len = 1;
  for (auto& r : regions_)
    if (inside(r, gpa, len)) return &r;
  if (plugged(gpa, len)) return &hot_;
  return nullptr;
}

bool GuestMemory::plugged(uint64_t gpa, uint64_t len) const {
  if (len == 0) len = 1;
  return hot_.size && inside(hot_, gpa, len) && blocks_plugged(gpa, len);
}

bool GuestMemory::set_plugged(uint64_t gpa, uint64_t len, bool plugged) const {
  if (!hot_.size || len == 0 || !inside(hot_, gpa, len) || gpa % hot_block_ || len % hot_block_) {
    errno = EINVAL;
    return false;
  }
  const uint64_t first = (gpa - hot_.gpa) / hot_block_, count = len / hot_block_;
  for (uint64_t b = first; b < first + count; b++) {
    const uint64_t bit = uint64_t{1} << (b % 64);
    if (plugged) hot_bits_[b / 64].fetch_or(bit, std::memory_order_release);
    else hot_bits_[b / 64].fetch_and(~bit, std::memory_order_release);
  }
  // Inaccessible first, then discarded: nothing can fault the memory back in between.
  return plugged || madvise(hot_.hva + (gpa - hot_.gpa), len, MADV_DONTNEED) == 0;
}

uint8_t* GuestMemory::hva(uint64_t gpa, uint64_t len) const {
  auto* r = find(gpa, len);
  return r ? r->hva + (gpa - r->gpa) : nullptr;
}

bool GuestMemory::read(uint64_t gpa, void* dst, uint64_t len) const {
  auto* h = hva(gpa, len);
  if (!h) return false;
  if (len) std::memcpy(dst, h, len);
  return true;
}

bool GuestMemory::write(uint64_t gpa, const void* src, uint64_t len) const {
  auto* h = hva(gpa, len);
  if (!h) return false;
  if (len) std::memcpy(h, src, len);
  return true;
}

bool GuestMemory::advise(uint64_t gpa, uint64_t len, int advice) const {
  auto* h = gpa % kPage || len % kPage ? nullptr : hva(gpa, len);
  if (!h) {
    errno = EINVAL;  // callers report errno: a range outside RAM reads as "Invalid argument"
    return false;
  }
  if (len == 0) return true;
  // The test seam (memory/fault_injection.hpp): off unless HVMM_FAULT_INJECT or a test asks.
  if (int err = injected_fault(advice == MADV_DONTNEED ? FaultSite::discard : FaultSite::populate)) {
    errno = err;
    return false;
  }
  return madvise(h, len, advice) == 0;
}

bool GuestMemory::discard(uint64_t gpa, uint64_t len) const { return advise(gpa, len, MADV_DONTNEED); }

bool GuestMemory::populate(uint64_t gpa, uint64_t len) const { return advise(gpa, len, MADV_POPULATE_WRITE); }

}  // namespace hvmm
