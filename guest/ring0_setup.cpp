// The only C++ that runs at CPL0 (emulated on nested hosts: keep it to a few hundred instructions
// per CPU). Loads this CPU's GDT/TSS/IDT and the FS base that points at its PerCpu.
#include <cstddef>
#include <cstdint>

#include "guest/arch.hpp"
#include "guest/hypercall.hpp"
#include "guest/percpu.hpp"

namespace guest {

PerCpu g_percpu[kMaxCpus];

// Boot stacks, one per CPU (entry.S picks its own by APIC ID; 32 KiB = 1 << STACK_SHIFT).
extern "C" {
alignas(16) uint8_t boot_stacks[kMaxCpus][32 * 1024];
}

namespace {
struct __attribute__((packed)) Tss {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap_base;
};
static_assert(sizeof(Tss) == 104);

struct __attribute__((packed)) TablePtr {
  uint16_t limit;
  uint64_t base;
};

struct IdtGate {
  uint16_t off_lo, selector;
  uint8_t ist, type_attr;
  uint16_t off_mid;
  uint32_t off_hi, zero;
};
static_assert(sizeof(IdtGate) == 16);

constexpr unsigned kExcStack = 4096;
constexpr unsigned kTssStride = 128;
constexpr unsigned kIoBitmapOffset = kMaxCpus * kTssStride;
constexpr unsigned kIoBitmapBytes = 65536 / 8 + 1;  // every port, plus the 0xff terminator byte
constexpr unsigned kTssBase = 6;  // GDT slot of CPU 0's TSS (16-byte descriptors)

// Same code/data selectors as the boot GDT (0x10, 0x18), plus user data 0x20 and user code 0x28.
alignas(16) uint64_t gdt[kTssBase + 2 * kMaxCpus] = {
    0, 0, 0x00af9b000000ffffULL, 0x00cf93000000ffffULL, 0x00cff3000000ffffULL, 0x00affb000000ffffULL};
alignas(16) IdtGate idt[32];
// All TSSes, then one shared I/O permission bitmap with every port allowed: each TSS's iomap_base
// points at it, so CPL3 port I/O works even where IOPL is not honoured (nested kvm_pvm).
struct TssArea {
  struct alignas(kTssStride) Slot { Tss tss; } slots[kMaxCpus];
  uint8_t io_bitmap[kIoBitmapBytes];
};
static_assert(offsetof(TssArea, io_bitmap) == kIoBitmapOffset);
alignas(4096) TssArea tss_area;
alignas(16) uint8_t exc_stacks[kMaxCpus][kExcStack];
}  // namespace

extern "C" const uint64_t exc_stub_table[32];

extern "C" void ring0_setup(unsigned cpu) {
  PerCpu& pc = g_percpu[cpu];
  pc.self = &pc;
  pc.id = cpu;
  pc.canary = 0x2f8a'5e3c'91d7'4b60ULL ^ (rdtsc() << 8);

  Tss& t = tss_area.slots[cpu].tss;
  t.rsp[0] = reinterpret_cast<uint64_t>(exc_stacks[cpu] + kExcStack);
  t.iomap_base = static_cast<uint16_t>(kIoBitmapOffset - cpu * kTssStride);
  if (cpu == 0) tss_area.io_bitmap[kIoBitmapBytes - 1] = 0xff;
  uint64_t base = reinterpret_cast<uint64_t>(&t);
  uint64_t limit = t.iomap_base + kIoBitmapBytes - 1;
  gdt[kTssBase + 2 * cpu] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
                            (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
  gdt[kTssBase + 2 * cpu + 1] = base >> 32;

  // Every CPU writes the same gates: cheaper than ordering the APs behind the BSP.
  for (unsigned v = 0; v < 32; v++) {
    uint64_t h = exc_stub_table[v];
    idt[v] = IdtGate{uint16_t(h), 0x10, 0, 0x8e, uint16_t(h >> 16), uint32_t(h >> 32), 0};
  }
  TablePtr g{sizeof(gdt) - 1, reinterpret_cast<uint64_t>(gdt)};
  TablePtr i{sizeof(idt) - 1, reinterpret_cast<uint64_t>(idt)};
  uint16_t tr = static_cast<uint16_t>((kTssBase + 2 * cpu) * 8);
  asm volatile("lgdt %0; lidt %1; ltr %2" ::"m"(g), "m"(i), "r"(tr) : "memory");
  wrmsr(0xC0000100, reinterpret_cast<uint64_t>(&pc));  // FS base
}

// CPL0, from exc_common: report the exception to the VMM, which stops the VM.
extern "C" void exception_report(uint64_t vector, uint64_t error, uint64_t rip, uint64_t cr2, uint64_t rflags,
                                 uint64_t cs) {
  hypercall(hvmm::abi::Hypercall::kPanic, vector, error, rip, cr2, rflags, cs);
}

}  // namespace guest
