// The Linux x86 zero page (struct boot_params) as a VMM writes it for the 64-bit boot protocol.
// Sources: Documentation/arch/x86/boot.rst and zero-page.rst; offsets match
// arch/x86/include/uapi/asm/bootparam.h (checked by static_asserts here and against the UAPI
// header in tests/boot).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "memory/guest_memory.hpp"

namespace hvmm::boot {

inline constexpr uint32_t kE820Ram = 1;
inline constexpr uint32_t kE820Reserved = 2;
inline constexpr uint16_t kBootFlag = 0xAA55;
inline constexpr uint32_t kHdrSMagic = 0x53726448;  // "HdrS"
inline constexpr uint16_t kBootProtocol = 0x020F;   // what we claim to speak; >= 2.12 required
inline constexpr uint8_t kLoaderUndefined = 0xFF;   // type_of_loader: "no assigned id"
inline constexpr uint8_t kLoadedHigh = 0x01;        // loadflags: protected-mode code at 1 MiB
inline constexpr uint32_t kSetupDtb = 2;            // setup_data type SETUP_DTB
inline constexpr size_t kE820MaxZeroPage = 128;

struct __attribute__((packed)) E820Entry {
  uint64_t addr, size;
  uint32_t type;
};
static_assert(sizeof(E820Entry) == 20);

struct __attribute__((packed)) SetupHeader {
  uint8_t setup_sects;
  uint16_t root_flags;
  uint32_t syssize;
  uint16_t ram_size;
  uint16_t vid_mode;
  uint16_t root_dev;
  uint16_t boot_flag;
  uint16_t jump;
  uint32_t header;
  uint16_t version;
  uint32_t realmode_swtch;
  uint16_t start_sys_seg;
  uint16_t kernel_version;
  uint8_t type_of_loader;
  uint8_t loadflags;
  uint16_t setup_move_size;
  uint32_t code32_start;
  uint32_t ramdisk_image;
  uint32_t ramdisk_size;
  uint32_t bootsect_kludge;
  uint16_t heap_end_ptr;
  uint8_t ext_loader_ver;
  uint8_t ext_loader_type;
  uint32_t cmd_line_ptr;
  uint32_t initrd_addr_max;
  uint32_t kernel_alignment;
  uint8_t relocatable_kernel;
  uint8_t min_alignment;
  uint16_t xloadflags;
  uint32_t cmdline_size;
  uint32_t hardware_subarch;
  uint64_t hardware_subarch_data;
  uint32_t payload_offset;
  uint32_t payload_length;
  uint64_t setup_data;
  uint64_t pref_address;
  uint32_t init_size;
  uint32_t handover_offset;
  uint32_t kernel_info_offset;
};
static_assert(sizeof(SetupHeader) == 0x7B);

// Only the fields hvmm writes are named; everything else is opaque padding (left zero).
struct __attribute__((packed)) BootParams {
  uint8_t pad_000[0x070];          // screen_info, apm_bios_info, tboot_addr, ist_info
  uint64_t acpi_rsdp_addr;         // 0x070
  uint8_t pad_078[0x1E8 - 0x078];
  uint8_t e820_entries;            // 0x1e8
  uint8_t pad_1e9[0x1F1 - 0x1E9];
  SetupHeader hdr;                 // 0x1f1
  uint8_t pad_26c[0x2D0 - 0x1F1 - sizeof(SetupHeader)];
  E820Entry e820_table[kE820MaxZeroPage];  // 0x2d0
  uint8_t pad_cd0[0x1000 - 0xCD0];
};
static_assert(sizeof(BootParams) == 4096);
static_assert(std::is_standard_layout_v<BootParams> && std::is_trivially_copyable_v<BootParams>);
static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(BootParams, e820_entries) == 0x1E8);
static_assert(offsetof(BootParams, hdr) == 0x1F1);
static_assert(offsetof(BootParams, e820_table) == 0x2D0);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, boot_flag) == 0x1FE);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, header) == 0x202);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, version) == 0x206);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, type_of_loader) == 0x210);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, loadflags) == 0x211);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, cmd_line_ptr) == 0x228);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, cmdline_size) == 0x238);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, setup_data) == 0x250);
static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, kernel_info_offset) == 0x268);

// Header of one entry of the setup_data linked list; `len` payload bytes follow.
struct SetupDataHeader {
  uint64_t next;  // guest-physical address of the next entry, 0 ends the list
  uint32_t type;
  uint32_t len;
};
static_assert(sizeof(SetupDataHeader) == 16);

// e820 map for a VM of `ram_bytes` (layout::kMinRam..kMaxRam, else std::invalid_argument):
// [0, kEbdaStart) RAM, [kEbdaStart, 1 MiB) reserved, [1 MiB, low end) RAM, [4 GiB, ...) RAM.
// map_end: the end of a virtio-mem region (not RAM here) whose page directories are reserved too.
std::vector<E820Entry> e820_map(uint64_t ram_bytes, uint64_t map_end = 0);

struct BootParamsConfig {
  uint64_t ram_bytes;
  std::string cmdline;           // no NUL bytes; up to layout::kCmdlineMax - 1 bytes
  std::span<const uint8_t> dtb;  // empty: no setup_data list
  uint64_t map_end = 0;          // end of a hot-plug region to identity-map (layout::high_page_tables)
  uint64_t ramdisk_image = 0, ramdisk_size = 0;  // an initrd already in guest memory (below 4 GiB), 0: none
};

// Writes a fresh zero page at layout::kZeroPage, the NUL-terminated command line at
// layout::kCmdline (hdr.cmdline_size = its length without the NUL) and, when cfg.dtb is not empty,
// one SETUP_DTB setup_data entry at layout::kSetupData. Throws std::runtime_error when the command
// line or the DTB does not fit its slot, or when the e820 RAM for cfg.ram_bytes or the boot area is
// not in `mem`.
void write_boot_params(const GuestMemory& mem, const BootParamsConfig& cfg);

}  // namespace hvmm::boot
