// Validation of the HyperAlloc registration record (abi/hyperalloc.hpp) a guest sends
// once at boot. Everything in the record is hostile until proven otherwise: every field is checked
// against this build's layout constants and against guest RAM, with overflow-checked arithmetic,
// before the host forms a single pointer into the shared arrays.
//
// Policy on the zone: its first and last byte must lie in RAM, but holes between RAM regions (the
// MMIO hole [3 GiB, 4 GiB)) may lie inside it — the guest marks them used. The host does not require
// every huge frame to be RAM; instead ZoneState excludes, for its whole life, every huge frame that
// is not wholly inside one RAM region, not wholly inside the zone (a partial last frame), or that
// overlaps one of the shared arrays. So the host never discards outside RAM, whatever the guest
// writes into the shared words later.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "abi/hyperalloc.hpp"
#include "guest-alloc/llfree_shared.hpp"
#include "memory/guest_memory.hpp"

namespace hvmm::reclaim {

inline constexpr uint64_t kFrameBytes = uint64_t{1} << alloc::kFrameShift;       // 4 KiB
inline constexpr uint64_t kHugeBytes = kFrameBytes * alloc::kFramesPerChild;    // 2 MiB

struct GpaRange {
  uint64_t gpa = 0, len = 0;
  // Both ranges lie in RAM when this is used, so the sums cannot wrap.
  bool overlaps(const GpaRange& o) const { return gpa < o.gpa + o.len && o.gpa < gpa + len; }
};

// A validated zone: the shared arrays as host pointers (through GuestMemory::hva) and its geometry.
// Huge frame i covers guest-physical [huge_gpa(i), +2 MiB).
struct HostZone {
  alloc::SharedView view;  // trees/children/bitfield point into the host mapping of guest RAM
  uint64_t base_gpa = 0;   // first_pfn * 4 KiB, 2 MiB aligned
  uint64_t huge_frames = 0;  // = view.children_count()
  GpaRange trees, children, bitfield;  // where the arrays live (as declared, lengths included)

  uint64_t huge_gpa(uint64_t idx) const { return base_gpa + idx * kHugeBytes; }
};

// Either a zone or the reason it was refused (one line, with the offending values).
struct RegistrationResult {
  std::optional<HostZone> zone;
  std::string error;
  explicit operator bool() const { return zone.has_value(); }
};

// `protected_ranges`: guest memory the shared arrays must not overlap (the kernel image and the
// VMM's boot data): the host writes to the arrays, and must not be steered into those.
RegistrationResult validate_registration(const GuestMemory& mem, const abi::hyperalloc::Registration& r,
                                         std::span<const GpaRange> protected_ranges = {});
// Copies the record from guest RAM first (so the guest cannot change it while it is checked).
RegistrationResult read_registration(const GuestMemory& mem, uint64_t gpa,
                                     std::span<const GpaRange> protected_ranges = {});

}  // namespace hvmm::reclaim
