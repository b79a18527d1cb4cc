#include "guest/frame_list.hpp"

namespace guest {
namespace {
constexpr uint64_t kPerPage = sizeof(FrameListPage::frames) / sizeof(uint64_t);
constexpr uint64_t kPagesPerBlock = uint64_t{1} << kHugeOrder;
uint64_t frame_of(const FrameListPage* p) { return reinterpret_cast<uintptr_t>(p) / kPageSize; }
// A block's pages are used in stack order, so its first page is the last one to be emptied: the block
// goes back to the allocator with it.
void free_list_page(FrameListPage* p) {
  const uint64_t f = frame_of(p);
  if (!p->in_block) mem_free(f, 0);
  else if (f % kPagesPerBlock == 0) mem_free(f, kHugeOrder);
}
}  // namespace

bool FrameList::push(uint64_t frame) {
  if (!head_ || head_->count == kPerPage) {
    FrameListPage* p = nullptr;
    bool in_block = false;
    uint64_t page;
    if (huge_blocks_) {
      if (head_ && head_->in_block && (frame_of(head_) + 1) % kPagesPerBlock != 0) {
        p = head_ + 1;  // the next page of the current block
        in_block = true;
      } else if (mem_alloc(kHugeOrder, page)) {
        p = static_cast<FrameListPage*>(frame_ptr(page));
        in_block = true;
      }
    }
    if (!p) {
      if (!mem_alloc(0, page)) return false;
      p = static_cast<FrameListPage*>(frame_ptr(page));
    }
    p->next = head_;
    p->count = 0;
    p->in_block = in_block ? 1 : 0;
    head_ = p;
  }
  head_->frames[head_->count++] = frame;
  size_++;
  return true;
}

bool FrameList::pop(uint64_t& frame) {
  while (head_ && head_->count == 0) {  // emptied by the previous pops
    FrameListPage* p = head_;
    head_ = p->next;
    free_list_page(p);
  }
  if (!head_) return false;
  frame = head_->frames[--head_->count];
  size_--;
  return true;
}

void FrameList::release(unsigned order) {
  while (FrameListPage* p = head_) {
    for (uint64_t i = 0; i < p->count; i++) mem_free(p->frames[i], order);
    head_ = p->next;
    free_list_page(p);
  }
  size_ = 0;
}

}  // namespace guest
