// Every guest-physical address, port range, IRQ and device slot hvmm uses, in one place (x86-64).
// The guest learns the ones it needs from the boot data (e820, FDT), except the fixed ports of
// abi/ports.hpp, which its drivers use before any FDT is parsed.
//
//  0x0000_0000  real-mode IVT/BDA (left alone)
//  0x0000_0500  boot GDT (Linux boot protocol: __BOOT_CS=0x10, __BOOT_DS=0x18)
//  0x0000_7000  zero page (struct boot_params)
//  0x0000_9000  PML4, then PDPTs, then PDs for the low 4 GiB (identity map)
//  0x0002_0000  kernel command line (up to 64 KiB)
//  0x0003_0000  setup_data with the flattened device tree (up to 444 KiB)
//  0x0010_0000  kernel (the built-in kernel links here; bzImage protected-mode part goes here too)
//  RAM continues up to 3 GiB; the hole [3 GiB, 4 GiB) holds MMIO; RAM resumes at 4 GiB.
//  0xD000_0000  virtio-mmio slots, 4 KiB each (vmm/device_manager.cpp hands them out in order)
//  0xFFFB_D000  KVM's three-page TSS area (KVM_SET_TSS_ADDR; Intel VMX needs it, in no RAM)
//  When there is RAM above 4 GiB, the top 2 MiB frames of low RAM hold its page directories
//  (2 MiB pages: KVM may offer no 1 GiB pages), reserved in e820 and in the FDT reserve map.
//  An initrd (hvmm run --trace FILE) sits right below them (or at the top of low RAM), in whole
//  2 MiB frames: initrd_region().
#pragma once
#include <cstdint>

#include "abi/ports.hpp"

namespace hvmm::layout {

inline constexpr uint64_t KiB = 1024, MiB = 1024 * KiB, GiB = 1024 * MiB, TiB = 1024 * GiB;

inline constexpr uint64_t kBootGdt = 0x500;
inline constexpr uint64_t kZeroPage = 0x7000;
inline constexpr uint64_t kPml4 = 0x9000;
inline constexpr uint64_t kPdpt = 0xA000;       // up to kMaxPdpts tables, 512 GiB each
inline constexpr uint64_t kMaxPdpts = 4;
inline constexpr uint64_t kLowPd = kPdpt + kMaxPdpts * 0x1000;  // 4 PDs (2 MiB pages) for [0, 4 GiB)
inline constexpr uint64_t kPageTablesEnd = kLowPd + 4 * 0x1000;
inline constexpr uint64_t kCmdline = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;
inline constexpr uint64_t kSetupData = 0x30000;
inline constexpr uint64_t kSetupDataMax = 0x6F000;
inline constexpr uint64_t kEbdaStart = 0x9FC00;   // reserved in e820 up to 1 MiB
inline constexpr uint64_t kKernelStart = 0x100000;

// The MMIO hole below 4 GiB.
inline constexpr uint64_t kHoleStart = 3 * GiB;
inline constexpr uint64_t kHoleEnd = 4 * GiB;
inline constexpr uint64_t kVirtioMmioBase = 0xD000'0000;  // one 4 KiB slot per virtio device
inline constexpr uint64_t kVirtioMmioSlot = 0x1000;
inline constexpr uint64_t kVirtioMmioSlots = 8;
// Slot i raises IRQ kVirtioIrqBase + i (named in its FDT node; the built-in guest takes no
// interrupts: its drivers are woken by the host instead, see vmm/device_manager.cpp).
inline constexpr uint32_t kVirtioIrqBase = 5;
inline constexpr uint64_t kKvmTssAddr = 0xFFFB'D000;  // 3 pages
inline constexpr uint64_t kKvmTssSize = 3 * 0x1000;

// Port-I/O ranges of the built-in devices (their base ports are the guest ABI, abi/ports.hpp).
struct PortRange {
  uint16_t base, len;
};
inline constexpr PortRange kSerialPorts{abi::kPortSerial, 8};
inline constexpr PortRange kExitPorts{abi::kPortExit, 4};
inline constexpr PortRange kHypercallPorts{abi::kPortHypercall, 4};
inline constexpr PortRange kHyperallocInstallPorts{abi::kPortHyperallocInstall, 4};

// Limits of what we map: identity page tables cover up to kMaxPdpts * 512 GiB.
inline constexpr uint64_t kMinRam = 16 * MiB;
inline constexpr uint64_t kMaxRam = 1 * TiB;
inline constexpr uint64_t kRamAlign = 2 * MiB;

// Guest-physical RAM regions for a VM of `ram` bytes: [0, lo) and, if needed, [4 GiB, 4 GiB + hi).
struct RamSplit {
  uint64_t low_bytes;
  uint64_t high_bytes;
};
constexpr RamSplit split_ram(uint64_t ram) {
  return ram <= kHoleStart ? RamSplit{ram, 0} : RamSplit{kHoleStart, ram - kHoleStart};
}
// One past the highest guest-physical RAM address.
constexpr uint64_t ram_end(uint64_t ram) {
  auto s = split_ram(ram);
  return s.high_bytes ? kHoleEnd + s.high_bytes : s.low_bytes;
}

struct Range {
  uint64_t start, size;
  constexpr uint64_t end() const { return start + size; }
};

// virtio-mem (--reclaim virtio-mem): the device's hot-pluggable region lies above boot RAM, at the
// first 1 GiB boundary at or above both the end of boot RAM and 4 GiB (never in the MMIO hole), so
// the identity map reaches it with whole page directories. It is not RAM in e820 or the FDT: the
// guest learns it from the device's config space. Blocks are 2 MiB or larger powers of two.
inline constexpr uint64_t kHotplugAlign = 1 * GiB;
inline constexpr uint64_t kHotplugMinBoot = 256 * MiB;  // boot memory is never unplugged
constexpr Range hotplug_region(uint64_t boot_ram, uint64_t region_bytes) {
  const uint64_t base = ram_end(boot_ram) > kHoleEnd ? ram_end(boot_ram) : kHoleEnd;
  return {(base + kHotplugAlign - 1) / kHotplugAlign * kHotplugAlign, region_bytes};
}

// Page directories for [4 GiB, max(ram_end, map_end)): one 4 KiB table per GiB, at the top of low
// RAM, in whole 2 MiB frames (so the guest allocator loses whole huge frames, not partial ones).
// map_end: the end of a hot-plug region to identity-map as well (0: none).
constexpr Range high_page_tables(uint64_t ram, uint64_t map_end = 0) {
  auto s = split_ram(ram);
  const uint64_t top = ram_end(ram) > map_end ? ram_end(ram) : map_end;
  if (top <= kHoleEnd) return {0, 0};
  uint64_t tables = (top - kHoleEnd + GiB - 1) / GiB;
  uint64_t size = (tables * 0x1000 + 2 * MiB - 1) / (2 * MiB) * (2 * MiB);
  return {s.low_bytes - size, size};
}

// The initrd (`hvmm run --trace FILE`: a replay trace, abi/trace.hpp): at the top of low RAM, below
// the high page directories, in whole 2 MiB frames (as Linux boot loaders put it high; whole frames so
// the guest allocator loses whole huge frames). It stays RAM in e820; the FDT reserve map and /chosen
// linux,initrd-start/-end name it, and the zero page's ramdisk_image/ramdisk_size point at it.
// {0, 0} when `bytes` is 0 or does not fit above `floor` (the end of the kernel image).
constexpr Range initrd_region(uint64_t ram, uint64_t map_end, uint64_t bytes, uint64_t floor) {
  if (bytes == 0) return {0, 0};
  const uint64_t top = high_page_tables(ram, map_end).size ? high_page_tables(ram, map_end).start : split_ram(ram).low_bytes;
  const uint64_t size = (bytes + kRamAlign - 1) / kRamAlign * kRamAlign;
  if (size > top || top - size < floor) return {0, 0};
  return {top - size, size};
}

static_assert(kPageTablesEnd <= kCmdline);
static_assert(kHoleStart <= kVirtioMmioBase && kVirtioMmioBase + kVirtioMmioSlots * kVirtioMmioSlot <= kKvmTssAddr);
static_assert(kKvmTssAddr + kKvmTssSize <= kHoleEnd);
static_assert(kCmdline + kCmdlineMax <= kSetupData);
static_assert(kSetupData + kSetupDataMax <= kEbdaStart);
static_assert(kMaxRam <= kMaxPdpts * 512 * GiB - (kHoleEnd - kHoleStart));

}  // namespace hvmm::layout
