// Test fixture: an LLFree zone built inside guest RAM exactly as the guest kernel builds it (zone
// from GPA 0 over all RAM, shared arrays and the Registration record in guest RAM in the first
// 2 MiB frame, that frame and every hole between RAM regions reserved), plus helpers to play the
// guest: allocate/free through LLFree, install reclaimed frames, write and verify patterns.
#pragma once
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "abi/hyperalloc.hpp"
#include "guest-alloc/llfree.hpp"
#include "reclaim/registration.hpp"
#include "reclaim/zone_state.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm::reclaim::test {

inline constexpr uint64_t MiB = 1024 * 1024;
inline constexpr uint64_t kRegGpa = 0x1000;
inline constexpr uint64_t kArraysGpa = 0x10000;

inline uint64_t align64(uint64_t x) { return (x + 63) / 64 * 64; }

struct GuestZone {
  explicit GuestZone(std::vector<GuestMemory::RegionSpec> regions, unsigned cpus = 2)
      : mem(std::span<const GuestMemory::RegionSpec>(regions)) {
    frames = mem.regions().back().end() / kFrameBytes;
    const alloc::Sizes s = alloc::LLFree::sizes(frames, cpus);
    reg = abi::hyperalloc::layout_template();
    reg.first_pfn = 0;
    reg.frames = frames;
    reg.trees_gpa = kArraysGpa;
    reg.trees_len = s.trees.bytes;
    reg.children_gpa = align64(reg.trees_gpa + reg.trees_len);
    reg.children_len = s.children.bytes;
    reg.bitfield_gpa = align64(reg.children_gpa + reg.children_len);
    reg.bitfield_len = s.bitfield.bytes;
    const uint64_t meta_end = reg.bitfield_gpa + reg.bitfield_len;
    locals.reset(static_cast<alloc::Local*>(std::aligned_alloc(64, cpus * sizeof(alloc::Local))));
    ok = a.init(cpus, frames, mem.hva(reg.trees_gpa, reg.trees_len), mem.hva(reg.children_gpa, reg.children_len),
                mem.hva(reg.bitfield_gpa, reg.bitfield_len), locals.get());
    a.reserve_range(0, (meta_end + 2 * MiB - 1) / (2 * MiB) * 512);  // "kernel" + allocator state
    uint64_t cursor = 0;
    for (const MemRegion& r : mem.regions()) {
      if (r.gpa > cursor) a.reserve_range(cursor / kFrameBytes, (r.gpa - cursor) / kFrameBytes);  // hole
      cursor = r.end();
    }
    ok = ok && mem.write_obj(kRegGpa, reg);
  }

  HostZone host_zone() const { return *validate_registration(mem, reg).zone; }
  alloc::SharedView view() const { return a.shared(); }
  uint16_t child(uint64_t idx) const { return view().children[idx].atomic().load(); }

  GuestMemory mem;
  uint64_t frames = 0;
  abi::hyperalloc::Registration reg{};
  struct FreeDeleter {
    void operator()(void* p) const { std::free(p); }
  };
  std::unique_ptr<alloc::Local, FreeDeleter> locals;
  alloc::LLFree a;
  bool ok = false;
};

// Huge frames covered by an allocation (order >= 9: all of them; smaller: the containing one).
inline uint64_t first_child(const alloc::Result& r) { return r.frame / alloc::kFramesPerChild; }
inline uint64_t child_count(unsigned order) { return order >= 9 ? uint64_t{1} << (order - 9) : 1; }

// The guest's side of the protocol: install every covered child before touching the block.
inline void install_if_reclaimed(ZoneState& zs, const alloc::Result& r, unsigned order) {
  if (!r.reclaimed) return;
  for (uint64_t c = 0; c < child_count(order); ++c) zs.install(first_child(r) + c);
}

// A tag in the first 8 bytes of every 4 KiB page of a block (cheap enough for TSan).
inline uint64_t tag_of(uint64_t frame, uint64_t salt) { return (frame * 0x9e3779b97f4a7c15ull) ^ salt ^ 1; }
inline void write_pattern(const GuestMemory& mem, uint64_t frame, unsigned order, uint64_t salt) {
  for (uint64_t f = frame; f < frame + (uint64_t{1} << order); ++f) mem.write_obj(f * kFrameBytes, tag_of(f, salt));
}
inline bool verify_pattern(const GuestMemory& mem, uint64_t frame, unsigned order, uint64_t salt) {
  for (uint64_t f = frame; f < frame + (uint64_t{1} << order); ++f) {
    uint64_t v = 0;
    if (!mem.read_obj(f * kFrameBytes, v) || v != tag_of(f, salt)) return false;
  }
  return true;
}
inline bool all_zero(const GuestMemory& mem, uint64_t gpa, uint64_t len) {
  const uint8_t* p = mem.hva(gpa, len);
  for (uint64_t i = 0; i < len; ++i)
    if (p[i]) return false;
  return true;
}
// Pages of [gpa, +len) resident in the host (mincore).
inline uint64_t resident_pages(const GuestMemory& mem, uint64_t gpa, uint64_t len) {
  std::vector<unsigned char> v(len / 4096);
  if (mincore(mem.hva(gpa, len), len, v.data()) != 0) return ~uint64_t{0};
  uint64_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

}  // namespace hvmm::reclaim::test
