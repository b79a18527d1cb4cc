#include "guest/frame_list.hpp"

namespace guest {
namespace {
constexpr uint64_t kPerPage = sizeof(FrameListPage::frames) / sizeof(uint64_t);
void free_list_page(FrameListPage* p) { mem_free(reinterpret_cast<uintptr_t>(p) / kPageSize, 0); }
}  // namespace

bool FrameList::push(uint64_t frame) {
  if (!head_ || head_->count == kPerPage) {
    uint64_t page;
    if (!mem_alloc(0, page)) return false;
    auto* p = static_cast<FrameListPage*>(frame_ptr(page));
    p->next = head_;
    p->count = 0;
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
