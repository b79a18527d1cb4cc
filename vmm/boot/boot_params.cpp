#include "vmm/boot/boot_params.hpp"

#include <fmt/format.h>

#include <memory>
#include <stdexcept>

#include "abi/layout.hpp"

namespace hvmm::boot {

using namespace hvmm::layout;

std::vector<E820Entry> e820_map(uint64_t ram_bytes, uint64_t map_end) {
  if (ram_bytes < kMinRam || ram_bytes > kMaxRam)
    throw std::invalid_argument(fmt::format("e820: guest RAM size {:#x} outside [{:#x}, {:#x}]",
                                            ram_bytes, kMinRam, kMaxRam));
  auto s = split_ram(ram_bytes);
  std::vector<E820Entry> map{
      {0, kEbdaStart, kE820Ram},
      {kEbdaStart, kKernelStart - kEbdaStart, kE820Reserved},
  };
  auto pt = high_page_tables(ram_bytes, map_end);
  map.push_back({kKernelStart, s.low_bytes - pt.size - kKernelStart, kE820Ram});
  if (pt.size) map.push_back({pt.start, pt.size, kE820Reserved});
  if (s.high_bytes) map.push_back({kHoleEnd, s.high_bytes, kE820Ram});
  return map;
}

namespace {

void write_or_throw(const GuestMemory& mem, uint64_t gpa, const void* src, uint64_t len,
                    const char* what) {
  if (!mem.write(gpa, src, len))
    throw std::runtime_error(
        fmt::format("boot params: {} [{:#x}, {:#x}) is not in guest RAM", what, gpa, gpa + len));
}

}  // namespace

void write_boot_params(const GuestMemory& mem, const BootParamsConfig& cfg) {
  if (cfg.cmdline.size() + 1 > kCmdlineMax)
    throw std::runtime_error(fmt::format("boot params: command line of {} bytes exceeds the {}-byte slot",
                                         cfg.cmdline.size(), kCmdlineMax - 1));
  if (cfg.cmdline.find('\0') != std::string::npos)
    throw std::runtime_error("boot params: command line contains a NUL byte");
  if (cfg.dtb.size() > kSetupDataMax - sizeof(SetupDataHeader))
    throw std::runtime_error(fmt::format("boot params: device tree of {} bytes exceeds the {}-byte setup_data slot",
                                         cfg.dtb.size(), kSetupDataMax - sizeof(SetupDataHeader)));

  auto map = e820_map(cfg.ram_bytes, cfg.map_end);
  for (auto& e : map)  // the map must not promise the guest RAM that is not there
    if (e.type == kE820Ram && !mem.contains(e.addr, e.size))
      throw std::runtime_error(fmt::format("boot params: e820 RAM [{:#x}, {:#x}) for {} MiB is not all in guest memory",
                                           uint64_t{e.addr}, e.addr + e.size, cfg.ram_bytes >> 20));
  auto bp = std::make_unique<BootParams>();  // value-initialised: all zero
  for (size_t i = 0; i < map.size(); ++i) bp->e820_table[i] = map[i];
  bp->e820_entries = static_cast<uint8_t>(map.size());

  SetupHeader& h = bp->hdr;
  h.boot_flag = kBootFlag;
  h.header = kHdrSMagic;
  h.version = kBootProtocol;
  h.type_of_loader = kLoaderUndefined;
  h.loadflags = kLoadedHigh;
  h.cmd_line_ptr = static_cast<uint32_t>(kCmdline);
  h.cmdline_size = static_cast<uint32_t>(cfg.cmdline.size());
  if (cfg.ramdisk_size) {
    if (cfg.ramdisk_image + cfg.ramdisk_size > kHoleStart)
      throw std::runtime_error(fmt::format("boot params: initrd at {:#x} is not in low RAM (below the MMIO hole)", cfg.ramdisk_image));
    h.ramdisk_image = static_cast<uint32_t>(cfg.ramdisk_image);
    h.ramdisk_size = static_cast<uint32_t>(cfg.ramdisk_size);
  }

  if (!cfg.dtb.empty()) {
    SetupDataHeader sd{0, kSetupDtb, static_cast<uint32_t>(cfg.dtb.size())};
    write_or_throw(mem, kSetupData, &sd, sizeof sd, "setup_data header");
    write_or_throw(mem, kSetupData + sizeof sd, cfg.dtb.data(), cfg.dtb.size(), "device tree");
    h.setup_data = kSetupData;
  }
  write_or_throw(mem, kCmdline, cfg.cmdline.c_str(), cfg.cmdline.size() + 1, "command line");
  write_or_throw(mem, kZeroPage, bp.get(), sizeof *bp, "zero page");
}

}  // namespace hvmm::boot
