// Free page reporting over the virtio-balloon reporting queue, as Linux's mm/page_reporting.c does
// it: some time (2 s) after free 2 MiB blocks appear, isolate the free blocks not yet reported,
// hand them to the host in requests of up to 32 (device-writable buffers, one per block), then put
// them back as free and remember they are reported (guest/mem.hpp marks). A reported block that is
// allocated again is simply touched (the host faults memory back in); the allocation clears its mark.
#pragma once
#include <cstdint>

#include "guest/boot_info.hpp"

namespace guest::virtio {

// Allocates the marks and the pass's scratch list. False (reporting stays off) without the queue.
bool reporting_init(const BootInfo& boot);
// Called on every service-loop round: notices unreported free blocks, runs a pass when one is due.
void reporting_tick(uint64_t now_ns);

struct ReportingInfo {
  uint64_t passes = 0;
  uint64_t reported_blocks = 0;  // 2 MiB blocks handed to the host (a block may count again)
};
ReportingInfo reporting_info();

}  // namespace guest::virtio
