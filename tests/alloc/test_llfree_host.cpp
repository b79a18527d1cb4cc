// HyperAlloc host operations on the shared words, and how the guest side reacts to them: the
// reclaimed flag is reported for every covered child, reclaimed children are used last.
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "abi/hyperalloc.hpp"
#include "guest-alloc/llfree.hpp"
#include "guest-alloc/llfree_host.hpp"
#include "tests/alloc/host_scan.hpp"
#include "test_zone.hpp"

using namespace hvmm::alloc;
using hvmm::alloc::test::TestZone;

namespace {
uint16_t child_word(TestZone& z, uint64_t idx) { return static_cast<Child*>(z.children.get())[idx].word; }
}  // namespace

TEST_CASE("hard reclaim takes a free child and 512 from its tree; return gives them back") {
  const uint64_t frames = 32 * 512;
  TestZone z(frames, 1);
  const SharedView v = z.a.shared();
  const test::Found f = test::find_and_hard_reclaim(v, 5);
  REQUIRE(f.ok);
  CHECK(f.huge_idx == 5);
  CHECK(child_word(z, 5) == Child::make(0, true, true));
  CHECK(z.a.free_frames() == frames - 512);
  CHECK(host::shared_free_frames(v) == frames - 512);
  CHECK(z.a.check().ok());
  CHECK_FALSE(host::hard_reclaim(v, 5));    // not free any more
  CHECK_FALSE(host::soft_reclaim(v, 5));
  CHECK(z.a.put(0, 5 * 512, 0) == Error::kDoubleFree);  // the guest cannot free a bit of it

  REQUIRE(host::return_huge(v, 5));
  CHECK(child_word(z, 5) == Child::make(512, false, true));
  CHECK(z.a.free_frames() == frames);
  CHECK(z.a.check().ok());
  CHECK_FALSE(host::return_huge(v, 5));     // only once
  CHECK_FALSE(host::return_huge(v, 6));     // never reclaimed
  CHECK_FALSE(host::hard_reclaim(v, 32));   // out of range
  CHECK_FALSE(host::return_huge(v, 1000));
}

TEST_CASE("hard and soft reclaim fail on a tree reserved by a guest CPU") {
  TestZone z(32 * 512, 1);
  const SharedView v = z.a.shared();
  const Result r = z.a.get(0, 0);  // reserves the tree holding r.frame
  REQUIRE(r.ok());
  const uint64_t tree = r.frame / kFramesPerTree;
  const uint64_t free_child = tree * kChildrenPerTree + ((r.frame / 512 + 1) % kChildrenPerTree);
  CHECK_FALSE(host::hard_reclaim(v, free_child));
  CHECK_FALSE(host::soft_reclaim(v, free_child));
  CHECK_FALSE(host::hard_reclaim(v, r.frame / 512));  // and a used child never
  z.a.drain(0);
  CHECK(host::soft_reclaim(v, free_child));
  CHECK(host::hard_reclaim(v, free_child));           // soft -> hard is allowed
  CHECK(z.a.check().ok());
}

TEST_CASE("soft reclaim sets only the flag; clear_reclaimed removes it") {
  const uint64_t frames = 16 * 512;
  TestZone z(frames, 1);
  const SharedView v = z.a.shared();
  const test::Found f = test::find_and_soft_reclaim(v, 3);
  REQUIRE(f.ok);
  CHECK(f.huge_idx == 3);
  CHECK(child_word(z, 3) == Child::make(512, false, true));
  CHECK(z.a.free_frames() == frames);  // counters unchanged
  CHECK(z.a.check().ok());
  CHECK_FALSE(host::soft_reclaim(v, 3));  // already reclaimed
  CHECK(test::find_and_soft_reclaim(v, 3).huge_idx == 4);
  CHECK(host::clear_reclaimed(v, 3));
  CHECK(child_word(z, 3) == Child::make(512, false, false));
  CHECK_FALSE(host::clear_reclaimed(v, 3));
}

TEST_CASE("the host finds nothing when every child is used or reclaimed") {
  TestZone z(2 * 512, 1);
  const SharedView v = z.a.shared();
  REQUIRE(z.a.get(0, 0).ok());
  z.a.drain(0);
  REQUIRE(test::find_and_hard_reclaim(v, 0).ok);
  CHECK_FALSE(test::find_and_hard_reclaim(v, 0).ok);
  CHECK_FALSE(test::find_and_soft_reclaim(v, 0).ok);
}

TEST_CASE("the guest prefers children that are not reclaimed") {
  const uint64_t frames = 16 * 512;  // two trees
  TestZone z(frames, 1);
  const SharedView v = z.a.shared();
  for (uint64_t c = 0; c < 16; ++c)
    if (c != 11) REQUIRE(host::soft_reclaim(v, c));
  for (int i = 0; i < 512; ++i) {
    const Result r = z.a.get(0, 0);
    REQUIRE(r.ok());
    REQUIRE_FALSE(r.reclaimed);
    REQUIRE(r.frame / 512 == 11);
  }
  const Result r = z.a.get(0, 0);  // only reclaimed children are left
  REQUIRE(r.ok());
  CHECK(r.reclaimed);
  CHECK(z.a.check().ok());

  TestZone h(frames, 1);
  const SharedView hv = h.a.shared();
  for (uint64_t c = 0; c < 16; ++c)
    if (c != 6 && c != 7) REQUIRE(host::soft_reclaim(hv, c));
  const Result w = h.a.get(0, 10);
  REQUIRE(w.ok());
  CHECK(w.frame == 6 * 512);
  CHECK_FALSE(w.reclaimed);
  const Result w2 = h.a.get(0, 10);
  REQUIRE(w2.ok());
  CHECK(w2.reclaimed);
}

TEST_CASE("reclaimed is reported for every covered child") {
  SECTION("order 10, either half") {
    for (uint64_t half : {0u, 1u}) {
      TestZone z(2 * 512, 1);
      REQUIRE(host::soft_reclaim(z.a.shared(), half));
      const Result r = z.a.get(0, 10);
      REQUIRE(r.ok());
      CHECK(r.reclaimed);
      CHECK(child_word(z, 0) == Child::make(0, true, half == 0));
      CHECK(child_word(z, 1) == Child::make(0, true, half == 1));
      REQUIRE(z.a.put(0, 0, 10) == Error::kOk);  // put keeps the flags for the host to clear
      CHECK(Child::reclaimed_of(child_word(z, half)));
      CHECK(z.a.check().ok());
    }
  }
  SECTION("order 9 and small orders carry the containing child's flag") {
    TestZone z(2 * 512, 1);
    const SharedView v = z.a.shared();
    REQUIRE(host::soft_reclaim(v, 0));
    REQUIRE(host::soft_reclaim(v, 1));
    const Result small = z.a.get(0, 4);
    REQUIRE(small.ok());
    CHECK(small.reclaimed);
    REQUIRE(host::clear_reclaimed(v, small.frame / 512));  // the install
    const Result again = z.a.get(0, 4);
    REQUIRE(again.ok());
    CHECK(again.frame / 512 == small.frame / 512);  // installed child preferred
    CHECK_FALSE(again.reclaimed);
    const Result huge = z.a.get(0, 9);
    REQUIRE(huge.ok());
    CHECK(huge.reclaimed);
    CHECK(huge.frame / 512 != small.frame / 512);
  }
  SECTION("a returned (hard-reclaimed) child is reported when allocated") {
    TestZone z(1 * 512, 1);
    const SharedView v = z.a.shared();
    REQUIRE(host::hard_reclaim(v, 0));
    CHECK(z.a.get(0, 0).error == Error::kNoMemory);
    CHECK(z.a.get(0, 9).error == Error::kNoMemory);
    REQUIRE(host::return_huge(v, 0));
    const Result r = z.a.get(0, 9);
    REQUIRE(r.ok());
    CHECK(r.reclaimed);
  }
}

TEST_CASE("registration record is self-describing") {
  using namespace hvmm::abi::hyperalloc;
  constexpr Registration r = layout_template();
  static_assert(r.magic == kMagic && r.size == sizeof(Registration));
  CHECK(r.frames_per_child == 512);
  CHECK(r.children_per_tree == 8);
  CHECK(r.child_bytes == 2);
  CHECK(r.tree_bytes == 2);
  CHECK(r.bitfield_bytes == 64);
  CHECK(r.frame_shift == 12);
}
