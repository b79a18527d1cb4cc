#include "vmm/x86/long_mode.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <stdexcept>

#include "abi/layout.hpp"

namespace hvmm::x86 {
namespace {
constexpr uint64_t kPresent = 1, kWrite = 2, kUser = 4, kPageSize = 0x80;
constexpr uint64_t kPte = kPresent | kWrite | kUser;

constexpr uint64_t kCr0Pe = 1, kCr0Mp = 2, kCr0Et = 0x10, kCr0Ne = 0x20, kCr0Wp = 0x10000, kCr0Pg = 0x80000000;
constexpr uint64_t kCr4Pae = 0x20, kCr4Osfxsr = 0x200, kCr4Osxmmexcpt = 0x400;
constexpr uint64_t kEferSce = 1, kEferLme = 0x100, kEferLma = 0x400;

void put(const GuestMemory& mem, uint64_t gpa, uint64_t v) {
  if (!mem.write_obj(gpa, v)) throw std::runtime_error(fmt::format("boot tables: {:#x} is outside guest RAM", gpa));
}

kvm_segment segment(uint16_t selector, uint8_t type, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.s = 1;
  s.g = 1;
  s.l = code ? 1 : 0;
  s.db = code ? 0 : 1;
  return s;
}
}  // namespace

void write_boot_gdt(const GuestMemory& mem) {
  const uint64_t gdt[4] = {0, 0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL};
  for (unsigned i = 0; i < 4; i++) put(mem, layout::kBootGdt + 8 * i, gdt[i]);
}

void write_identity_page_tables(const GuestMemory& mem, uint64_t ram_bytes, uint64_t map_end) {
  using namespace layout;
  const uint64_t top = (std::max(ram_end(ram_bytes), map_end) + GiB - 1) & ~(GiB - 1);
  const uint64_t gib_count = std::max<uint64_t>(top / GiB, 4);  // the low 4 GiB are always mapped (MMIO)
  const uint64_t pdpts = (gib_count + 511) / 512;
  const Range high = high_page_tables(ram_bytes, map_end);
  if ((gib_count - 4) * 0x1000 > high.size) throw std::runtime_error("boot tables: high page-table region too small");
  if (pdpts > kMaxPdpts) throw std::runtime_error("boot tables: guest RAM too large for the identity map");
  for (uint64_t i = 0; i < 512; i++) put(mem, kPml4 + 8 * i, i < pdpts ? (kPdpt + 0x1000 * i) | kPte : 0);
  for (uint64_t g = 0; g < pdpts * 512; g++) {
    uint64_t e = 0;
    if (g < 4) e = (kLowPd + 0x1000 * g) | kPte;
    else if (g < gib_count) e = (high.start + 0x1000 * (g - 4)) | kPte;
    put(mem, kPdpt + 8 * g, e);
  }
  for (uint64_t i = 0; i < 4 * 512; i++) put(mem, kLowPd + 8 * i, (i * 2 * MiB) | kPte | kPageSize);
  for (uint64_t g = 4; g < gib_count; g++)
    for (uint64_t i = 0; i < 512; i++)
      put(mem, high.start + 0x1000 * (g - 4) + 8 * i, (g * GiB + i * 2 * MiB) | kPte | kPageSize);
}

void setup_long_mode_sregs(kvm_sregs& s) {
  s.cs = segment(kBootCs, 0xb, true);
  s.ds = s.es = s.fs = s.gs = s.ss = segment(kBootDs, 0x3, false);
  s.gdt.base = layout::kBootGdt;
  s.gdt.limit = 4 * 8 - 1;
  s.idt.base = 0;
  s.idt.limit = 0;
  s.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Pg;
  s.cr3 = layout::kPml4;
  s.cr4 = kCr4Pae | kCr4Osfxsr | kCr4Osxmmexcpt;
  s.efer = kEferSce | kEferLme | kEferLma;
}

kvm_regs boot_regs(uint64_t entry) {
  kvm_regs r{};
  r.rip = entry;
  r.rsi = layout::kZeroPage;
  r.rflags = 0x2;
  return r;
}

std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::vector<kvm_cpuid_entry2> entries, unsigned index, unsigned cpus) {
  for (auto& e : entries) {
    switch (e.function) {
      case 1:
        e.ebx = (e.ebx & 0x0000ffff) | (std::min(cpus, 255u) << 16) | (index << 24);
        e.ecx |= 1u << 31;  // running under a hypervisor
        e.edx |= 1u << 28;  // HTT: the logical-processor count in EBX is valid
        break;
      case 0xb:
      case 0x1f:
        e.edx = index;  // x2APIC ID
        break;
      default:
        break;
    }
  }
  return entries;
}

std::vector<kvm_msr_entry> boot_msrs() {
  auto msr = [](uint32_t index, uint64_t value) {
    kvm_msr_entry e{};
    e.index = index;
    e.data = value;
    return e;
  };
  return {
      msr(0x174, 0), msr(0x175, 0), msr(0x176, 0),                // SYSENTER_CS/ESP/EIP
      msr(0xc0000081, 0), msr(0xc0000082, 0), msr(0xc0000083, 0),  // STAR, LSTAR, CSTAR
      msr(0xc0000084, 0), msr(0xc0000102, 0),                      // SYSCALL_MASK, KERNEL_GS_BASE
      msr(0x1a0, 1),                                               // MISC_ENABLE: fast strings
  };
}

}  // namespace hvmm::x86
