// Loads an ELF64 x86-64 executable (the built-in guest kernel, or a Linux vmlinux) into guest RAM
// at its physical addresses. The image is untrusted input: every header field is checked before
// anything is copied, with overflow-safe arithmetic, so a hostile file can neither make us read
// past its end nor write outside guest RAM.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "memory/guest_memory.hpp"

namespace hvmm::boot {

struct LoadedKernel {
  uint64_t entry;       // e_entry (a physical address: must lie inside a loaded segment)
  uint64_t phys_start;  // lowest p_paddr of the PT_LOAD segments
  uint64_t phys_end;    // one past the highest p_paddr + p_memsz
};

// Copies the PT_LOAD segments to p_paddr and zero-fills [p_filesz, p_memsz). Segments must lie in
// guest RAM at or above layout::kKernelStart (below it are the GDT, zero page, page tables,
// command line and DTB) and must not overlap each other. Nothing is written unless the whole image
// is valid. Throws std::runtime_error("<what>: <reason>").
LoadedKernel load_elf64(std::span<const uint8_t> image, const GuestMemory& mem, std::string_view what);

// Reads a whole regular file (up to 1 GiB); throws std::runtime_error("<what>: <strerror>").
std::vector<uint8_t> read_file(const std::string& path, std::string_view what);

}  // namespace hvmm::boot
