// The flattened device tree hvmm hands to its built-in guest kernel (in a SETUP_DTB setup_data
// entry). Built with libfdt's sequential-write API. The guest parses exactly this schema:
//
//   /memreserve/ <high page tables>;   // layout::high_page_tables(), when RAM > 3 GiB
//   /memreserve/ <initrd>;             // layout::initrd_region(), with --trace
//   / {
//     #address-cells = <2>; #size-cells = <2>; compatible = "hvmm,vm";
//     chosen {
//       bootargs = "<command line>";
//       linux,initrd-start = /bits/ 64 <start>; linux,initrd-end = /bits/ 64 <end>;  // --trace only
//       hvmm,guest-alloc = "buddy";      // --guest-alloc buddy only (absent: LLFree)
//     };
//     memory@0 {
//       device_type = "memory";
//       reg = <0 0  low_hi low_lo>, <1 0  high_hi high_lo>;   // (addr, size) pairs, 2+2 cells each,
//     };                                                       // [0, low) and, when RAM > 3 GiB,
//                                                              // [4 GiB, 4 GiB + high) (layout::split_ram)
//     cpus {
//       #address-cells = <1>; #size-cells = <0>;
//       hvmm,tsc-hz = /bits/ 64 <tsc_hz>;                       // u64 = two big-endian cells
//       hvmm,workload-cpus = <n>;     // only when some CPUs are service CPUs (index >= n)
//       cpu@N { device_type = "cpu"; reg = <N>; };              // N = index = APIC ID, N in hex
//     };
//     <device nodes>                // written by the devices themselves, in the order they were
//   };                              // added (FdtConfig::device_nodes). The ones the guest parses:
//
//     hyperalloc {                                              // --reclaim hyperalloc
//       compatible = "hvmm,hyperalloc"; hvmm,install-port = <port>;   // u32
//     };
//     virtio_mmio@<base in lower-case hex> {                    // one per virtio device
//       compatible = "virtio,mmio"; reg = <base_hi base_lo size_hi size_lo>; interrupts = <irq>;
//     };
#pragma once
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace hvmm::boot {

// What a device may write into its own node (libfdt's sequential-write calls, with errors thrown).
class FdtWriter {
 public:
  explicit FdtWriter(void* fdt) : fdt_(fdt) {}
  void begin_node(const std::string& name);
  void end_node();
  void prop_string(const char* name, const std::string& value);
  void prop_u32(const char* name, uint32_t value);
  // Each value as two big-endian cells (reg = <addr size> with #address-cells = #size-cells = 2).
  void prop_u64s(const char* name, std::initializer_list<uint64_t> values);

 private:
  void* fdt_;
};

// Writes one device's node(s) under the root.
using FdtNodeWriter = std::function<void(FdtWriter&)>;

struct FdtConfig {
  uint64_t ram_bytes;
  unsigned cpus;  // 1..kFdtMaxCpus
  uint64_t tsc_hz;
  std::string bootargs;
  std::vector<FdtNodeWriter> device_nodes;  // vmm/device_manager.hpp collects them
  unsigned workload_cpus = 0;  // 0: all; otherwise CPUs >= this index are service CPUs (drivers)
  uint64_t map_end = 0;        // end of a hot-plug region (not RAM): its page directories are reserved
  uint64_t initrd_start = 0, initrd_size = 0;  // the initrd's bytes (reserved in whole 2 MiB frames), 0: none
  std::string guest_alloc = "";  // the built-in guest's page allocator ("buddy"); empty: its default (LLFree)
};

inline constexpr unsigned kFdtMaxCpus = 255;  // xAPIC IDs

// Returns the finished, packed blob (fdt_totalsize bytes). Throws std::invalid_argument for a
// nonsensical config and std::runtime_error("building the device tree: <step>: <libfdt error>").
std::vector<uint8_t> build_fdt(const FdtConfig& cfg);

}  // namespace hvmm::boot
