// What the VMM tells the kernel at boot: the zero page's setup_data carries a flattened device tree
// (schema in vmm/boot/fdt_builder.hpp), parsed here with libfdt.
#pragma once
#include <cstdint>

namespace guest {

struct MemRange {
  uint64_t start, size;
};

struct BootInfo {
  static constexpr unsigned kMaxRanges = 8;
  MemRange ram[kMaxRanges];
  unsigned ram_count = 0;
  MemRange reserved[kMaxRanges];  // the FDT reserve map: boot data inside RAM
  unsigned reserved_count = 0;
  uint64_t ram_bytes = 0;
  unsigned cpus = 0;          // CPUs that run the workload (indices 0 .. cpus-1)
  unsigned service_cpus = 0;  // CPUs after those, which run drivers (service_main)
  uint64_t tsc_hz = 0;
  const char* bootargs = "";
  int hyperalloc_port = -1;  // -1: no hyperalloc device
  static constexpr unsigned kMaxVirtio = 8;
  MemRange virtio[kMaxVirtio];  // virtio-mmio register windows, in FDT order
  unsigned virtio_count = 0;
  const char* workload = "";  // everything after " -- " on the command line
  MemRange initrd{0, 0};      // /chosen linux,initrd-start/-end (hvmm run --trace), size 0: none
  bool buddy = false;         // /chosen hvmm,guest-alloc = "buddy": the buddy allocator instead of LLFree
};

// Parses the zero page at `zero_page`. Panics with a clear message when the FDT is missing or bad.
void parse_boot_info(const void* zero_page, BootInfo& out);

}  // namespace guest
