// The virtio-balloon driver of the built-in guest, behaving like Linux's virtio_balloon: inflate =
// allocate 4 KiB frames and send their PFNs in batches of 256 (keeping the frames), deflate = send
// PFNs back, then free them; `actual` written after each batch; a statistics buffer refilled each
// time the host hands it back; deflate-on-OOM releases 256 pages per failed allocation.
//
// When the device offers hvmm's VIRTIO_BALLOON_F_HVMM_HUGE_PAGES (--reclaim balloon-huge) the driver
// accepts it and balloons 2 MiB blocks (order 9) instead, as the HyperAlloc paper's reference does:
// the PFN sent is the block's first frame, target and `actual` count 2 MiB units, and deflate-on-OOM
// gives back one block.
//
// Everything except the OOM hook runs on the service CPU (guest/service.cpp). The OOM hook runs on
// a workload CPU inside mem_alloc; a spinlock shared with the service CPU guards the balloon.
#pragma once
#include <cstdint>

#include "guest/boot_info.hpp"
#include "guest/virtio/virtq.hpp"

namespace guest::virtio {

// Finds the balloon among the FDT's virtio-mmio slots, negotiates VERSION_1 + STATS_VQ +
// DEFLATE_ON_OOM + REPORTING + HVMM_HUGE_PAGES as offered (never PAGE_POISON), sets up the queues
// and sets DRIVER_OK.
// False (with a console line) when there is no usable balloon.
bool balloon_init(const BootInfo& boot);

// Reads and acknowledges InterruptStatus (one or two exits). Returns its bits.
uint32_t balloon_ack_interrupt();
// Re-reads the host's target (config num_pages, one exit).
void balloon_read_target();
// Moves at most `max_batches` batches of 256 balloon pages towards the target. Returns true while the
// target is not reached and more progress is possible right now.
bool balloon_step(unsigned max_batches);
// Refills and re-queues the statistics buffer if the host handed it back.
void balloon_service_stats();

struct BalloonInfo {
  uint32_t target, actual;  // in balloon pages
  uint64_t page_bytes;      // 4 KiB, or 2 MiB with HVMM_HUGE_PAGES
  uint64_t oom_deflates;    // batches given back under OOM (256 pages, or one 2 MiB block)
  bool reporting;           // VIRTIO_BALLOON_F_REPORTING accepted
};
BalloonInfo balloon_info();

// The reporting queue (nullptr without REPORTING); owned by guest/virtio/page_reporting.cpp.
Virtq* balloon_reporting_queue();
// Set while a reporting pass holds free 2 MiB blocks: an OOM on a workload CPU waits for it.
void balloon_set_reporting_busy(bool busy);

}  // namespace guest::virtio
