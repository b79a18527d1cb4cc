// Single-threaded exactness of the guest side of LLFree: every order, alignment, exhaustion, refill,
// fragmentation, reserve_range, bad arguments and double frees, recount at quiescence.
#include <catch2/catch.hpp>

#include <vector>

#include "guest-alloc/llfree.hpp"
#include "test_zone.hpp"

using namespace hvmm::alloc;
using hvmm::alloc::test::TestZone;

namespace {

// Allocates order blocks until kNoMemory; checks alignment, range and that no frame is handed out
// twice (`used` accumulates across calls).
std::vector<uint64_t> drain_order(LLFree& a, unsigned cpu, unsigned order, std::vector<bool>& used) {
  std::vector<uint64_t> got;
  const uint64_t n = uint64_t{1} << order;
  for (;;) {
    const Result r = a.get(cpu, order);
    if (!r.ok()) {
      REQUIRE(r.error == Error::kNoMemory);
      return got;
    }
    REQUIRE(r.frame % n == 0);
    REQUIRE(r.frame + n <= a.frames());
    for (uint64_t f = r.frame; f < r.frame + n; ++f) {
      REQUIRE_FALSE(used[f]);
      used[f] = true;
    }
    got.push_back(r.frame);
  }
}

}  // namespace

TEST_CASE("sizes: about 33 KiB of state per GiB, 64-byte aligned arrays") {
  const uint64_t frames = (16ull << 30) >> 12;  // 16 GiB
  const Sizes s = LLFree::sizes(frames, 4);
  CHECK(s.trees.bytes == 1024 * 2);
  CHECK(s.children.bytes == 8192 * 2);
  CHECK(s.bitfield.bytes == 8192 * 64);
  CHECK(s.locals.bytes == 4 * 64);
  CHECK(s.trees.align == 64);
  CHECK(s.bitfield.align == 64);
  CHECK((s.trees.bytes + s.children.bytes + s.bitfield.bytes) / 16 <= 36 * 1024);
}

TEST_CASE("init rejects bad arguments") {
  alignas(64) static uint8_t mem[4][64 * 64];
  LLFree a;
  CHECK_FALSE(a.init(0, 512, mem[0], mem[1], mem[2], mem[3]));
  CHECK_FALSE(a.init(1, 0, mem[0], mem[1], mem[2], mem[3]));
  CHECK_FALSE(a.init(1, 512, mem[0] + 2, mem[1], mem[2], mem[3]));
  CHECK_FALSE(a.init(1, 512, nullptr, mem[1], mem[2], mem[3]));
  CHECK(a.init(1, 512, mem[0], mem[1], mem[2], mem[3]));
}

TEST_CASE("init of 16 GiB leaves everything free and consistent") {
  TestZone z((16ull << 30) >> 12, 4);
  REQUIRE(z.ok);
  CHECK(z.a.free_frames() == z.a.frames());
  CHECK(z.a.free_huge() == 8192);
  CHECK(z.a.check().ok());
}

TEST_CASE("every order: aligned, exhaustive, refillable, recount matches") {
  const uint64_t frames = 64 * 512;  // 64 MiB: 4 trees
  for (unsigned order = 0; order <= kMaxOrder; ++order) {
    DYNAMIC_SECTION("order " << order) {
      TestZone z(frames, 2);
      REQUIRE(z.ok);
      std::vector<bool> used(frames);
      auto got = drain_order(z.a, order % 2, order, used);
      CHECK(got.size() == frames >> order);  // every frame usable at every order
      CHECK(z.a.free_frames() == 0);
      CHECK(z.a.check().ok());
      for (uint64_t f : got) REQUIRE(z.a.put(order % 2, f, order) == Error::kOk);
      CHECK(z.a.free_frames() == frames);
      CHECK(z.a.check().ok());
      std::vector<bool> used2(frames);
      CHECK(drain_order(z.a, 0, order, used2).size() == frames >> order);
      CHECK(z.a.check().ok());
    }
  }
}

TEST_CASE("a partial last child serves small orders but never huge ones") {
  const uint64_t frames = 5 * 512 + 100;
  TestZone z(frames, 1);
  REQUIRE(z.ok);
  CHECK(z.a.free_frames() == frames);
  std::vector<bool> used(frames);
  CHECK(drain_order(z.a, 0, 0, used).size() == frames);
  CHECK(z.a.check().ok());

  TestZone h(frames, 1);
  std::vector<bool> used9(frames), used10(frames);
  CHECK(drain_order(h.a, 0, 10, used10).size() == 2);
  CHECK(drain_order(h.a, 0, 9, used9).size() == 1);
  CHECK(h.a.free_frames() == 100);
  CHECK(h.a.check().ok());
}

TEST_CASE("mixed orders never overlap and the counters stay exact") {
  const uint64_t frames = 32 * 512;
  TestZone z(frames, 2);
  std::vector<bool> used(frames);
  std::vector<std::pair<uint64_t, unsigned>> held;
  uint64_t total = 0;
  for (unsigned round = 0; round < 3; ++round)
    for (unsigned order : {0u, 3u, 9u, 1u, 10u, 6u, 7u, 8u, 2u}) {
      const Result r = z.a.get(round % 2, order);
      REQUIRE(r.ok());
      for (uint64_t f = r.frame; f < r.frame + (1u << order); ++f) {
        REQUIRE_FALSE(used[f]);
        used[f] = true;
      }
      held.emplace_back(r.frame, order);
      total += 1u << order;
    }
  CHECK(z.a.free_frames() == frames - total);
  CHECK(z.a.check().ok());
  for (auto [f, o] : held) REQUIRE(z.a.put(0, f, o) == Error::kOk);
  CHECK(z.a.free_frames() == frames);
  CHECK(z.a.check().ok());
}

TEST_CASE("fragmentation: the counter says yes, the bits say no") {
  const uint64_t frames = 2 * 512;
  TestZone z(frames, 1);
  std::vector<bool> used(frames);
  auto got = drain_order(z.a, 0, 0, used);
  REQUIRE(got.size() == frames);
  for (uint64_t f = 0; f < frames; f += 2) REQUIRE(z.a.put(0, f, 0) == Error::kOk);
  CHECK(z.a.free_frames() == frames / 2);
  CHECK(z.a.get(0, 1).error == Error::kNoMemory);  // 512 free frames, no free aligned pair
  CHECK(z.a.get(0, 9).error == Error::kNoMemory);
  CHECK(z.a.free_frames() == frames / 2);          // failed attempts gave their counts back
  CHECK(z.a.check().ok());
  REQUIRE(z.a.put(0, 1, 0) == Error::kOk);         // frames 0 and 1 free: one pair
  const Result r = z.a.get(0, 1);
  REQUIRE(r.ok());
  CHECK(r.frame == 0);
  CHECK(z.a.check().ok());
}

TEST_CASE("reserve_range marks exactly the given frames") {
  const uint64_t frames = 64 * 512;
  TestZone z(frames, 2);
  z.a.reserve_range(100, 1000);
  z.a.reserve_range(3000, 512 * 3 + 7);
  z.a.reserve_range(150, 10);              // overlap: no double counting
  z.a.reserve_range(frames - 5, 100);      // clamped at the end of the zone
  const uint64_t reserved = 1000 + 512 * 3 + 7 + 5;
  CHECK(z.a.free_frames() == frames - reserved);
  CHECK(z.a.check().ok());
  std::vector<bool> used(frames);
  auto got = drain_order(z.a, 0, 0, used);
  CHECK(got.size() == frames - reserved);
  for (uint64_t f = 100; f < 1100; ++f) REQUIRE_FALSE(used[f]);
  for (uint64_t f = 3000; f < 3000 + 512 * 3 + 7; ++f) REQUIRE_FALSE(used[f]);
  // Reserved frames can be handed back later (e.g. freeing init memory).
  CHECK(z.a.put(0, 100, 2) == Error::kOk);
  CHECK(z.a.check().ok());
}

TEST_CASE("huge orders skip children touched by reserve_range") {
  const uint64_t frames = 16 * 512;
  TestZone z(frames, 1);
  z.a.reserve_range(512 * 3 + 1, 1);
  std::vector<bool> used(frames);
  CHECK(drain_order(z.a, 0, 9, used).size() == 15);
  CHECK_FALSE(used[512 * 3]);
}

TEST_CASE("put detects double frees and bad arguments without changing state") {
  const uint64_t frames = 16 * 512;
  TestZone z(frames, 2);
  const Result a = z.a.get(0, 0), b = z.a.get(0, 3), h = z.a.get(1, 9), w = z.a.get(1, 10);
  REQUIRE((a.ok() && b.ok() && h.ok() && w.ok()));
  const uint64_t free_before = z.a.free_frames();

  CHECK(z.a.put(0, b.frame + 1, 3) == Error::kInvalid);      // misaligned
  CHECK(z.a.put(0, frames, 0) == Error::kInvalid);           // outside the zone
  CHECK(z.a.put(0, frames - 512, 10) == Error::kInvalid);    // runs past the end
  CHECK(z.a.put(0, a.frame, 11) == Error::kInvalid);         // no such order
  CHECK(z.a.put(2, a.frame, 0) == Error::kInvalid);          // no such cpu
  CHECK(z.a.get(2, 0).error == Error::kInvalid);
  CHECK(z.a.get(0, 11).error == Error::kInvalid);

  CHECK(z.a.put(0, h.frame, 0) == Error::kDoubleFree);       // order 0 inside a huge page
  CHECK(z.a.put(0, b.frame & ~uint64_t{15}, 4) == Error::kDoubleFree);  // wider than allocated
  CHECK(z.a.put(0, a.frame & ~uint64_t{511}, 9) == Error::kDoubleFree);  // not huge
  CHECK(z.a.free_frames() == free_before);
  CHECK(z.a.check().ok());

  CHECK(z.a.put(0, a.frame, 0) == Error::kOk);
  CHECK(z.a.put(0, a.frame, 0) == Error::kDoubleFree);
  CHECK(z.a.put(0, b.frame, 3) == Error::kOk);
  CHECK(z.a.put(0, b.frame, 3) == Error::kDoubleFree);
  CHECK(z.a.put(1, h.frame, 9) == Error::kOk);
  CHECK(z.a.put(1, h.frame, 9) == Error::kDoubleFree);
  CHECK(z.a.put(1, w.frame, 10) == Error::kOk);
  CHECK(z.a.put(1, w.frame, 10) == Error::kDoubleFree);
  CHECK(z.a.free_frames() == frames);
  CHECK(z.a.check().ok());
}

TEST_CASE("order-10 put with only one half huge fails and keeps that half") {
  TestZone z(2 * 512, 1);
  const Result h1 = z.a.get(0, 9), h2 = z.a.get(0, 9);
  REQUIRE((h1.ok() && h2.ok()));
  REQUIRE(z.a.put(0, h2.frame, 9) == Error::kOk);  // now only h1's child is huge
  CHECK(z.a.put(0, 0, 10) == Error::kDoubleFree);
  CHECK(z.a.free_frames() == 512);
  CHECK(z.a.check().ok());
  CHECK(z.a.put(0, h1.frame, 9) == Error::kOk);     // h1 is still a valid huge allocation
  CHECK(z.a.check().ok());
}

TEST_CASE("drain gives the reservation back to the shared tree counters") {
  TestZone z(32 * 512, 2);
  REQUIRE(z.a.get(0, 0).ok());
  REQUIRE(z.a.get(1, 0).ok());
  CHECK(z.a.free_frames() == 32 * 512 - 2);
  z.a.drain(0);
  z.a.drain(1);
  const CheckResult c = check_shared(z.a.shared());  // the host's view: nothing reserved now
  CHECK(c.ok());
  CHECK(c.skipped_trees == 0);
  CHECK(c.free_frames == 32 * 512 - 2);
}

TEST_CASE("check detects corrupted counters and bits") {
  TestZone z(16 * 512, 1);
  REQUIRE(z.a.get(0, 0).ok());
  REQUIRE(z.a.check().ok());
  auto* bf = static_cast<Bitfield*>(z.bitfield.get());
  bf[5].words[3] ^= 1;
  CHECK(z.a.check().bad_children == 1);
  bf[5].words[3] ^= 1;
  auto* trees = static_cast<Tree*>(z.trees.get());
  trees[1].word = Tree::with_free(trees[1].word, 17);
  CHECK(z.a.check().bad_trees == 1);
}
