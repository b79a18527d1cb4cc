// Host operations on a zone that lives in guest RAM: install refusals, shrink really discards and
// never touches what the guest holds, grow hands frames back with `reclaimed`, soft reclaim with
// aging, frames outside RAM are never touched, corrupt counters are clamped and counted.
#include <catch2/catch.hpp>

#include <cstring>
#include <thread>
#include <vector>

#include "guest-alloc/llfree_host.hpp"
#include "guest_zone.hpp"
#include "reclaim/auto_reclaim.hpp"

using namespace hvmm;
using namespace hvmm::reclaim;
using namespace hvmm::reclaim::test;
using alloc::Child;

TEST_CASE("install refuses bad frames, counts them and changes nothing") {
  GuestZone g({{0, 64 * MiB}});
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  REQUIRE(zs.shrink(zs.stats().usable_bytes - 2 * MiB).reached);  // frame 1: the first free one
  const uint64_t hard = 1;
  REQUIRE(zs.state(hard) == HugeState::kHard);

  std::vector<uint16_t> before(32);
  for (uint64_t i = 0; i < 32; ++i) before[i] = g.child(i);
  const ZoneStats s0 = zs.stats();

  CHECK(zs.install(32) == InstallResult::kRefused);            // one past the end
  CHECK(zs.install(~uint64_t{0}) == InstallResult::kRefused);  // absurd
  CHECK(zs.install(0) == InstallResult::kRefused);             // EXCLUDED (holds the arrays)
  CHECK(zs.install(hard) == InstallResult::kRefused);          // HARD: the host's, not the guest's
  CHECK(zs.install(5) == InstallResult::kRedundant);           // INSTALLED, never reclaimed

  const ZoneStats s1 = zs.stats();
  CHECK(s1.anomalies == s0.anomalies + 4);
  CHECK(s1.redundant_installs == s0.redundant_installs + 1);
  CHECK(s1.installs == s0.installs);
  CHECK(s1.hard == s0.hard);
  CHECK(s1.installed == s0.installed);
  for (uint64_t i = 0; i < 32; ++i) CHECK(g.child(i) == before[i]);
  CHECK(zs.state(hard) == HugeState::kHard);
  CHECK(zs.audit() == 0);
}

TEST_CASE("shrink discards freed memory and leaves what the guest holds untouched") {
  GuestZone g({{0, 64 * MiB}}, 1);
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  // The guest allocates small pages, then every remaining huge frame, writes into all of it and
  // frees every other huge frame: those are then exactly the free huge frames of the zone.
  struct Block {
    uint64_t frame;
    unsigned order;
  };
  std::vector<Block> held, freed;
  for (int i = 0; i < 300; ++i) {
    const alloc::Result r = g.a.get(0, 0);
    REQUIRE(r.ok());
    held.push_back({r.frame, 0});
  }
  for (int i = 0;; ++i) {
    const alloc::Result r = g.a.get(0, 9);
    if (!r.ok()) break;
    REQUIRE_FALSE(r.reclaimed);
    (i % 2 ? held : freed).push_back({r.frame, 9});
  }
  REQUIRE(freed.size() == 15);
  for (const Block& b : held) write_pattern(g.mem, b.frame, b.order, 7);
  for (const Block& b : freed) {
    std::memset(g.mem.hva(b.frame * 4096, 2 * MiB), 0x5a, 2 * MiB);
    REQUIRE(g.a.put(0, b.frame, b.order) == alloc::Error::kOk);
  }
  g.a.drain(0);  // a real guest keeps trees reserved; here every free frame must be reclaimable
  for (const Block& b : freed) CHECK(resident_pages(g.mem, b.frame * 4096, 2 * MiB) == 512);

  const ZoneStats s0 = zs.stats();
  const uint64_t freed_bytes = freed.size() * 2 * MiB;
  const ResizeResult res = zs.shrink(s0.usable_bytes - freed_bytes);
  CHECK(res.reached);
  CHECK(res.note.empty());
  CHECK(res.moved_bytes == freed_bytes);
  CHECK(res.usable_bytes == s0.usable_bytes - freed_bytes);

  for (const Block& b : freed) {
    const uint64_t idx = b.frame / 512;
    CHECK(zs.state(idx) == HugeState::kHard);
    CHECK(g.child(idx) == Child::make(0, true, true));
    CHECK(resident_pages(g.mem, b.frame * 4096, 2 * MiB) == 0);
    CHECK(all_zero(g.mem, b.frame * 4096, 2 * MiB));
  }
  for (const Block& b : held) CHECK(verify_pattern(g.mem, b.frame, b.order, 7));
  const ZoneStats s1 = zs.stats();
  CHECK(s1.hard == freed.size());
  CHECK(s1.hard_reclaims == freed.size());
  CHECK(s1.guest_free_bytes == s0.guest_free_bytes - freed_bytes);
  CHECK(s1.anomalies == 0);
  CHECK(zs.audit() == 0);
  CHECK(g.a.check().ok());

  // Nothing free is left: a further shrink says so instead of pretending.
  const ResizeResult more = zs.shrink(0);
  CHECK_FALSE(more.reached);
  CHECK_FALSE(more.note.empty());
  CHECK(more.moved_bytes == 0);
  for (const Block& b : held) CHECK(verify_pattern(g.mem, b.frame, b.order, 7));
}

TEST_CASE("shrink and grow release the zone mutex after every batch: an install never waits for a whole resize") {
  // 4 GiB of untouched guest RAM: 2048 frames, all free. The count of mutex holds is the structural
  // form of the latency bound (a wall-clock bound would measure the scheduler of a loaded host).
  GuestZone g({{0, 4096 * MiB}});
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  const uint64_t frames = zs.zone().huge_frames;
  const ResizeResult s = zs.shrink(4 * MiB);
  REQUIRE(s.moved_bytes >= (frames - 2) * 2 * MiB);
  CHECK(s.mutex_holds >= frames / ZoneState::kShrinkBatch);
  const ResizeResult gr = zs.grow(zs.stats().ram_bytes);
  REQUIRE(gr.moved_bytes == s.moved_bytes);
  CHECK(gr.mutex_holds >= frames / ZoneState::kGrowBatch);
  CHECK(zs.audit() == 0);
}

TEST_CASE("grow returns frames; the guest gets them with `reclaimed` and install clears it") {
  GuestZone g({{0, 64 * MiB}}, 1);
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  const uint64_t ram = g.mem.ram_bytes();
  const ResizeResult s = zs.resize(0);
  CHECK_FALSE(s.reached);  // frame 0 (the shared arrays) is never reclaimed
  CHECK(s.usable_bytes == 2 * MiB);
  CHECK(zs.stats().hard == 31);
  CHECK(g.a.get(0, 0).error == alloc::Error::kNoMemory);  // the guest sees nothing free

  const ResizeResult gr = zs.resize(ram / 2);
  CHECK(gr.reached);
  CHECK(gr.usable_bytes == ram / 2);
  CHECK(gr.moved_bytes == ram / 2 - 2 * MiB);
  CHECK(zs.stats().soft == 15);
  CHECK(zs.stats().returns == 15);

  std::vector<uint64_t> got;
  for (;;) {
    const alloc::Result r = g.a.get(0, 9);
    if (!r.ok()) break;
    CHECK(r.reclaimed);
    const uint64_t idx = r.frame / 512;
    CHECK(zs.state(idx) == HugeState::kSoft);
    CHECK(zs.install(idx) == InstallResult::kInstalled);
    CHECK(zs.state(idx) == HugeState::kInstalled);
    CHECK(g.child(idx) == Child::make(0, true, false));
    CHECK(resident_pages(g.mem, r.frame * 4096, 2 * MiB) == 512);  // populated
    write_pattern(g.mem, r.frame, 9, 3);
    got.push_back(r.frame);
  }
  CHECK(got.size() == 15);
  for (uint64_t f : got) CHECK(verify_pattern(g.mem, f, 9, 3));

  const ResizeResult full = zs.resize(ram + 64 * MiB);  // more than the VM has
  CHECK_FALSE(full.reached);
  CHECK(full.usable_bytes == ram);
  CHECK(zs.stats().hard == 0);
  CHECK(zs.stats().anomalies == 0);
  CHECK(zs.audit() == 0);
  CHECK(g.a.check().ok());
}

TEST_CASE("soft reclaim with aging: a freed frame is reclaimed on the Nth scan, not the first") {
  GuestZone g({{0, 64 * MiB}}, 1);
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  // Keep all but one huge frame busy so the test controls which frame is idle.
  std::vector<uint64_t> busy;
  for (;;) {
    const alloc::Result r = g.a.get(0, 9);
    if (!r.ok()) break;
    busy.push_back(r.frame);
  }
  REQUIRE(busy.size() == 31);
  g.a.drain(0);
  AutoReclaim ar(zs, {std::chrono::milliseconds(1000), 3, 4});
  CHECK(ar.scan_once() == 0);

  const uint64_t victim = busy.back();  // freed once, then left alone
  const uint64_t reused = busy[busy.size() - 2];  // freed, then taken again before the 3rd scan
  busy.resize(busy.size() - 2);
  write_pattern(g.mem, victim, 9, 9);
  REQUIRE(g.a.put(0, victim, 9) == alloc::Error::kOk);
  REQUIRE(g.a.put(0, reused, 9) == alloc::Error::kOk);
  CHECK(ar.scan_once() == 0);  // seen free once
  CHECK(ar.scan_once() == 0);  // twice
  const alloc::Result again = g.a.get(0, 9);
  REQUIRE(again.ok());
  REQUIRE_FALSE(again.reclaimed);
  const uint64_t reused_now = again.frame;  // whichever of the two the guest picked
  g.a.drain(0);  // a reserved tree is never reclaimed from; keep the idle frame's tree unreserved
  const uint64_t idle = reused_now == victim ? reused : victim;
  CHECK(ar.scan_once() == 1);  // the third consecutive free scan of `idle`
  CHECK(zs.state(idle / 512) == HugeState::kSoft);
  CHECK(zs.state(reused_now / 512) == HugeState::kInstalled);
  CHECK(Child::reclaimed_of(g.child(idle / 512)));
  CHECK(resident_pages(g.mem, idle * 4096, 2 * MiB) == 0);
  CHECK(all_zero(g.mem, idle * 4096, 2 * MiB));
  CHECK(ar.scan_once() == 0);  // already reclaimed
  CHECK(ar.stats().scans == 5);
  CHECK(ar.stats().reclaimed_frames == 1);

  // The guest reuses it: allocation reports reclaimed, install populates and clears.
  const alloc::Result r = g.a.get(0, 4);
  REQUIRE(r.ok());
  CHECK(r.frame / 512 == idle / 512);
  CHECK(r.reclaimed);
  CHECK(zs.install(r.frame / 512) == InstallResult::kInstalled);
  CHECK_FALSE(Child::reclaimed_of(g.child(idle / 512)));
  CHECK(zs.stats().soft_reclaims == 1);
  CHECK(zs.stats().installs == 1);
  // Only `victim` was written into: memory taken back; the other frame the host never had.
  CHECK(zs.stats().reinstalls == (idle == victim ? 1u : 0u));
  CHECK(zs.stats().first_touch_installs == (idle == victim ? 0u : 1u));
  CHECK(zs.stats().anomalies == 0);
  CHECK(zs.audit() == 0);
}

TEST_CASE("never-touched memory is counted apart from memory taken back, and so are its installs") {
  GuestZone g({{0, 64 * MiB}}, 1);
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  // Frames 20..23: the guest wrote into 20 and 21 (resident); 22 and 23 it never touched.
  for (uint64_t i = 20; i < 22; ++i) std::memset(g.mem.hva(i * 2 * MiB, 2 * MiB), 0x5a, 2 * MiB);
  REQUIRE(resident_pages(g.mem, 22 * 2 * MiB, 4 * MiB) == 0);
  REQUIRE(zs.soft_reclaim(std::vector<uint64_t>{20, 21, 22, 23}) == 4);
  ZoneStats s = zs.stats();
  CHECK(s.soft_bytes == 8 * MiB);
  CHECK(s.soft_untouched_bytes == 4 * MiB);
  CHECK(s.reclaimed_bytes == 4 * MiB);
  CHECK(s.untouched_bytes == 4 * MiB);
  CHECK(resident_pages(g.mem, 20 * 2 * MiB, 4 * MiB) == 0);  // the touched ones were discarded

  // Shrink by two frames takes SOFT frames first (20, 21: taken back); the next two frames it takes
  // are 22 and 23 (never touched): the split follows them into HARD.
  REQUIRE(zs.shrink(zs.stats().usable_bytes - 4 * 2 * MiB).reached);
  s = zs.stats();
  CHECK(s.hard_bytes == 8 * MiB);
  CHECK(s.hard_untouched_bytes == 4 * MiB);
  CHECK(s.soft_untouched_bytes == 0);
  CHECK(s.reclaimed_bytes == 4 * MiB);

  // Grow hands them back as SOFT, still split; installing a never-touched one is a first-touch install.
  REQUIRE(zs.grow(zs.stats().ram_bytes).reached);
  s = zs.stats();
  CHECK(s.soft_untouched_bytes == 4 * MiB);
  CHECK(s.hard_bytes == 0);
  // Let the guest allocate from frame 22 as a guest would (the allocation reports `reclaimed`).
  for (;;) {
    const alloc::Result r = g.a.get(0, 9);
    REQUIRE(r.ok());
    if (r.frame / 512 != 22 && r.frame / 512 != 20) continue;
    REQUIRE(r.reclaimed);
    CHECK(zs.install(r.frame / 512) == InstallResult::kInstalled);
    break;
  }
  s = zs.stats();
  CHECK(s.installs == 1);
  CHECK(s.first_touch_installs + s.reinstalls == 1);
  CHECK(s.untouched_bytes == (s.first_touch_installs ? 2 : 4) * MiB);
  CHECK(zs.audit() == 0);
}

TEST_CASE("soft reclaim skips reserved trees, used, HARD and EXCLUDED frames") {
  GuestZone g({{0, 64 * MiB}}, 1);
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  const alloc::Result r = g.a.get(0, 0);  // reserves the tree of r.frame
  REQUIRE(r.ok());
  const uint64_t tree = r.frame / alloc::kFramesPerTree;
  std::vector<uint64_t> all;
  for (uint64_t i = 0; i < 40; ++i) all.push_back(i);  // includes out-of-range indices
  const uint64_t done = zs.soft_reclaim(all);
  CHECK(done == 32 - 8);  // every frame outside the reserved tree (frame 0 is in it)
  for (uint64_t i = 0; i < 32; ++i) {
    INFO(i);
    if (i / 8 == tree) CHECK(zs.state(i) != HugeState::kSoft);
    else CHECK(zs.state(i) == HugeState::kSoft);
  }
  CHECK(zs.soft_reclaim(all) == 0);
  CHECK(zs.audit() == 0);
  CHECK(zs.stats().anomalies == 0);
}

TEST_CASE("shrink takes already-discarded SOFT frames first") {
  GuestZone g({{0, 64 * MiB}}, 1);
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  REQUIRE(zs.soft_reclaim(std::vector<uint64_t>{20, 21, 22, 23}) == 4);
  const ResizeResult r = zs.shrink(zs.stats().usable_bytes - 4 * 2 * MiB);
  CHECK(r.reached);
  for (uint64_t i = 20; i < 24; ++i) CHECK(zs.state(i) == HugeState::kHard);
  CHECK(zs.stats().hard == 4);
  CHECK(zs.stats().soft == 0);
  CHECK(zs.audit() == 0);
}

TEST_CASE("frames outside RAM are never reclaimed, whatever the guest claims") {
  GuestZone g({{0, 32 * MiB}, {64 * MiB, 32 * MiB}}, 1);
  REQUIRE(g.ok);
  // A hostile guest marks the hole (huge frames 16..31) and frame 0 free in the shared words.
  const alloc::SharedView v = g.view();
  for (uint64_t i = 0; i < 32; ++i) {
    if (i != 0 && i < 16) continue;
    v.children[i].atomic().store(Child::make(512, false, false));
    v.bitfield[i] = {};
  }
  for (uint64_t t = 0; t < v.trees_count(); ++t) v.trees[t].atomic().store(static_cast<uint16_t>(v.tree_capacity(t)));
  ZoneState zs(g.mem, g.host_zone());
  const ResizeResult res = zs.shrink(0);
  CHECK_FALSE(res.reached);
  CHECK(zs.stats().hard == 15 + 16);  // RAM frames 1..15 and 32..47
  CHECK(zs.state(0) == HugeState::kExcluded);
  for (uint64_t i = 16; i < 32; ++i) CHECK(zs.state(i) == HugeState::kExcluded);
  CHECK(zs.soft_reclaim(std::vector<uint64_t>{0, 16, 20, 31}) == 0);
  CHECK(zs.install(20) == InstallResult::kRefused);
  CHECK(zs.stats().discard_failures == 0);
  CHECK(zs.stats().usable_bytes == 2 * MiB);
}

TEST_CASE("corrupt shared counters are clamped and counted, not trusted") {
  GuestZone g({{0, 64 * MiB}}, 1);
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  const alloc::SharedView v = g.view();
  v.trees[1].atomic().store(alloc::Tree::kFreeMask);  // 8191 free frames in a 4096-frame tree
  const ZoneStats s = zs.stats();
  CHECK(s.anomalies >= 1);
  CHECK(s.guest_free_bytes <= g.mem.ram_bytes());

  // The guest frees the host's hard-reclaimed frame itself: grow notices, counts, recovers.
  g.a.drain(0);
  v.trees[1].atomic().store(4096);
  REQUIRE(zs.shrink(zs.stats().usable_bytes - 2 * MiB).reached);
  uint64_t hard = 0;
  for (uint64_t i = 0; i < 32; ++i)
    if (zs.state(i) == HugeState::kHard) hard = i;
  REQUIRE(g.a.put(0, hard * 512, 9) == alloc::Error::kOk);  // the guest cannot tell it from its own
  const uint64_t before = zs.stats().anomalies;
  const ResizeResult gr = zs.grow(g.mem.ram_bytes());
  CHECK(gr.reached);
  CHECK(zs.stats().anomalies == before + 1);
  CHECK(zs.state(hard) == HugeState::kSoft);
  CHECK(zs.audit() == 0);
}

TEST_CASE("the auto-reclaim thread stops promptly and reclaims on its own") {
  GuestZone g({{0, 64 * MiB}}, 1);
  REQUIRE(g.ok);
  ZoneState zs(g.mem, g.host_zone());
  {
    AutoReclaim idle(zs, {std::chrono::hours(1), 2, 8});
    idle.start();
    idle.stop();  // would hang the test (CTest timeout) if stop waited for the period
    CHECK(idle.stats().scans == 0);
  }
  AutoReclaim ar(zs, {std::chrono::milliseconds(1), 2, 8});
  ar.start();
  for (int i = 0; i < 10000 && zs.stats().soft < 31; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ar.stop();
  CHECK(zs.stats().soft == 31);
  CHECK(ar.stats().reclaimed_frames == 31);
  CHECK(ar.stats().scans >= 2);
  CHECK(zs.audit() == 0);
}
