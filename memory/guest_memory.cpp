#include "memory/guest_memory.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <fmt/format.h>
#include <stdexcept>

#include "abi/layout.hpp"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace hvmm {
namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kHuge = 2 * 1024 * 1024;
}  // namespace

void GuestMemory::map(uint64_t bytes) {
  // Over-map by 2 MiB so the start can be aligned to a huge page; THP needs the alignment.
  raw_size_ = bytes + kHuge;
  void* p = mmap(nullptr, raw_size_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    throw std::runtime_error(fmt::format("mapping {} MiB of guest RAM: {}", bytes >> 20, strerror(errno)));
  raw_ = static_cast<uint8_t*>(p);
  auto aligned = (reinterpret_cast<uintptr_t>(raw_) + kHuge - 1) & ~(kHuge - 1);
  base_ = reinterpret_cast<uint8_t*>(aligned);
  map_size_ = bytes;
  // Best effort: without THP everything still works, only slower (ARCHITECTURE.md, "The built-in guest").
  madvise(base_, map_size_, MADV_HUGEPAGE);
}

GuestMemory::GuestMemory(uint64_t ram_bytes) : ram_bytes_(ram_bytes) {
  if (ram_bytes == 0 || ram_bytes % layout::kRamAlign)
    throw std::invalid_argument(fmt::format("guest RAM size {} is not a positive multiple of 2 MiB", ram_bytes));
  map(ram_bytes);
  auto s = layout::split_ram(ram_bytes);
  regions_.push_back({0, s.low_bytes, base_});
  if (s.high_bytes) regions_.push_back({layout::kHoleEnd, s.high_bytes, base_ + s.low_bytes});
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
}

const MemRegion* GuestMemory::find(uint64_t gpa, uint64_t len) const {
  if (len == 0) len = 1;
  for (auto& r : regions_) {
    // Written to avoid overflow: gpa + len may wrap for hostile inputs.
    if (gpa >= r.gpa && gpa - r.gpa < r.size && len <= r.size - (gpa - r.gpa)) return &r;
  }
  return nullptr;
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
  return len == 0 || madvise(h, len, advice) == 0;
}

bool GuestMemory::discard(uint64_t gpa, uint64_t len) const { return advise(gpa, len, MADV_DONTNEED); }

bool GuestMemory::populate(uint64_t gpa, uint64_t len) const { return advise(gpa, len, MADV_POPULATE_WRITE); }

}  // namespace hvmm
