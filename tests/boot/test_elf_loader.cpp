#include <elf.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "tests/common/elf_image.hpp"
#include "vmm/boot/elf_loader.hpp"
#include "abi/layout.hpp"

using namespace hvmm;
using namespace hvmm::boot;
using namespace hvmm::layout;
using hvmm::testing::ElfImage;

namespace {

const std::vector<uint8_t> kCode{0xF4, 0xEB, 0xFD, 0x90, 0x0F, 0x0B, 0x11, 0x22};  // hlt; jmp; ...

ElfImage valid_image() {
  ElfImage img;
  img.add(PT_LOAD, kKernelStart, kCode, 0x3000);  // .text + zeroed .bss
  img.add(PT_NOTE, 0, {1, 2, 3, 4}, 4);           // ignored
  img.add(PT_LOAD, 2 * MiB, {0xAA, 0xBB}, 2);
  img.eh.e_entry = kKernelStart + 3;
  return img;
}

// 64 MiB of guest RAM whose first 4 MiB hold 0xCC, so writes (and missing writes) show.
struct DirtyMemory : GuestMemory {
  DirtyMemory() : GuestMemory(64 * MiB) { std::memset(hva(0, 4 * MiB), 0xCC, 4 * MiB); }
};

bool untouched(const GuestMemory& mem) {
  auto* p = mem.hva(kKernelStart, 2 * MiB);
  for (size_t i = 0; i < 2 * MiB; ++i)
    if (p[i] != 0xCC) return false;
  return true;
}

}  // namespace

TEST_CASE("ELF loader loads PT_LOAD segments at p_paddr and zero-fills bss") {
  DirtyMemory mem;
  auto img = valid_image().bytes();
  auto k = load_elf64(img, mem, "loading kernel test");
  CHECK(k.entry == kKernelStart + 3);
  CHECK(k.phys_start == kKernelStart);
  CHECK(k.phys_end == 2 * MiB + 2);
  CHECK(std::memcmp(mem.hva(kKernelStart, kCode.size()), kCode.data(), kCode.size()) == 0);
  auto* bss = mem.hva(kKernelStart + kCode.size(), 0x3000 - kCode.size());
  for (size_t i = 0; i < 0x3000 - kCode.size(); ++i) REQUIRE(bss[i] == 0);
  CHECK(*mem.hva(kKernelStart + 0x3000, 1) == 0xCC);  // nothing beyond p_memsz
  CHECK(*mem.hva(2 * MiB, 1) == 0xAA);
  CHECK(*mem.hva(2 * MiB + 1, 1) == 0xBB);
  CHECK(*mem.hva(2 * MiB + 2, 1) == 0xCC);
}

TEST_CASE("ELF loader refuses files that are not ELF64 x86-64 executables") {
  DirtyMemory mem;
  auto passwd = read_file("/etc/passwd", "reading /etc/passwd");
  REQUIRE(!passwd.empty());
  CHECK_THROWS_WITH(load_elf64(passwd, mem, "loading kernel /etc/passwd"),
                    Catch::StartsWith("loading kernel /etc/passwd: not an ELF64 x86-64 executable"));

  auto img = valid_image();
  img.eh.e_ident[EI_CLASS] = ELFCLASS32;
  CHECK_THROWS_WITH(load_elf64(img.bytes(), mem, "k"), Catch::Contains("not an ELF64 x86-64 executable"));

  img = valid_image();
  img.eh.e_machine = EM_AARCH64;
  CHECK_THROWS_WITH(load_elf64(img.bytes(), mem, "k"), Catch::Contains("not an ELF64 x86-64 executable"));

  img = valid_image();
  img.eh.e_ident[EI_DATA] = ELFDATA2MSB;
  CHECK_THROWS_AS(load_elf64(img.bytes(), mem, "k"), std::runtime_error);

  img = valid_image();
  img.eh.e_type = ET_REL;
  CHECK_THROWS_AS(load_elf64(img.bytes(), mem, "k"), std::runtime_error);

  img = valid_image();
  img.eh.e_phentsize = 32;
  CHECK_THROWS_WITH(load_elf64(img.bytes(), mem, "k"), Catch::Contains("program header"));
  CHECK(untouched(mem));
}

TEST_CASE("ELF loader refuses every truncation of a valid image") {
  DirtyMemory mem;
  auto full = valid_image().bytes();
  for (size_t len = 0; len < full.size(); ++len) {
    // A copy of exactly len bytes, so ASan catches any read past the end.
    std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<long>(len));
    INFO("length " << len);
    CHECK_THROWS_AS(load_elf64(cut, mem, "k"), std::runtime_error);
  }
  CHECK(untouched(mem));
}

TEST_CASE("ELF loader refuses segments outside guest RAM") {
  DirtyMemory mem;
  ElfImage img;
  img.add(PT_LOAD, 64 * MiB - 4, kCode, kCode.size());
  img.eh.e_entry = 64 * MiB - 4;
  CHECK_THROWS_WITH(load_elf64(img.bytes(), mem, "loading kernel x"),
                    Catch::StartsWith("loading kernel x: segment [0x3fffffc,0x4000004) does not fit in guest RAM"));

  ElfImage low;  // over the zero page / page tables
  low.add(PT_LOAD, kZeroPage, kCode, kCode.size());
  low.eh.e_entry = kZeroPage;
  CHECK_THROWS_WITH(load_elf64(low.bytes(), mem, "k"), Catch::Contains("does not fit in guest RAM"));

  ElfImage wrap;  // p_paddr + p_memsz wraps around 2^64
  wrap.add(PT_LOAD, kKernelStart, kCode, ~uint64_t{0} - 4);
  wrap.eh.e_entry = kKernelStart;
  CHECK_THROWS_WITH(load_elf64(wrap.bytes(), mem, "k"), Catch::Contains("overflows"));
  CHECK(untouched(mem));
}

TEST_CASE("ELF loader survives hostile offsets and sizes") {
  DirtyMemory mem;
  auto img = valid_image();
  img.bytes();  // fixes offsets
  img.phs[0].p_offset = ~uint64_t{0} - 4;  // p_offset + p_filesz overflows
  CHECK_THROWS_WITH(load_elf64(img.bytes(false), mem, "k"), Catch::Contains("beyond end of file"));

  img = valid_image();
  img.phs[0].p_filesz = ~uint64_t{0};
  img.phs[0].p_memsz = ~uint64_t{0};
  CHECK_THROWS_AS(load_elf64(img.bytes(false), mem, "k"), std::runtime_error);

  img = valid_image();
  img.eh.e_phoff = ~uint64_t{0} - 10;  // table offset past the end / wrapping
  CHECK_THROWS_WITH(load_elf64(img.bytes(), mem, "k"), Catch::Contains("truncated"));

  img = valid_image();
  img.phs[0].p_memsz = 2;  // memsz < filesz
  CHECK_THROWS_WITH(load_elf64(img.bytes(), mem, "k"), Catch::Contains("exceeds memory size"));
  CHECK(untouched(mem));
}

TEST_CASE("ELF loader refuses overlap, no PT_LOAD, and a stray entry point") {
  DirtyMemory mem;
  auto img = valid_image();
  img.add(PT_LOAD, kKernelStart + 0x2000, {1}, 0x10);  // inside the first segment's bss
  CHECK_THROWS_WITH(load_elf64(img.bytes(), mem, "k"), Catch::Contains("overlap"));

  ElfImage notes;
  notes.add(PT_NOTE, 0, {1, 2, 3, 4}, 4);
  CHECK_THROWS_WITH(load_elf64(notes.bytes(), mem, "k"), Catch::Contains("no loadable"));

  img = valid_image();
  img.eh.e_entry = 0x8000'0000;
  CHECK_THROWS_WITH(load_elf64(img.bytes(), mem, "k"), Catch::Contains("entry 0x80000000"));
  img.eh.e_entry = kKernelStart + 0x1000;  // in bss, not in code from the file
  CHECK_THROWS_WITH(load_elf64(img.bytes(), mem, "k"), Catch::Contains("entry"));
  CHECK(untouched(mem));
}

TEST_CASE("read_file reports the failing path with strerror") {
  CHECK_THROWS_WITH(read_file("/nonexistent/kernel", "loading kernel /nonexistent/kernel"),
                    "loading kernel /nonexistent/kernel: No such file or directory");
  CHECK_THROWS_WITH(read_file("/etc", "loading kernel /etc"), Catch::Contains("not a regular file"));
  auto d = read_file("/etc/passwd", "x");
  CHECK(d.size() > 0);
}
