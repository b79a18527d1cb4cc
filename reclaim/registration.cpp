#include "reclaim/registration.hpp"

#include <fmt/format.h>

namespace hvmm::reclaim {
namespace {

using abi::hyperalloc::Registration;

RegistrationResult refuse(std::string why) { return {std::nullopt, std::move(why)}; }

// One shared array: 64-byte aligned, long enough for `count` elements, wholly inside one RAM
// region (GuestMemory::find is overflow-safe, so a wrapping gpa+len is refused there). Returns the
// host pointer or nullptr with `err` set.
uint8_t* check_array(const GuestMemory& mem, const char* name, GpaRange a, uint64_t count, uint64_t elem,
                     std::string& err) {
  const uint64_t need = count * elem;  // count <= kMaxFrames / 512, elem <= 64: cannot overflow
  if (a.gpa % 64 != 0) {
    err = fmt::format("{} array at {:#x} is not 64-byte aligned", name, a.gpa);
    return nullptr;
  }
  if (a.len < need) {
    err = fmt::format("{} array length {:#x} < {} entries x {} bytes", name, a.len, count, elem);
    return nullptr;
  }
  uint8_t* p = mem.hva(a.gpa, a.len);
  if (!p) {
    err = fmt::format("{} array [{:#x}, +{:#x}) is not inside one RAM region", name, a.gpa, a.len);
    return nullptr;
  }
  if (reinterpret_cast<uintptr_t>(p) % 64 != 0) {  // cannot happen with 4 KiB aligned regions
    err = fmt::format("{} array maps to a misaligned host address", name);
    return nullptr;
  }
  return p;
}

std::string check_layout(const Registration& r) {
  constexpr Registration t = abi::hyperalloc::layout_template();
  if (r.magic != t.magic) return fmt::format("bad magic {:#x}", r.magic);
  if (r.version != t.version) return fmt::format("unsupported version {}", r.version);
  if (r.size != t.size) return fmt::format("record size {} != {}", r.size, t.size);
  if (r.flags != 0) return fmt::format("unknown flags {:#x}", r.flags);
  if (r.frame_shift != t.frame_shift || r.frames_per_child != t.frames_per_child ||
      r.children_per_tree != t.children_per_tree || r.child_bytes != t.child_bytes || r.tree_bytes != t.tree_bytes ||
      r.bitfield_bytes != t.bitfield_bytes)
    return fmt::format("layout mismatch (shift {}, {} frames/child, {} children/tree, {}/{}/{} bytes)", r.frame_shift,
                       r.frames_per_child, r.children_per_tree, r.child_bytes, r.tree_bytes, r.bitfield_bytes);
  if (r.reserved0 != 0 || r.reserved1[0] != 0 || r.reserved1[1] != 0 || r.reserved1[2] != 0)
    return "reserved fields are not zero";
  return {};
}

}  // namespace

RegistrationResult validate_registration(const GuestMemory& mem, const Registration& r,
                                         std::span<const GpaRange> protected_ranges) {
  if (std::string e = check_layout(r); !e.empty()) return refuse(std::move(e));

  if (r.frames == 0 || r.frames > alloc::kMaxFrames) return refuse(fmt::format("zone of {} frames", r.frames));
  if (r.first_pfn % alloc::kFramesPerChild != 0)
    return refuse(fmt::format("zone start pfn {:#x} is not 2 MiB aligned", r.first_pfn));
  uint64_t base = 0, bytes = 0, end = 0;
  if (__builtin_mul_overflow(r.first_pfn, kFrameBytes, &base) || __builtin_mul_overflow(r.frames, kFrameBytes, &bytes) ||
      __builtin_add_overflow(base, bytes, &end))
    return refuse(fmt::format("zone pfn {:#x} + {:#x} frames overflows", r.first_pfn, r.frames));
  // First and last byte in RAM; holes between regions inside the zone are allowed (see header).
  if (!mem.contains(base, 1) || !mem.contains(end - 1, 1))
    return refuse(fmt::format("zone [{:#x}, {:#x}) is not inside guest RAM", base, end));

  const uint64_t nchildren = alloc::SharedView::children_for(r.frames);
  const uint64_t ntrees = alloc::SharedView::trees_for(r.frames);
  HostZone z;
  z.base_gpa = base;
  z.huge_frames = nchildren;
  z.trees = {r.trees_gpa, r.trees_len};
  z.children = {r.children_gpa, r.children_len};
  z.bitfield = {r.bitfield_gpa, r.bitfield_len};

  std::string err;
  uint8_t* trees = check_array(mem, "tree", z.trees, ntrees, sizeof(alloc::Tree), err);
  if (!trees) return refuse(std::move(err));
  uint8_t* children = check_array(mem, "child", z.children, nchildren, sizeof(alloc::Child), err);
  if (!children) return refuse(std::move(err));
  uint8_t* bitfield = check_array(mem, "bitfield", z.bitfield, nchildren, sizeof(alloc::Bitfield), err);
  if (!bitfield) return refuse(std::move(err));
  if (z.trees.overlaps(z.children) || z.trees.overlaps(z.bitfield) || z.children.overlaps(z.bitfield))
    return refuse(fmt::format("shared arrays overlap (trees {:#x}+{:#x}, children {:#x}+{:#x}, bitfield {:#x}+{:#x})",
                              z.trees.gpa, z.trees.len, z.children.gpa, z.children.len, z.bitfield.gpa,
                              z.bitfield.len));
  for (const GpaRange& p : protected_ranges)
    for (const GpaRange* a : {&z.trees, &z.children, &z.bitfield})
      if (a->overlaps(p))
        return refuse(fmt::format("shared array {:#x}+{:#x} overlaps protected guest memory {:#x}+{:#x} (kernel or boot data)",
                                  a->gpa, a->len, p.gpa, p.len));

  z.view.trees = reinterpret_cast<alloc::Tree*>(trees);
  z.view.children = reinterpret_cast<alloc::Child*>(children);
  z.view.bitfield = reinterpret_cast<alloc::Bitfield*>(bitfield);
  z.view.frames = r.frames;
  return {z, {}};
}

RegistrationResult read_registration(const GuestMemory& mem, uint64_t gpa, std::span<const GpaRange> protected_ranges) {
  Registration r;
  if (!mem.read_obj(gpa, r)) return refuse(fmt::format("registration record at {:#x} is outside guest RAM", gpa));
  return validate_registration(mem, r, protected_ranges);
}

}  // namespace hvmm::reclaim
