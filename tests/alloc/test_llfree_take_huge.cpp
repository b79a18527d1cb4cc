// The guest-side operations virtio-mem needs: reserve_huge (a not-yet-plugged region at init) and
// take_huge (unplug one specific wholly free 2 MiB frame), with put(kHugeOrder) as the way back.
#include <catch2/catch.hpp>

#include "test_zone.hpp"

using namespace hvmm::alloc;
using test::TestZone;

namespace {
constexpr uint64_t kChildren = 64;  // 8 trees
constexpr uint64_t kFrames = kChildren * kFramesPerChild;

uint16_t child(const LLFree& a, uint64_t c) { return a.shared().children[c].word; }
}  // namespace

TEST_CASE("reserve_huge: the region is allocated as reclaimed huge frames, and put gives one back") {
  TestZone z(kFrames);
  REQUIRE(z.ok);
  z.a.reserve_huge(32, 32);  // the upper half is "not plugged"
  CHECK(z.a.free_frames() == 32 * kFramesPerChild);
  CHECK(z.a.check().bad_children == 0);
  CHECK(z.a.check().bad_trees == 0);
  CHECK(Child::huge_of(child(z.a, 40)));
  CHECK(Child::reclaimed_of(child(z.a, 40)));
  // Nothing is handed out from the reserved half.
  for (;;) {
    auto r = z.a.get(0, kHugeOrder);
    if (!r.ok()) break;
    CHECK(r.frame < 32 * kFramesPerChild);
  }
  // Plug one: it is free again, reclaimed (not resident yet), and the next huge get finds it.
  CHECK(z.a.put(1, 40 * kFramesPerChild, kHugeOrder) == Error::kOk);
  CHECK(Child::wholly_free(child(z.a, 40)));
  CHECK(Child::reclaimed_of(child(z.a, 40)));
  auto r = z.a.get(0, kHugeOrder);
  REQUIRE(r.ok());
  CHECK(r.frame == 40 * kFramesPerChild);
  CHECK(r.reclaimed);
}

TEST_CASE("take_huge takes a wholly free frame and only that one") {
  TestZone z(kFrames);
  REQUIRE(z.ok);
  const uint64_t before = z.a.free_frames();
  CHECK(z.a.take_huge(5));
  CHECK(z.a.free_frames() == before - kFramesPerChild);
  CHECK(Child::huge_of(child(z.a, 5)));
  CHECK(Child::reclaimed_of(child(z.a, 5)));
  CHECK_FALSE(z.a.take_huge(5));  // already taken
  CHECK(z.a.check().bad_trees == 0);
  CHECK(z.a.check().bad_children == 0);
  // The way back is the ordinary free of a huge page.
  CHECK(z.a.put(0, 5 * kFramesPerChild, kHugeOrder) == Error::kOk);
  CHECK(z.a.free_frames() == before);
  CHECK(z.a.check().bad_trees == 0);
}

TEST_CASE("take_huge refuses a frame holding a live page (no migration) and out-of-range children") {
  TestZone z(kFrames);
  REQUIRE(z.ok);
  auto r = z.a.get(0, 0);
  REQUIRE(r.ok());
  const uint64_t c = r.frame / kFramesPerChild;
  const uint64_t free = z.a.free_frames();
  CHECK_FALSE(z.a.take_huge(c));
  CHECK(z.a.free_frames() == free);  // nothing changed, the count went home
  CHECK_FALSE(z.a.take_huge(kChildren));
  CHECK_FALSE(z.a.take_huge(~uint64_t{0}));
  CHECK(z.a.put(0, r.frame, 0) == Error::kOk);
  z.a.drain(0);
  CHECK(z.a.take_huge(c));
  CHECK(z.a.check().bad_trees == 0);
}

TEST_CASE("take_huge finds the count in a CPU's reservation of the tree") {
  TestZone z(kFrames);
  REQUIRE(z.ok);
  // CPU 0 reserves a tree by allocating one page; the other children of that tree are wholly free
  // but their count now lives in CPU 0's reservation, not in the tree counter.
  auto r = z.a.get(0, 0);
  REQUIRE(r.ok());
  const uint64_t t = r.frame / kFramesPerChild / kChildrenPerTree;
  const uint64_t victim = t * kChildrenPerTree + (r.frame / kFramesPerChild % kChildrenPerTree == 0 ? 1 : 0);
  const uint64_t free = z.a.free_frames();
  CHECK(z.a.take_huge(victim));
  CHECK(z.a.free_frames() == free - kFramesPerChild);
  // CPU 0 allocates on: it never hands out the taken frame.
  for (;;) {
    auto g = z.a.get(0, 0);
    if (!g.ok()) break;
    CHECK(g.frame / kFramesPerChild != victim);
  }
}
