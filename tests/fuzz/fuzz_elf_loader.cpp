// libFuzzer target: the ELF64 loader (vmm/boot/elf_loader.*) on arbitrary kernel images (--kernel
// is a user's file). Whatever the input: a loaded kernel whose segments lie in guest RAM, or a
// std::runtime_error; never a crash or a write outside guest RAM (ASan).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <span>

#include "memory/guest_memory.hpp"
#include "vmm/boot/elf_loader.hpp"

using namespace hvmm;

namespace {
// 4 MiB of RAM, a hole, 1 MiB more: segments can hit both edges of the hole.
GuestMemory::RegionSpec kRegions[] = {{0, 4u << 20}, {8u << 20, 1u << 20}};
GuestMemory& memory() {
  static GuestMemory mem(kRegions);
  return mem;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  GuestMemory& mem = memory();
  try {
    auto k = boot::load_elf64(std::span<const uint8_t>(data, size), mem, "fuzz");
    // The entry point lies in a loaded segment, so in RAM.
    if (!mem.contains(k.entry, 1) || k.phys_end < k.phys_start) std::abort();
  } catch (const std::exception&) {
  }
  return 0;
}
