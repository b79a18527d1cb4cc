// x86-64 CPU state for the Linux 64-bit boot protocol: boot GDT, identity page tables, control
// registers, CPUID and MSRs. The tables are written into guest RAM at the addresses of layout.hpp.
#pragma once
#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "memory/guest_memory.hpp"

namespace hvmm::x86 {

inline constexpr uint16_t kBootCs = 0x10;  // __BOOT_CS
inline constexpr uint16_t kBootDs = 0x18;  // __BOOT_DS

// Flat 64-bit code and data descriptors at kBootCs / kBootDs.
void write_boot_gdt(const GuestMemory& mem);
// Identity map of [0, ram_end) rounded up to 1 GiB, with 2 MiB pages; the directories for RAM
// above 4 GiB live in layout::high_page_tables().
// Entries carry the U bit: the built-in kernel runs at CPL3 (ARCHITECTURE.md, "The built-in guest").
// map_end: also map up to there (a virtio-mem region above RAM; 0: none).
void write_identity_page_tables(const GuestMemory& mem, uint64_t ram_bytes, uint64_t map_end = 0);

// Long mode, paging on, SSE enabled, boot segments loaded.
void setup_long_mode_sregs(kvm_sregs& s);
// RIP at the kernel entry, RSI = zero page, interrupts off.
kvm_regs boot_regs(uint64_t entry);
// KVM's supported CPUID, with this vCPU's APIC ID, the topology and the hypervisor bit filled in.
std::vector<kvm_cpuid_entry2> vcpu_cpuid(std::vector<kvm_cpuid_entry2> supported, unsigned index, unsigned cpus);
// Architectural reset values for the MSRs a kernel may read before setting them.
std::vector<kvm_msr_entry> boot_msrs();

}  // namespace hvmm::x86
