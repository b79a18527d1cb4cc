// Guest RAM: one anonymous, 2 MiB-aligned, THP-backed mapping, split into guest-physical regions
// around the MMIO hole. The only part of vmm/ that devices/ and reclaim/ use.
//
// Every translation is bounds-checked: a guest-supplied (gpa, len) either lies wholly inside one
// RAM region or is refused (nullptr / false). Nothing here trusts its caller's arithmetic.
//
// With virtio-mem there is also a hot-plug region (a mapping of its own, 2 MiB-aligned, THP): its
// blocks are accessible only while plugged. An atomic bitmap, changed by the virtio-mem mechanism,
// says which; every translation touching an unplugged block is refused like one outside RAM, so no
// device model or hypercall can read or write memory the guest gave back.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
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
  // The same plus a hot-plug region [hotplug_gpa, +hotplug_bytes) outside RAM, in blocks of
  // `block` bytes (a power of two >= 2 MiB; gpa and size multiples of it). Every block starts
  // unplugged (inaccessible).
  GuestMemory(uint64_t ram_bytes, uint64_t hotplug_gpa, uint64_t hotplug_bytes, uint64_t block);
  // Test constructor: arbitrary regions over one fresh mapping (sizes multiples of 4 KiB, sorted,
  // non-overlapping).
  struct RegionSpec { uint64_t gpa, size; };
  explicit GuestMemory(std::span<const RegionSpec> regions);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  uint64_t ram_bytes() const { return ram_bytes_; }  // boot RAM (without the hot-plug region)
  std::span<const MemRegion> regions() const { return regions_; }

  // The region holding [gpa, gpa+len), or nullptr (also when any byte is in an unplugged block).
  // len == 0 is treated as 1.
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

  // The hot-plug region (nullptr without one) and its block size. Not in regions(): it is not RAM.
  const MemRegion* hotplug() const { return hot_.size ? &hot_ : nullptr; }
  uint64_t hotplug_block() const { return hot_block_; }
  // Plugs (accessible) or unplugs [gpa, gpa+len) of the hot-plug region: whole blocks only, else
  // false (EINVAL) and nothing changes. Unplugging first makes the blocks inaccessible, then
  // discards them (MADV_DONTNEED): a racing reader is refused rather than faulting memory back.
  // Const like discard(): the layout never changes, only which blocks may be touched.
  bool set_plugged(uint64_t gpa, uint64_t len, bool plugged) const;
  // Is every byte of [gpa, gpa+len) in a plugged block of the hot-plug region?
  bool plugged(uint64_t gpa, uint64_t len) const;

  // The whole host mapping of boot RAM (for KVM memory slots and RSS accounting).
  uint8_t* host_base() const { return base_; }
  uint64_t host_size() const { return map_size_; }

 private:
  struct Mapping {
    uint8_t* base = nullptr;  // 2 MiB-aligned
    uint8_t* raw = nullptr;   // what mmap returned (for munmap)
    uint64_t raw_size = 0;
  };
  static Mapping map_aligned(uint64_t bytes, const char* what);
  void map(uint64_t bytes);
  bool blocks_plugged(uint64_t gpa, uint64_t len) const;
  bool advise(uint64_t gpa, uint64_t len, int advice) const;
  uint8_t* base_ = nullptr;       // 2 MiB-aligned start of guest RAM in the host
  uint8_t* raw_ = nullptr;        // what mmap returned (for munmap)
  uint64_t raw_size_ = 0;
  uint64_t map_size_ = 0;
  uint64_t ram_bytes_ = 0;
  std::vector<MemRegion> regions_;
  MemRegion hot_{0, 0, nullptr};
  Mapping hot_map_;
  uint64_t hot_block_ = 0;
  std::unique_ptr<std::atomic<uint64_t>[]> hot_bits_;  // 1 = plugged, one bit per block
};

}  // namespace hvmm
