// A small ELF64 x86-64 executable built by hand in a test: header, program headers, then segment
// data. For tests of the ELF loader and of hvmm's handling of bad kernels.
#pragma once
#include <elf.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace hvmm::testing {

struct ElfImage {
  Elf64_Ehdr eh{};
  std::vector<Elf64_Phdr> phs;
  std::vector<std::vector<uint8_t>> datas;

  ElfImage() {
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = ET_EXEC;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
  }
  // Adds a segment; its p_offset is fixed up by bytes().
  Elf64_Phdr& add(uint32_t type, uint64_t paddr, std::vector<uint8_t> data, uint64_t memsz) {
    Elf64_Phdr ph{};
    ph.p_type = type;
    ph.p_flags = PF_R | PF_X;
    ph.p_vaddr = ph.p_paddr = paddr;
    ph.p_filesz = data.size();
    ph.p_memsz = memsz;
    ph.p_align = 0x1000;
    phs.push_back(ph);
    datas.push_back(std::move(data));
    return phs.back();
  }
  std::vector<uint8_t> bytes(bool fix_offsets = true) {
    eh.e_phnum = static_cast<uint16_t>(phs.size());
    uint64_t off = sizeof eh + phs.size() * sizeof(Elf64_Phdr);
    std::vector<uint8_t> out(off);
    for (size_t i = 0; i < phs.size(); ++i) {
      if (fix_offsets) phs[i].p_offset = off;
      off += datas[i].size();
    }
    std::memcpy(out.data(), &eh, sizeof eh);
    std::memcpy(out.data() + sizeof eh, phs.data(), phs.size() * sizeof(Elf64_Phdr));
    for (auto& d : datas) out.insert(out.end(), d.begin(), d.end());
    return out;
  }
};

}  // namespace hvmm::testing
