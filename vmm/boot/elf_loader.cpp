#include "vmm/boot/elf_loader.hpp"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <stdexcept>

#include "abi/layout.hpp"

namespace hvmm::boot {
namespace {

struct Segment {
  uint64_t paddr, filesz, memsz, offset;
};

[[noreturn]] void fail(std::string_view what, const std::string& why) {
  throw std::runtime_error(fmt::format("{}: {}", what, why));
}

Elf64_Ehdr check_header(std::span<const uint8_t> image, std::string_view what) {
  Elf64_Ehdr eh;
  if (image.size() < sizeof eh) fail(what, "not an ELF64 x86-64 executable (file too short)");
  std::memcpy(&eh, image.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64 || eh.e_type != ET_EXEC)
    fail(what, "not an ELF64 x86-64 executable");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0)
    fail(what, fmt::format("bad program header table (entry size {}, {} entries)", eh.e_phentsize, eh.e_phnum));
  // e_phnum <= 0xffff entries of 56 bytes: the product cannot overflow, the sum is checked.
  uint64_t table = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
  if (eh.e_phoff > image.size() || table > image.size() - eh.e_phoff)
    fail(what, "truncated file: program header table beyond end of file");
  return eh;
}

std::vector<Segment> collect_segments(std::span<const uint8_t> image, const Elf64_Ehdr& eh,
                                      const GuestMemory& mem, std::string_view what) {
  std::vector<Segment> segs;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    std::memcpy(&ph, image.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz)
      fail(what, fmt::format("segment {}: file size {:#x} exceeds memory size {:#x}", i, ph.p_filesz, ph.p_memsz));
    if (ph.p_offset > image.size() || ph.p_filesz > image.size() - ph.p_offset)
      fail(what, fmt::format("truncated file: segment {} data [{:#x}, +{:#x}) beyond end of file ({:#x} bytes)",
                             i, ph.p_offset, ph.p_filesz, image.size()));
    if (ph.p_paddr > UINT64_MAX - ph.p_memsz)
      fail(what, fmt::format("segment {}: address {:#x} + size {:#x} overflows", i, ph.p_paddr, ph.p_memsz));
    if (ph.p_paddr < layout::kKernelStart || !mem.contains(ph.p_paddr, ph.p_memsz))
      fail(what, fmt::format("segment [{:#x},{:#x}) does not fit in guest RAM above {:#x}", ph.p_paddr,
                             ph.p_paddr + ph.p_memsz, layout::kKernelStart));
    segs.push_back({ph.p_paddr, ph.p_filesz, ph.p_memsz, ph.p_offset});
  }
  if (segs.empty()) fail(what, "no loadable (PT_LOAD) segment");
  std::sort(segs.begin(), segs.end(), [](auto& a, auto& b) { return a.paddr < b.paddr; });
  for (size_t i = 1; i < segs.size(); ++i)
    if (segs[i].paddr < segs[i - 1].paddr + segs[i - 1].memsz)
      fail(what, fmt::format("segments [{:#x},{:#x}) and [{:#x},{:#x}) overlap", segs[i - 1].paddr,
                             segs[i - 1].paddr + segs[i - 1].memsz, segs[i].paddr, segs[i].paddr + segs[i].memsz));
  return segs;
}

}  // namespace

LoadedKernel load_elf64(std::span<const uint8_t> image, const GuestMemory& mem, std::string_view what) {
  Elf64_Ehdr eh = check_header(image, what);
  auto segs = collect_segments(image, eh, mem, what);

  bool entry_ok = std::any_of(segs.begin(), segs.end(), [&](const Segment& s) {
    return eh.e_entry >= s.paddr && eh.e_entry - s.paddr < s.filesz;
  });
  if (!entry_ok) fail(what, fmt::format("entry {:#x} lies outside the loaded segments' code", eh.e_entry));

  LoadedKernel k{eh.e_entry, segs.front().paddr, 0};
  for (auto& s : segs) {
    uint8_t* dst = mem.hva(s.paddr, s.memsz);  // checked above; re-checked here for safety
    if (!dst) fail(what, fmt::format("segment [{:#x},{:#x}) does not fit in guest RAM", s.paddr, s.paddr + s.memsz));
    std::memcpy(dst, image.data() + s.offset, s.filesz);
    std::memset(dst + s.filesz, 0, s.memsz - s.filesz);
    k.phys_end = std::max(k.phys_end, s.paddr + s.memsz);
  }
  return k;
}

namespace {
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};
}  // namespace

std::vector<uint8_t> read_file(const std::string& path, std::string_view what) {
  constexpr uint64_t kMaxFile = uint64_t{1} << 30;
  Fd f{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) fail(what, strerror(errno));
  struct stat st;
  if (fstat(f.fd, &st) != 0) fail(what, strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(what, "not a regular file");
  if (static_cast<uint64_t>(st.st_size) > kMaxFile) fail(what, fmt::format("file of {} bytes is too large", st.st_size));
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::read(f.fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(what, strerror(errno));
    if (n == 0) break;  // file shrank under us: keep what we got
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  return data;
}

}  // namespace hvmm::boot
