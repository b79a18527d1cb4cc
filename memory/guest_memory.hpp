// Guest RAM: one anonymous, 2 MiB-aligned, THP-backed mapping, split into guest-physical regions
// around the MMIO hole. The only part of vmm/ that devices/ and reclaim/ use.
//
// Every translation is bounds-checked: a guest-supplied (gpa, len) either lies wholly inside one
// RAM region or is refused (nullptr / false). Nothing here trusts its caller's arithmetic.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

namespace hvmm {

struct MemRegion {
  uint64_t gpa;    // guest-physical start
  uint64_t size;   // bytes
  uint8_t* hva;    // host address of gpa
  uint64_t end() const { return gpa + size; }
};

class GuestMemory {
 public:
  // Maps `ram_bytes` (a multiple of 2 MiB) of guest RAM laid out as layout::split_ram says.
  // Throws std::runtime_error with context if the mapping fails.
  explicit GuestMemory(uint64_t ram_bytes);
  // Test constructor: arbitrary regions over one fresh mapping (sizes multiples of 4 KiB, sorted,
  // non-overlapping).
  struct RegionSpec { uint64_t gpa, size; };
  explicit GuestMemory(std::span<const RegionSpec> regions);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  uint64_t ram_bytes() const { return ram_bytes_; }
  std::span<const MemRegion> regions() const { return regions_; }

  // The region holding [gpa, gpa+len), or nullptr. len == 0 is treated as 1.
  const MemRegion* find(uint64_t gpa, uint64_t len = 1) const;
  bool contains(uint64_t gpa, uint64_t len) const { return find(gpa, len) != nullptr; }
  // Host pointer for [gpa, gpa+len), or nullptr when any byte is outside RAM.
  uint8_t* hva(uint64_t gpa, uint64_t len) const;

  // Bounds-checked copies; false (nothing copied) when the range is not wholly in RAM.
  bool read(uint64_t gpa, void* dst, uint64_t len) const;
  bool write(uint64_t gpa, const void* src, uint64_t len) const;
  template <class T>
  bool read_obj(uint64_t gpa, T& out) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return read(gpa, &out, sizeof(T));
  }
  template <class T>
  bool write_obj(uint64_t gpa, const T& v) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(gpa, &v, sizeof(T));
  }

  // Give the backing of [gpa, gpa+len) back to the host (MADV_DONTNEED) / fault it in
  // (MADV_POPULATE_WRITE). Range must be in RAM and 4 KiB aligned; returns false with errno set
  // otherwise (EINVAL) or when madvise fails (its errno).
  bool discard(uint64_t gpa, uint64_t len) const;
  bool populate(uint64_t gpa, uint64_t len) const;

  // The whole host mapping (for KVM memory slots and RSS accounting).
  uint8_t* host_base() const { return base_; }
  uint64_t host_size() const { return map_size_; }

 private:
  void map(uint64_t bytes);
  bool advise(uint64_t gpa, uint64_t len, int advice) const;
  uint8_t* base_ = nullptr;       // 2 MiB-aligned start of guest RAM in the host
  uint8_t* raw_ = nullptr;        // what mmap returned (for munmap)
  uint64_t raw_size_ = 0;
  uint64_t map_size_ = 0;
  uint64_t ram_bytes_ = 0;
  std::vector<MemRegion> regions_;
};

}  // namespace hvmm
