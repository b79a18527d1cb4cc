// The guest's page-frame allocator: LLFree (guest-alloc/) over all guest RAM, its state placed right
// after the kernel image, registered with the hyperalloc device when the VMM offers one.
#pragma once
#include <cstdint>

#include "abi/hyperalloc.hpp"
#include "abi/latency_histogram.hpp"
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
// Bytes in use: managed memory (RAM, plugged virtio-mem blocks) minus free. Balloon pages count as used.
uint64_t mem_used_bytes();
// --guest-alloc buddy: the buddy allocator manages memory (allocator() must not be used then).
bool mem_is_buddy();
uint64_t mem_free_huge();
uint64_t mem_installs();
uint64_t mem_install_cycles();  // TSC cycles spent in install requests (exit + host populate)
// Each install request's latency as this guest sees it (the port write's exit to resume), TSC cycles.
const hvmm::abi::LatencyHistogram& mem_install_latency();
// The registration record for this zone (what mem_init sends to the hyperalloc device).
hvmm::abi::hyperalloc::Registration mem_registration();
// Asks the host to install one 2 MiB frame (no-op without a registered hyperalloc device).
void mem_install(uint64_t huge_idx);
int mem_install_port();
// Without HyperAlloc: sets the `reclaimed` bit of a wholly free huge frame whose memory was given
// to the host, so the allocator uses it only after resident memory.
void mem_mark_reclaimed(uint64_t huge_idx);
hvmm::alloc::LLFree& allocator();

inline void* frame_ptr(uint64_t frame) { return reinterpret_cast<void*>(frame * kPageSize); }

// --- Hooks for the virtio-balloon drivers (guest/virtio/) ---
// Deflate-on-OOM: called by mem_alloc when the allocator says no; returns true when it gave memory
// back (mem_alloc then retries), false when it has nothing to give.
void mem_set_oom_hook(bool (*hook)());
// Free page reporting: one bit per 2 MiB frame meaning "reported to the host as free". Storage comes
// from the driver (mem_huge_frames() bits). Every mem_alloc covering a marked frame clears the mark.
void mem_reported_init(uint64_t* bitmap);
void mem_mark_reported(uint64_t huge_idx);
uint64_t mem_huge_frames();
// Takes one free 2 MiB frame for reporting: leaves its mark alone, never calls the OOM hook.
bool mem_isolate_huge(uint64_t& frame, bool& reported);
// Gives back a reported 2 MiB frame so that it is reused after resident memory: LLFree marks it
// reclaimed, the buddy allocator puts it at the tail of its free list (as Linux does).
void mem_free_reported(uint64_t frame);

// --- Hooks for the virtio-mem driver (guest/virtio/mem.cpp) ---
// The device region mem_init found (0: none). The allocator covers it from boot, every 2 MiB frame
// allocated (reserved) until the driver plugs it.
uint64_t mem_hotplug_start();
// A plugged frame goes to the allocator / a wholly free one comes out (false: in use, stays).
void mem_give_huge(uint64_t huge_idx);
bool mem_take_huge(uint64_t huge_idx);
// Has the frame been used since it was plugged (its memory is resident on the host)?
bool mem_huge_touched(uint64_t huge_idx);

}  // namespace guest
