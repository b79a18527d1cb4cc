// Per-CPU state, reached through the FS base (set once at CPL0). Offset 0x28 holds the stack
// protector canary that Debian's libfdt.a reads at %fs:0x28.
#pragma once
#include <cstddef>
#include <cstdint>

#include "abi/limits.hpp"
#include "abi/ports.hpp"

namespace guest {

inline constexpr unsigned kMaxCpus = hvmm::abi::kMaxCpus;  // workload + service CPUs
inline constexpr unsigned kLineMax = 256;

struct alignas(64) PerCpu {
  PerCpu* self;            // 0x00: this_cpu() reads it
  uint32_t id;             // 0x08: APIC ID = CPU index
  uint32_t line_len;       // 0x0c: bytes pending in `line`
  uint64_t pad[3];         // 0x10
  uint64_t canary;         // 0x28: %fs:0x28
  alignas(64) hvmm::abi::HypercallRequest req;  // one outstanding hypercall per CPU
  char line[kLineMax];     // console line buffer
};
static_assert(offsetof(PerCpu, canary) == 0x28);

extern PerCpu g_percpu[kMaxCpus];

inline PerCpu* this_cpu() {
  PerCpu* p;
  asm("mov %%fs:0, %0" : "=r"(p));
  return p;
}

}  // namespace guest
