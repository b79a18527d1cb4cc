// An anonymous private mapping, 2 MiB aligned and advised MADV_HUGEPAGE: the same kind of backing
// that hvmm gives guest RAM (memory/guest_memory.cpp), so what is measured here is the VMM's limit.
#pragma once

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace hvmm::limits {

inline constexpr uint64_t kHuge = 2ull << 20;
inline constexpr uint64_t kPage = 4096;

class ThpMapping {
 public:
  explicit ThpMapping(uint64_t bytes) : size_(bytes), raw_size_(bytes + kHuge) {
    void* p = mmap(nullptr, raw_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
      throw std::runtime_error("mmap of " + std::to_string(bytes >> 20) + " MiB: " + std::strerror(errno));
    raw_ = static_cast<uint8_t*>(p);
    base_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw_) + kHuge - 1) & ~(kHuge - 1));
    if (madvise(base_, size_, MADV_HUGEPAGE) != 0)
      throw std::runtime_error(std::string("madvise(MADV_HUGEPAGE): ") + std::strerror(errno));
  }
  ~ThpMapping() { munmap(raw_, raw_size_); }
  ThpMapping(const ThpMapping&) = delete;
  ThpMapping& operator=(const ThpMapping&) = delete;

  uint8_t* data() const { return base_; }
  uint64_t size() const { return size_; }

  // Writes one byte per 4 KiB page (with THP, the first write of each 2 MiB faults in the whole frame).
  void touch() const {
    for (uint64_t off = 0; off < size_; off += kPage) static_cast<volatile uint8_t*>(base_)[off] = 1;
  }
  void advise(uint64_t off, uint64_t len, int advice, const char* what) const {
    if (madvise(base_ + off, len, advice) != 0)
      throw std::runtime_error(std::string(what) + " of " + std::to_string(len >> 10) + " KiB: " + std::strerror(errno));
  }

 private:
  uint64_t size_, raw_size_;
  uint8_t* raw_ = nullptr;
  uint8_t* base_ = nullptr;
};

}  // namespace hvmm::limits
