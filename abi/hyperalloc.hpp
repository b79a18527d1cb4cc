// The registration record the guest sends once at boot (Hypercall::kHyperallocRegister, a0 = its
// GPA): where the shared LLFree arrays of one zone live and how they are laid out. Self-describing
// so the host can validate every field against guest RAM and against its own layout constants.
// Shared by both sides; freestanding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "guest-alloc/llfree_words.hpp"

namespace hvmm::abi::hyperalloc {

inline constexpr uint32_t kMagic = 0x4c4c4652;  // "LLFR" read as a big-endian u32
inline constexpr uint32_t kVersion = 1;

struct Registration {
  uint32_t magic;           // kMagic
  uint32_t version;         // kVersion
  uint32_t size;            // sizeof(Registration)
  uint32_t flags;           // 0 (no flags defined yet)

  // Layout of the words, so a mismatched build is detected instead of misread.
  uint32_t frame_shift;        // 12: 4 KiB frames
  uint32_t frames_per_child;   // 512: one Child (u16) + one Bitfield (64 bytes) per 2 MiB
  uint32_t children_per_tree;  // 8: one Tree (u16) per 16 MiB
  uint16_t child_bytes;        // sizeof(alloc::Child) = 2
  uint16_t tree_bytes;         // sizeof(alloc::Tree) = 2
  uint32_t bitfield_bytes;     // sizeof(alloc::Bitfield) = 64 per child
  uint32_t reserved0;

  uint64_t first_pfn;  // zone start (2 MiB aligned), in 4 KiB frames
  uint64_t frames;     // zone size in 4 KiB frames; children = ceil(frames/512), trees = ceil(children/8)

  // Guest-physical addresses and byte lengths of the shared arrays (each 64-byte aligned; lengths
  // are at least count * element size as above).
  uint64_t trees_gpa, trees_len;
  uint64_t children_gpa, children_len;
  uint64_t bitfield_gpa, bitfield_len;

  uint64_t reserved1[3];  // zero
};
static_assert(std::is_standard_layout_v<Registration> && std::is_trivially_copyable_v<Registration>);
static_assert(sizeof(Registration) == 128);
static_assert(offsetof(Registration, frame_shift) == 16);
static_assert(offsetof(Registration, child_bytes) == 28);
static_assert(offsetof(Registration, tree_bytes) == 30);
static_assert(offsetof(Registration, bitfield_bytes) == 32);
static_assert(offsetof(Registration, first_pfn) == 40);
static_assert(offsetof(Registration, frames) == 48);
static_assert(offsetof(Registration, trees_gpa) == 56);
static_assert(offsetof(Registration, trees_len) == 64);
static_assert(offsetof(Registration, children_gpa) == 72);
static_assert(offsetof(Registration, children_len) == 80);
static_assert(offsetof(Registration, bitfield_gpa) == 88);
static_assert(offsetof(Registration, bitfield_len) == 96);
static_assert(offsetof(Registration, reserved1) == 104);

// The layout fields as this build expects them (the guest fills them in, the host compares).
constexpr Registration layout_template() {
  Registration r{};
  r.magic = kMagic;
  r.version = kVersion;
  r.size = sizeof(Registration);
  r.frame_shift = alloc::kFrameShift;
  r.frames_per_child = static_cast<uint32_t>(alloc::kFramesPerChild);
  r.children_per_tree = static_cast<uint32_t>(alloc::kChildrenPerTree);
  r.child_bytes = sizeof(alloc::Child);
  r.tree_bytes = sizeof(alloc::Tree);
  r.bitfield_bytes = sizeof(alloc::Bitfield);
  return r;
}

}  // namespace hvmm::abi::hyperalloc
