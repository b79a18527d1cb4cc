// Which 4 KiB pages of guest RAM are in a 4 KiB balloon: one bit per page, so that the device can
// tell when a whole 2 MiB frame has gone in.
//
// Why: guest RAM is THP-backed. The balloon discards what it gets in runs of at most 256 pages
// (1 MiB), and MADV_DONTNEED of part of a huge page splits it; the frame then stays mapped by a
// page table of 4 KiB entries even when all 512 pages were discarded, so after a deflate the guest
// faults it back in 4 KiB at a time (0.13x first-touch speed on the project's host) and never gets a
// huge page again. One more MADV_DONTNEED over the whole, already empty, 2 MiB frame lets the
// kernel drop that page table, and the next touch faults in a huge page (1.00x).
//
// Bits are indexed by the page's offset in the host mapping (GuestMemory::host_base(), 2 MiB
// aligned), so 512 bits in a row are one THP-aligned 2 MiB of the host. Memory: 1 bit per 4 KiB of
// RAM (256 KiB for 8 GiB), zeroed lazily by the kernel. Not thread-safe: the device's lock guards it.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "memory/guest_memory.hpp"

namespace hvmm::virtio {

class BalloonPageMap {
 public:
  static constexpr uint64_t kPage = 4096;
  static constexpr uint64_t kFrame = 2ull << 20;
  static constexpr uint64_t kPagesPerFrame = kFrame / kPage;

  // `mem` must outlive the map.
  explicit BalloonPageMap(const GuestMemory& mem);

  // Marks [gpa, gpa+len) as in the balloon. The range must be 4 KiB aligned and inside one RAM
  // region (else nothing happens and it returns false). Appends to `whole` the gpa of every 2 MiB
  // frame that this call completed — all 512 pages in the balloon now, some of them not before —
  // and that [gpa, gpa+len) does not cover by itself (a discard of the run already dropped those
  // whole). A frame that straddles two RAM regions is never reported: it has no single gpa range.
  bool add(uint64_t gpa, uint64_t len, std::vector<uint64_t>& whole);
  // The guest took [gpa, gpa+len) back out of the balloon (same rules as add).
  bool remove(uint64_t gpa, uint64_t len);
  // The driver was reset: its balloon is empty.
  void clear();

  uint64_t pages() const { return pages_; }  // pages in the balloon
  bool contains(uint64_t gpa) const;         // is this page in the balloon?

 private:
  // First bit of [gpa, gpa+len) if that range is valid for add/remove.
  bool first_bit(uint64_t gpa, uint64_t len, uint64_t& bit) const;
  // Sets or clears bits [first, first+n); returns how many changed.
  uint64_t change(uint64_t first, uint64_t n, bool set);
  bool frame_full(uint64_t frame) const;
  // The gpa of host frame `frame` if the whole 2 MiB lies in one RAM region.
  bool frame_gpa(uint64_t frame, uint64_t& gpa) const;

  struct FreeDeleter {
    void operator()(uint64_t* p) const { std::free(p); }
  };
  const GuestMemory& mem_;
  uint64_t bits_ = 0;  // host mapping / 4 KiB
  std::unique_ptr<uint64_t[], FreeDeleter> words_;
  uint64_t pages_ = 0;
};

}  // namespace hvmm::virtio
