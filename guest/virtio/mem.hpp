// The virtio-mem driver of the built-in guest (device ID 24, virtio 1.2 §5.15), on the service CPU.
// It follows the host's requested_size in whole blocks (2 MiB or larger):
//  - plug: PLUG runs of unplugged blocks, then hand their 2 MiB frames to the allocator (put);
//  - unplug: take wholly free 2 MiB frames of plugged blocks out of the allocator
//    (LLFree::take_huge; no migration, so a block holding any live page stays), UNPLUG the run, and
//    give the frames back if the device says no. Touched (resident) blocks go first: unplugging them
//    is what lowers the host's footprint; never-touched ones cost the host nothing.
// The allocator covers the region from boot with every frame allocated (mem_init, reserve_huge).
// About once a second the driver reports the guest's free memory to the host (the kVirtioMemFree
// hypercall): virtio-mem has no statistics queue, and the host's automatic mode needs it.
#pragma once
#include <cstdint>

#include "guest/boot_info.hpp"

namespace guest::virtio {

// The device's region, read from its config space before the allocator exists (mem_init reserves
// it). False when there is no (sane) virtio-mem device.
bool virtio_mem_region(const BootInfo& boot, uint64_t& addr, uint64_t& size);

// Negotiates VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, sets up the queue, unplugs everything if anything
// is plugged (a previous driver's state), then plugs up to requested_size. False (with a console
// line) when there is no usable device.
bool virtio_mem_init(const BootInfo& boot);
// The service CPU's loop: re-reads requested_size when woken (config change) or every `poll`, moves
// towards it, reports free memory. Never returns.
[[noreturn]] void virtio_mem_loop(const BootInfo& boot);

}  // namespace guest::virtio
