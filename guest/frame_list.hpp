// A list of frame numbers, kept in 4 KiB list pages that come from the allocator itself, so it has
// no fixed limit. Used for the workload's regions (guest/regions.cpp) and the balloon's frames
// (guest/virtio/balloon.cpp). Not thread-safe: one owner (or the owner's lock).
#pragma once
#include <cstdint>

#include "guest/mem.hpp"

namespace guest {

struct FrameListPage {
  FrameListPage* next;
  uint32_t count;
  uint32_t in_block;  // 1: one of the 512 pages of a 2 MiB list block (FrameList(true))
  uint64_t frames[kPageSize / 8 - 2];
};
static_assert(sizeof(FrameListPage) == kPageSize);

class FrameList {
 public:
  FrameList() = default;
  // huge_blocks: take list pages from 2 MiB blocks of their own (one block holds 512 list pages, used
  // in stack order), falling back to single pages only when no free 2 MiB block is left. The balloon
  // needs this: a list page allocated next to the frames it lists sits inside a ballooned 2 MiB
  // frame, and writing it makes the host fault the whole frame back in (THP), keeps the partly
  // discarded huge page from being freed, and gives khugepaged a present page to collapse around.
  explicit FrameList(bool huge_blocks) : huge_blocks_(huge_blocks) {}
  // False when a new list page was needed and the allocator had none.
  bool push(uint64_t frame);
  // Takes the newest frame; false when the list is empty. Emptied list pages go back to the allocator.
  bool pop(uint64_t& frame);
  // Calls f(frame) for every frame, newest list page first.
  template <class F>
  void for_each(F&& f) const {
    for (const FrameListPage* p = head_; p; p = p->next)
      for (uint64_t i = 0; i < p->count; i++) f(p->frames[i]);
  }
  // Frees every frame (blocks of 2^order frames) and every list page; the list is empty afterwards.
  void release(unsigned order);
  uint64_t size() const { return size_; }

 private:
  FrameListPage* head_ = nullptr;
  uint64_t size_ = 0;
  bool huge_blocks_ = false;
};

}  // namespace guest
