// The guest's page-frame allocator: LLFree (guest-alloc/) over all guest RAM, its state placed right
// after the kernel image, registered with the hyperalloc device when the VMM offers one.
#pragma once
#include <cstdint>

#include "guest-alloc/llfree.hpp"
#include "guest/boot_info.hpp"

namespace guest {

inline constexpr uint64_t kPageSize = 4096;
inline constexpr unsigned kHugeOrder = 9;

// Sets up the allocator; the zone starts at physical 0 and covers every RAM range. Everything that is
// not free RAM (kernel, allocator state, MMIO hole, reserved boot data) is marked used.
void mem_init(const BootInfo& boot);

// Allocates 2^order frames on the calling CPU. Installs reclaimed huge frames with the host before
// returning, so the block is always safe to touch. Returns false when out of memory.
bool mem_alloc(unsigned order, uint64_t& frame);
void mem_free(uint64_t frame, unsigned order);

uint64_t mem_free_bytes();
uint64_t mem_free_huge();
uint64_t mem_installs();
hvmm::alloc::LLFree& allocator();

inline void* frame_ptr(uint64_t frame) { return reinterpret_cast<void*>(frame * kPageSize); }

}  // namespace guest
