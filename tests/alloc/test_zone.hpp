// Test helper: caller-provided memory for one LLFree zone (filled with garbage before init, so a
// test fails if init leaves a word unwritten).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "guest-alloc/llfree.hpp"

namespace hvmm::alloc::test {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<void, FreeDeleter>;

inline Buffer make_buffer(Region r) {
  const uint64_t bytes = (r.bytes + r.align - 1) / r.align * r.align;
  void* p = std::aligned_alloc(r.align, bytes ? bytes : r.align);
  std::memset(p, 0xa5, bytes ? bytes : r.align);
  return Buffer(p);
}

struct TestZone {
  explicit TestZone(uint64_t frames, unsigned cpus = 2) {
    const Sizes s = LLFree::sizes(frames, cpus);
    trees = make_buffer(s.trees);
    children = make_buffer(s.children);
    bitfield = make_buffer(s.bitfield);
    locals = make_buffer(s.locals);
    ok = a.init(cpus, frames, trees.get(), children.get(), bitfield.get(), locals.get());
  }
  Buffer trees, children, bitfield, locals;
  LLFree a;
  bool ok = false;
};

}  // namespace hvmm::alloc::test
