#include <asm/bootparam.h>  // the kernel's own layout, to cross-check ours

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "vmm/boot/boot_params.hpp"
#include "abi/layout.hpp"

using namespace hvmm;
using namespace hvmm::boot;
using namespace hvmm::layout;

#define SAME_OFFSET(field) CHECK(offsetof(BootParams, field) == offsetof(::boot_params, field))
#define SAME_HDR_OFFSET(field) CHECK(offsetof(SetupHeader, field) == offsetof(::setup_header, field))

TEST_CASE("boot_params layout matches the kernel UAPI header") {
  CHECK(sizeof(BootParams) == sizeof(::boot_params));
  CHECK(sizeof(SetupHeader) == sizeof(::setup_header));
  CHECK(sizeof(E820Entry) == sizeof(::boot_e820_entry));
  CHECK(sizeof(SetupDataHeader) == sizeof(::setup_data));
  SAME_OFFSET(acpi_rsdp_addr);
  SAME_OFFSET(e820_entries);
  SAME_OFFSET(hdr);
  SAME_OFFSET(e820_table);
  SAME_HDR_OFFSET(boot_flag);
  SAME_HDR_OFFSET(header);
  SAME_HDR_OFFSET(version);
  SAME_HDR_OFFSET(type_of_loader);
  SAME_HDR_OFFSET(loadflags);
  SAME_HDR_OFFSET(cmd_line_ptr);
  SAME_HDR_OFFSET(cmdline_size);
  SAME_HDR_OFFSET(setup_data);
  SAME_HDR_OFFSET(kernel_info_offset);
  CHECK(kSetupDtb == SETUP_DTB);
  CHECK(kE820MaxZeroPage == E820_MAX_ENTRIES_ZEROPAGE);
}

namespace {
template <class T>
T peek(const GuestMemory& m, uint64_t gpa) {
  T v{};
  REQUIRE(m.read(gpa, &v, sizeof v));
  return v;
}
}  // namespace

TEST_CASE("write_boot_params fills the zero page, command line and DTB setup_data") {
  GuestMemory mem(64 * MiB);
  // Dirty the zero page first: every field we do not set must come out zero.
  std::vector<uint8_t> junk(4096, 0xAB);
  REQUIRE(mem.write(kZeroPage, junk.data(), junk.size()));
  const std::vector<uint8_t> dtb{0xd0, 0x0d, 0xfe, 0xed, 1, 2, 3, 4, 5};
  write_boot_params(mem, {64 * MiB, "console=ttyS0 hvmm.test=1", dtb});

  // Raw offsets from zero-page.rst / boot.rst, read back from guest memory.
  CHECK(peek<uint16_t>(mem, kZeroPage + 0x1FE) == 0xAA55);
  CHECK(peek<uint32_t>(mem, kZeroPage + 0x202) == 0x53726448);  // "HdrS"
  CHECK(std::memcmp(mem.hva(kZeroPage + 0x202, 4), "HdrS", 4) == 0);
  CHECK(peek<uint16_t>(mem, kZeroPage + 0x206) >= 0x020C);
  CHECK(peek<uint8_t>(mem, kZeroPage + 0x210) == 0xFF);
  CHECK(peek<uint32_t>(mem, kZeroPage + 0x228) == kCmdline);
  CHECK(peek<uint32_t>(mem, kZeroPage + 0x238) == std::string("console=ttyS0 hvmm.test=1").size());
  CHECK(peek<uint64_t>(mem, kZeroPage + 0x250) == kSetupData);
  CHECK(peek<uint64_t>(mem, kZeroPage + 0x070) == 0);  // untouched fields are zeroed
  CHECK(peek<uint8_t>(mem, kZeroPage + 0x000) == 0);

  // e820 table
  auto want = e820_map(64 * MiB);
  REQUIRE(peek<uint8_t>(mem, kZeroPage + 0x1E8) == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    auto e = peek<E820Entry>(mem, kZeroPage + 0x2D0 + i * 20);
    CHECK(e.addr == want[i].addr);
    CHECK(e.size == want[i].size);
    CHECK(e.type == want[i].type);
  }
  CHECK(peek<E820Entry>(mem, kZeroPage + 0x2D0 + want.size() * 20).size == 0);

  // command line, NUL-terminated
  std::string got(reinterpret_cast<const char*>(mem.hva(kCmdline, 64)));
  CHECK(got == "console=ttyS0 hvmm.test=1");

  // setup_data: one SETUP_DTB entry, end of list, payload = the DTB
  auto sd = peek<SetupDataHeader>(mem, kSetupData);
  CHECK(sd.next == 0);
  CHECK(sd.type == 2);
  CHECK(sd.len == dtb.size());
  CHECK(std::memcmp(mem.hva(kSetupData + 16, dtb.size()), dtb.data(), dtb.size()) == 0);

  // The whole struct read back agrees too.
  auto bp = peek<BootParams>(mem, kZeroPage);
  CHECK(bp.hdr.loadflags == kLoadedHigh);
  CHECK(bp.hdr.version == kBootProtocol);
}

TEST_CASE("write_boot_params for 16 GiB lists the high region and omits setup_data without a DTB") {
  GuestMemory mem(16 * GiB);  // MAP_NORESERVE: only the touched pages cost anything
  write_boot_params(mem, {16 * GiB, "", {}});
  auto bp = peek<BootParams>(mem, kZeroPage);
  REQUIRE(bp.e820_entries == 5);  // low RAM, EBDA, RAM, high page tables (reserved), high RAM
  CHECK(bp.e820_table[3].type == kE820Reserved);
  CHECK(bp.e820_table[4].addr == 4 * GiB);
  CHECK(bp.e820_table[4].size == 13 * GiB);
  CHECK(bp.hdr.setup_data == 0);
  CHECK(bp.hdr.cmdline_size == 0);
  CHECK(peek<uint8_t>(mem, kCmdline) == 0);
}

TEST_CASE("write_boot_params refuses what does not fit its slot") {
  GuestMemory mem(64 * MiB);
  std::string longest(kCmdlineMax - 1, 'x');
  CHECK_NOTHROW(write_boot_params(mem, {64 * MiB, longest, {}}));
  CHECK(peek<uint8_t>(mem, kCmdline + kCmdlineMax - 1) == 0);

  CHECK_THROWS_WITH(write_boot_params(mem, {64 * MiB, longest + "x", {}}),
                    Catch::Contains("command line") && Catch::Contains("exceeds"));
  CHECK_THROWS_AS(write_boot_params(mem, {64 * MiB, std::string("a\0b", 3), {}}), std::runtime_error);

  std::vector<uint8_t> huge_dtb(kSetupDataMax, 0);
  CHECK_THROWS_WITH(write_boot_params(mem, {64 * MiB, "", huge_dtb}), Catch::Contains("device tree"));
  std::vector<uint8_t> max_dtb(kSetupDataMax - 16, 0x5A);
  CHECK_NOTHROW(write_boot_params(mem, {64 * MiB, "", max_dtb}));

  // An e820 map promising more RAM than the VM has.
  CHECK_THROWS_WITH(write_boot_params(mem, {128 * MiB, "", {}}), Catch::Contains("not all in guest memory"));
}

TEST_CASE("write_boot_params points ramdisk_image/ramdisk_size at an initrd, refuses one above 4 GiB") {
  GuestMemory mem(64 * MiB);
  write_boot_params(mem, {64 * MiB, "", {}, 0, 60 * MiB, 12345});
  auto bp = peek<BootParams>(mem, kZeroPage);
  CHECK(bp.hdr.ramdisk_image == 60 * MiB);
  CHECK(bp.hdr.ramdisk_size == 12345);
  CHECK_THROWS_AS(write_boot_params(mem, {64 * MiB, "", {}, 0, 5 * GiB, 4096}), std::runtime_error);
}
