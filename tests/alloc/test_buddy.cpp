// The buddy allocator (guest-alloc/buddy.hpp) on host memory: split and merge, every order,
// exhaustion, refused double and bad frees, free-list order (head for fresh frees, tail for reported).
#include <catch2/catch.hpp>

#include <set>
#include <vector>

#include "guest-alloc/buddy.hpp"

using hvmm::alloc::Buddy;

namespace {
struct Zone {
  std::vector<uint64_t> meta;
  Buddy b;
  explicit Zone(uint64_t frames, bool all_free = true) : meta((Buddy::meta_bytes(frames) + 7) / 8) {
    REQUIRE(b.init(frames, meta.data()));
    if (all_free) b.free_range(0, frames);
  }
};
constexpr uint64_t kTop = uint64_t{1} << Buddy::kMaxOrder;  // frames in one order-10 block
}  // namespace

TEST_CASE("buddy: init leaves everything allocated, free_range builds the largest aligned blocks") {
  Zone z(4 * kTop, false);
  CHECK(z.b.free_frames() == 0);
  uint64_t f;
  CHECK_FALSE(z.b.get(0, f));
  z.b.free_range(3, 4 * kTop - 3);  // frames 0..2 stay allocated (boot data)
  CHECK(z.b.free_frames() == 4 * kTop - 3);
  CHECK(z.b.free_blocks(Buddy::kMaxOrder) == 3);  // blocks 1..3 whole; block 0 split around 0..2
  CHECK(z.b.free_blocks(0) == 1);                 // frame 3
  CHECK(z.b.consistent());
}

TEST_CASE("buddy: a split and its merge at every order") {
  for (unsigned order = 0; order <= Buddy::kMaxOrder; order++) {
    Zone z(kTop);
    uint64_t f;
    REQUIRE(z.b.get(order, f));
    CHECK(f % (uint64_t{1} << order) == 0);
    CHECK(z.b.free_frames() == kTop - (uint64_t{1} << order));
    for (unsigned o = order; o < Buddy::kMaxOrder; o++) CHECK(z.b.free_blocks(o) == 1);  // one upper half per level
    CHECK(z.b.consistent());
    REQUIRE(z.b.put(f, order) == Buddy::Error::kOk);
    CHECK(z.b.free_blocks(Buddy::kMaxOrder) == 1);  // merged back into one block
    CHECK(z.b.free_frames() == kTop);
    CHECK(z.b.consistent());
  }
}

TEST_CASE("buddy: exhaustion at order 0 returns every frame once, then all merge back") {
  Zone z(2 * kTop + 5);  // a partial tail: 5 frames beyond two whole top blocks
  std::set<uint64_t> got;
  uint64_t f;
  while (z.b.get(0, f)) REQUIRE(got.insert(f).second);
  CHECK(got.size() == 2 * kTop + 5);
  CHECK(z.b.free_frames() == 0);
  CHECK_FALSE(z.b.get(0, f));
  for (uint64_t x : got) REQUIRE(z.b.put(x, 0) == Buddy::Error::kOk);
  CHECK(z.b.free_frames() == 2 * kTop + 5);
  CHECK(z.b.free_blocks(Buddy::kMaxOrder) == 2);
  CHECK(z.b.consistent());
}

TEST_CASE("buddy: a large order fails when memory is free but fragmented") {
  Zone z(kTop);
  std::vector<uint64_t> frames;
  uint64_t f;
  while (z.b.get(0, f)) frames.push_back(f);
  for (uint64_t x : frames)
    if (x % 2 == 0) REQUIRE(z.b.put(x, 0) == Buddy::Error::kOk);  // every other frame free: no pair
  CHECK(z.b.free_frames() == kTop / 2);
  CHECK_FALSE(z.b.get(1, f));
  CHECK(z.b.get(0, f));
  CHECK(z.b.consistent());
}

TEST_CASE("buddy: double frees, wrong orders and bad frames are refused without change") {
  Zone z(kTop);
  uint64_t a = 0, b = 0;
  REQUIRE(z.b.get(3, a));
  REQUIRE(z.b.get(0, b));
  const uint64_t free_before = z.b.free_frames();
  CHECK(z.b.put(a, 2) == Buddy::Error::kDoubleFree);      // allocated at order 3, not 2
  CHECK(z.b.put(a + 1, 0) == Buddy::Error::kDoubleFree);  // inside a block
  CHECK(z.b.put(a + 1, 3) == Buddy::Error::kInvalid);     // misaligned
  CHECK(z.b.put(kTop, 0) == Buddy::Error::kInvalid);      // beyond the zone
  CHECK(z.b.put(0, Buddy::kMaxOrder + 1) == Buddy::Error::kInvalid);
  CHECK(z.b.free_frames() == free_before);
  REQUIRE(z.b.put(b, 0) == Buddy::Error::kOk);
  CHECK(z.b.put(b, 0) == Buddy::Error::kDoubleFree);  // the second free of the same frame
  REQUIRE(z.b.put(a, 3) == Buddy::Error::kOk);
  CHECK(z.b.put(a, 3) == Buddy::Error::kDoubleFree);
  CHECK(z.b.free_frames() == kTop);
  CHECK(z.b.consistent());
}

TEST_CASE("buddy: a freed block is reused first, one freed to the tail last") {
  Zone z(4 * kTop);
  uint64_t x[4];
  for (auto& f : x) REQUIRE(z.b.get(9, f));
  REQUIRE(z.b.put(x[0], 9, true) == Buddy::Error::kOk);  // to the tail, as a reported block
  REQUIRE(z.b.put(x[2], 9) == Buddy::Error::kOk);  // x[0] and x[2]: their buddies x[1], x[3] stay allocated
  CHECK(z.b.free_blocks(9) == 2);
  uint64_t f;
  REQUIRE(z.b.get(9, f));
  CHECK(f == x[2]);  // the hot (head) block, not the reported (tail) one
  REQUIRE(z.b.get(9, f));
  CHECK(f == x[0]);
  CHECK(z.b.consistent());
}
