// virtio-balloon over the mmio transport: features, queue numbering, inflate/deflate with
// coalescing, invalid PFNs, statistics, free page reporting, config space, and bad chains; the
// 4 KiB balloon's map of ballooned pages and its whole-frame discards; the 2 MiB balloon
// (VIRTIO_BALLOON_F_HVMM_HUGE_PAGES, --reclaim balloon-huge).
#include <catch2/catch.hpp>

#include "tests/virtio/fake_driver.hpp"

using namespace hvmm;
using namespace hvmm::virtio;
using namespace hvmm::virtio::test;
using namespace hvmm::virtio::balloon;
using namespace hvmm::virtio::mmio_reg;
using Call = RecordingBackend::Call;

namespace {
constexpr uint64_t kAllFeatures = kFeatureVersion1 | kFeatureStatsVq | kFeatureDeflateOnOom | kFeatureReporting;
constexpr uint64_t kPfnBuf = 0x40000;
constexpr uint64_t kStatsBuf = 0x50000;

struct Rig {
  GuestMemory mem;
  RecordingBackend backend;
  Balloon dev;
  FakeIrq irq;
  MmioTransport t{mem, dev, irq};
  MmioDriver drv{t};
  std::vector<FakeQueue> qs;
  uint16_t stats_slot = 0;
  explicit Rig(std::span<const GuestMemory::RegionSpec> regions = kTestRegions, Balloon::Options opt = {})
      : mem(regions), dev(mem, backend, opt) {}

  void bring_up(uint64_t features = kAllFeatures) {
    REQUIRE(drv.negotiate(features));
    unsigned n = dev.num_queues();
    for (unsigned i = 0; i < n; ++i) {
      qs.emplace_back(mem, 0x1000 + i * 0x4000, 64);
      REQUIRE(drv.setup_queue(i, qs.back()));
    }
    drv.driver_ok();
  }
  // Sends one buffer of PFNs on queue `index` and notifies.
  void send_pfns(unsigned index, std::vector<uint32_t> pfns) {
    FakeQueue& q = qs[index];
    uint16_t slot = q.used_idx() % q.size();
    mem.write(kPfnBuf, pfns.data(), pfns.size() * 4);
    q.set_desc(slot, kPfnBuf, uint32_t(pfns.size() * 4));
    q.publish(slot);
    drv.notify(index);
  }
  void send_stats(uint64_t at, std::vector<std::pair<uint16_t, uint64_t>> entries) {
    std::vector<uint8_t> raw;
    for (auto [tag, val] : entries) {
      uint8_t e[kStatEntrySize];
      std::memcpy(e, &tag, 2);
      std::memcpy(e + 2, &val, 8);
      raw.insert(raw.end(), e, e + sizeof e);
    }
    mem.write(at, raw.data(), raw.size());
    unsigned idx = *dev.queue_index(Balloon::Role::stats);
    FakeQueue& q = qs[idx];
    stats_slot = uint16_t((stats_slot + 1) % q.size());
    q.set_desc(stats_slot, at, uint32_t(raw.size()));
    q.publish(stats_slot);
    drv.notify(idx);
  }
  uint32_t config32(uint32_t off) { return drv.read(kConfig + off); }
};
}  // namespace

TEST_CASE("balloon offers stats, deflate-on-OOM and reporting, never page poison") {
  Rig r;
  CHECK(r.drv.read(mmio_reg::kDeviceId) == balloon::kDeviceId);
  uint64_t f = r.drv.device_features();
  CHECK(f & kFeatureStatsVq);
  CHECK(f & kFeatureDeflateOnOom);
  CHECK(f & kFeatureReporting);
  CHECK_FALSE(f & kFeaturePagePoison);
  CHECK_FALSE(f & kFeatureFreePageHint);
  CHECK_FALSE(f & kFeatureMustTellHost);
  CHECK(r.dev.num_queues() == 4);
  CHECK_FALSE(r.drv.negotiate(kFeatureVersion1 | kFeaturePagePoison));
}

TEST_CASE("balloon queue numbering skips queues whose feature was not accepted") {
  Rig r;
  REQUIRE(r.drv.negotiate(kFeatureVersion1 | kFeatureReporting));
  CHECK(r.dev.num_queues() == 3);
  CHECK(r.dev.queue_index(Balloon::Role::reporting) == 2u);
  CHECK_FALSE(r.dev.queue_index(Balloon::Role::stats));
  r.drv.write(kQueueSel, 2);
  CHECK(r.drv.read(kQueueNumMax) >= kMinReportingQueue);
  r.drv.write(kQueueSel, 3);
  CHECK(r.drv.read(kQueueNumMax) == 0);
  REQUIRE(r.drv.negotiate(kAllFeatures));
  CHECK(r.dev.queue_index(Balloon::Role::reporting) == 3u);
}

TEST_CASE("balloon inflate coalesces PFNs into runs and skips invalid ones") {
  Rig r;
  r.bring_up();
  uint32_t hole_pfn = uint32_t(kHole >> 12), high = uint32_t(kHighStart >> 12);
  r.send_pfns(0, {12, 10, 11, 20, 5, 6, 11, hole_pfn, 0xffffffffu, high + 1, high});
  // Done synchronously: the used ring is updated when the notify returns.
  CHECK(r.qs[0].used_idx() == 1);
  CHECK(r.irq.raised == 1);
  std::vector<Call> want{{5 << 12, 2 << 12}, {10 << 12, 3 << 12}, {20 << 12, 1 << 12}, {kHighStart, 2 << 12}};
  CHECK(r.backend.inflated == want);
  auto s = r.dev.stats();
  CHECK(s.counters.inflated_pages == 8);
  CHECK(s.counters.invalid_pfns == 2);
  CHECK(s.counters.discard_calls == 4);
  CHECK(s.features == kAllFeatures);
}

TEST_CASE("balloon runs never cross a RAM region boundary") {
  GuestMemory::RegionSpec adjacent[] = {{0, 1 << 20}, {1 << 20, 1 << 20}};
  Rig r(adjacent);
  r.bring_up();
  r.send_pfns(0, {254, 255, 256, 257});
  std::vector<Call> want{{254 << 12, 2 << 12}, {256 << 12, 2 << 12}};
  CHECK(r.backend.inflated == want);
}

TEST_CASE("balloon deflate gives pages back and is counted") {
  Rig r;
  r.bring_up();
  r.send_pfns(0, {100, 101});
  r.send_pfns(1, {101, 100, 0x7fffffff});
  CHECK(r.qs[1].used_idx() == 1);
  std::vector<Call> want{{100 << 12, 2 << 12}};
  CHECK(r.backend.deflated == want);
  auto s = r.dev.stats();
  CHECK(s.counters.deflated_pages == 2);
  CHECK(s.counters.invalid_pfns == 1);
}

TEST_CASE("balloon: a PFN buffer with a trailing partial entry counts it as invalid") {
  Rig r;
  r.bring_up();
  uint32_t pfns[2] = {7, 8};
  r.mem.write(kPfnBuf, pfns, 8);
  r.qs[0].set_desc(0, kPfnBuf, 6);  // one and a half PFNs
  r.qs[0].publish(0);
  r.drv.notify(0);
  CHECK(r.backend.inflated == std::vector<Call>{{7 << 12, 1 << 12}});
  CHECK(r.dev.stats().counters.invalid_pfns == 1);
}

TEST_CASE("a backend that discards guest memory really gets it back from the host") {
  // What vmm/mechanisms/balloon.cpp's backend does with an inflate.
  struct DiscardBackend final : BalloonBackend {
    const GuestMemory& mem;
    explicit DiscardBackend(const GuestMemory& m) : mem(m) {}
    bool discard(uint64_t gpa, uint64_t len, Why) override { return mem.discard(gpa, len); }
  };
  GuestMemory mem(kTestRegions);
  DiscardBackend backend(mem);
  Balloon dev(mem, backend);
  FakeIrq irq;
  MmioTransport t(mem, dev, irq);
  MmioDriver drv(t);
  REQUIRE(drv.negotiate(kFeatureVersion1));
  FakeQueue q(mem, 0x1000, 64);
  REQUIRE(drv.setup_queue(0, q));
  drv.driver_ok();
  uint8_t v = 0x5a;
  mem.write(0x80000, &v, 1);
  uint32_t pfn = 0x80;
  mem.write(kPfnBuf, &pfn, 4);
  q.set_desc(0, kPfnBuf, 4);
  q.publish(0);
  drv.notify(0);
  CHECK(*mem.hva(0x80000, 1) == 0);
  CHECK(dev.stats().counters.discard_failures == 0);
}

TEST_CASE("balloon statistics: kept until the host asks, unknown tags ignored") {
  Rig r;
  r.bring_up();
  CHECK_FALSE(r.dev.request_stats());  // no buffer yet
  r.send_stats(kStatsBuf, {{kStatMemFree, 1000}, {kStatMemTotal, 4000}, {77, 5}});
  auto s = r.dev.stats();
  CHECK(s.guest.updates == 1);
  CHECK(s.guest.value[kStatMemFree] == 1000);
  CHECK(s.guest.value[kStatMemTotal] == 4000);
  CHECK(s.guest.valid_mask == ((1u << kStatMemFree) | (1u << kStatMemTotal)));
  CHECK(s.counters.unknown_stat_tags == 1);
  unsigned idx = *r.dev.queue_index(Balloon::Role::stats);
  CHECK(r.qs[idx].used_idx() == 0);  // held

  CHECK(r.dev.request_stats());
  CHECK(r.qs[idx].used_idx() == 1);
  CHECK_FALSE(r.dev.request_stats());
  r.send_stats(kStatsBuf + 0x100, {{kStatMemFree, 900}});
  s = r.dev.stats();
  CHECK(s.guest.updates == 2);
  CHECK(s.guest.value[kStatMemFree] == 900);
  CHECK(s.guest.valid_mask == (1u << kStatMemFree));

  // A second buffer while one is held: the older one goes back rather than leaking.
  r.send_stats(kStatsBuf + 0x200, {{kStatMemFree, 800}});
  CHECK(r.qs[idx].used_idx() == 2);
  CHECK(r.dev.stats().counters.extra_stats_buffers == 1);
}

TEST_CASE("balloon free page reporting discards coalesced, page-aligned ranges") {
  Rig r;
  r.bring_up();
  unsigned idx = *r.dev.queue_index(Balloon::Role::reporting);
  FakeQueue& q = r.qs[idx];
  // Three writable buffers: two adjacent 64 KiB blocks (given out of order), one unaligned.
  q.set_desc(0, 0x90000, 0x10000, kDescFlagWrite | kDescFlagNext, 1);
  q.set_desc(1, 0x80000, 0x10000, kDescFlagWrite | kDescFlagNext, 2);
  q.set_desc(2, kHighStart + 0x800, 0x2000, kDescFlagWrite | kDescFlagNext, 3);
  q.set_desc(3, kHighStart + 0x8000, 100, kDescFlagWrite);  // no whole page
  q.publish(0);
  r.drv.notify(idx);
  CHECK(q.used_idx() == 1);
  std::vector<Call> want{{0x80000, 0x20000}, {kHighStart + 0x1000, 0x1000}};
  CHECK(r.backend.reported == want);
  auto s = r.dev.stats();
  CHECK(s.counters.reported_bytes == 0x21000);
  CHECK(s.counters.invalid_reports == 1);
}

TEST_CASE("balloon config: host target, guest actual, generation bumps") {
  Rig r;
  r.bring_up();
  CHECK(r.config32(0) == 0);
  r.dev.set_target_pages(1234);
  CHECK(r.config32(0) == 1234);
  CHECK(r.drv.read(kConfigGeneration) == 1);
  CHECK(r.drv.read(kInterruptStatus) & kIntConfigChange);
  r.dev.set_target_pages(1234);  // no change, no bump
  CHECK(r.drv.read(kConfigGeneration) == 1);

  r.drv.write(kConfig + 4, 77);
  CHECK(r.dev.actual_pages() == 77);
  uint8_t b = 1;
  r.t.mmio_write(kConfig + 5, &b, 1);  // byte write into actual
  CHECK(r.dev.actual_pages() == 77 + 256);
  r.drv.write(kConfig + 0, 5);  // num_pages is the host's
  r.drv.write(kConfig + 12, 5);  // poison_val is not offered
  CHECK(r.dev.target_pages() == 1234);
  CHECK(r.config32(12) == 0);
  CHECK(r.config32(16) == 0);

  r.drv.write(kStatus, 0);  // reset: the guest balloon is empty again, the target stays
  CHECK(r.dev.actual_pages() == 0);
  CHECK(r.config32(0) == 1234);
}

TEST_CASE("balloon: a bad chain is counted and the device needs a reset") {
  Rig r;
  r.bring_up();
  r.qs[0].set_desc(0, kHole, 64);  // PFN array in the hole
  r.qs[0].publish(0);
  r.drv.notify(0);
  CHECK(r.dev.stats().counters.bad_chains == 1);
  CHECK(r.drv.status() & kStatusNeedsReset);
  CHECK(r.backend.inflated.empty());
  r.send_pfns(1, {1});  // ignored until reset
  CHECK(r.backend.deflated.empty());
}

TEST_CASE("balloon: nothing is processed before DRIVER_OK") {
  Rig r;
  REQUIRE(r.drv.negotiate(kAllFeatures));
  r.qs.emplace_back(r.mem, 0x1000, 64);
  REQUIRE(r.drv.setup_queue(0, r.qs[0]));
  r.send_pfns(0, {1, 2});
  CHECK(r.backend.inflated.empty());
  CHECK(r.qs[0].used_idx() == 0);
}

// --- The 4 KiB balloon's map of ballooned pages and whole-frame discards (balloon_pages.hpp) ---

namespace {
constexpr uint64_t k2M = 2ull << 20;
constexpr uint32_t kPfnsPer2M = 512;
// Two 2 MiB frames of RAM, then a hole, then 3 MiB: in the host mapping the last region's second
// 2 MiB frame holds only 1 MiB of RAM.
GuestMemory::RegionSpec kFrameRegions[] = {{0, 2 * k2M}, {4 * k2M, 3ull << 20}};

std::vector<uint32_t> pfn_range(uint32_t first, uint32_t n) {
  std::vector<uint32_t> v(n);
  for (uint32_t i = 0; i < n; ++i) v[i] = first + i;
  return v;
}
}  // namespace

TEST_CASE("balloon page map: bits per 4 KiB page, a frame reported once when its last page goes in") {
  GuestMemory mem(kFrameRegions);
  BalloonPageMap map(mem);
  std::vector<uint64_t> whole;
  CHECK(map.add(k2M, 1 << 20, whole));  // first half of frame 1
  CHECK(whole.empty());
  CHECK(map.pages() == 256);
  CHECK(map.contains(k2M + 0x1000));
  CHECK_FALSE(map.contains(k2M + (1 << 20)));
  CHECK(map.add(k2M + (1 << 20), 1 << 20, whole));  // the second half completes it
  CHECK(whole == std::vector<uint64_t>{k2M});
  CHECK(map.pages() == 512);

  whole.clear();
  CHECK(map.add(k2M + 0x5000, 0x1000, whole));  // already in: nothing changed, nothing reported
  CHECK(whole.empty());
  CHECK(map.remove(k2M + 0x5000, 0x1000));
  CHECK(map.pages() == 511);
  CHECK(map.add(k2M + 0x5000, 0x1000, whole));  // back in: the frame is whole again
  CHECK(whole == std::vector<uint64_t>{k2M});

  whole.clear();
  CHECK(map.add(0, k2M, whole));  // one run over the whole frame: its own discard covered it
  CHECK(whole.empty());
  CHECK(map.pages() == 1024);
  map.clear();
  CHECK(map.pages() == 0);
  CHECK_FALSE(map.contains(0));
}

TEST_CASE("balloon page map: a run across frames reports only the frames it completed in part") {
  GuestMemory mem(kFrameRegions);
  BalloonPageMap map(mem);
  std::vector<uint64_t> whole;
  REQUIRE(map.add(k2M - 0x1000, 0x1000, whole));  // the last page of frame 0
  REQUIRE(whole.empty());
  // [0, 2M - 4K) completes frame 0 (its last page was in already) and covers it only in part.
  REQUIRE(map.add(0, k2M - 0x1000, whole));
  CHECK(whole == std::vector<uint64_t>{0});
  whole.clear();
  REQUIRE(map.add(k2M + 0x1000, k2M - 0x1000, whole));
  REQUIRE(map.add(k2M, 0x1000, whole));
  CHECK(whole == std::vector<uint64_t>{k2M});
}

TEST_CASE("balloon page map: bad ranges are refused and a frame with a region end in it never completes") {
  GuestMemory mem(kFrameRegions);
  BalloonPageMap map(mem);
  std::vector<uint64_t> whole;
  CHECK_FALSE(map.add(0x800, 0x1000, whole));          // misaligned
  CHECK_FALSE(map.add(0, 0, whole));                   // empty
  CHECK_FALSE(map.add(2 * k2M, 0x1000, whole));        // in the hole
  CHECK_FALSE(map.add(2 * k2M - 0x1000, 0x2000, whole));  // across the end of a region
  CHECK_FALSE(map.remove(~0ull & ~0xfffull, 0x1000));
  CHECK(map.pages() == 0);
  // [5 x 2M, 5 x 2M + 1M) is all of RAM in its host frame: every page in, still never whole.
  CHECK(map.add(5 * k2M, 1 << 20, whole));
  CHECK(map.pages() == 256);
  CHECK(whole.empty());
  CHECK(map.add(4 * k2M, 0x1000, whole));
  CHECK(map.add(4 * k2M + 0x1000, k2M - 0x1000, whole));
  CHECK(whole == std::vector<uint64_t>{4 * k2M});
}

TEST_CASE("balloon 4 KiB: a 2 MiB frame is discarded once more, whole, when its last page goes in") {
  Rig r(kFrameRegions);
  r.bring_up();
  r.send_pfns(0, pfn_range(kPfnsPer2M, 256));  // frame 1, first half: one 1 MiB run
  CHECK(r.backend.inflated == std::vector<Call>{{k2M, 1 << 20}});
  CHECK(r.backend.frames.empty());
  r.send_pfns(0, pfn_range(kPfnsPer2M + 256, 256));
  CHECK(r.backend.frames == std::vector<Call>{{k2M, k2M}});
  CHECK(r.dev.stats().counters.whole_frame_discards == 1);

  // A page out and in again: the frame was touched in between, so it is discarded whole again.
  r.send_pfns(1, {kPfnsPer2M + 7});
  r.send_pfns(0, {kPfnsPer2M + 7});
  CHECK(r.backend.frames.size() == 2);
  // The same page twice: nothing changed, no discard.
  r.send_pfns(0, {kPfnsPer2M + 7});
  CHECK(r.backend.frames.size() == 2);
  // One chain with all of frame 4: its run covered the frame, no second discard.
  r.send_pfns(0, pfn_range(4 * kPfnsPer2M, kPfnsPer2M));
  CHECK(r.backend.frames.size() == 2);
  auto s = r.dev.stats();
  CHECK(s.counters.whole_frame_discards == 2);
  CHECK(s.counters.inflated_pages == 512 + 2 + 512);
}

TEST_CASE("balloon 4 KiB: a driver reset empties the page map") {
  Rig r(kFrameRegions);
  r.bring_up();
  r.send_pfns(0, pfn_range(kPfnsPer2M, 256));
  r.qs.clear();
  r.bring_up();  // negotiate resets the device first
  r.send_pfns(0, pfn_range(kPfnsPer2M + 256, 256));
  CHECK(r.backend.frames.empty());  // the first half went out of the balloon with the reset
}

TEST_CASE("balloon 4 KiB: without Options::whole_frames nothing is discarded twice") {
  Balloon::Options opt;
  opt.whole_frames = false;
  Rig r(kFrameRegions, opt);
  r.bring_up();
  r.send_pfns(0, pfn_range(kPfnsPer2M, 256));
  r.send_pfns(0, pfn_range(kPfnsPer2M + 256, 256));
  CHECK(r.backend.frames.empty());
  CHECK(r.dev.stats().counters.whole_frame_discards == 0);
}

// --- The 2 MiB balloon: VIRTIO_BALLOON_F_HVMM_HUGE_PAGES ---

namespace {
Balloon::Options huge_options() {
  Balloon::Options o;
  o.huge_pages = true;
  return o;
}
// [0, 3 MiB), hole, [4 MiB, 9 MiB): frames at 2 MiB and 8 MiB run past their region's end.
GuestMemory::RegionSpec kHugeRegions[] = {{0, 3ull << 20}, {4ull << 20, 5ull << 20}};
constexpr uint32_t pfn_at(uint64_t gpa) { return uint32_t(gpa >> 12); }
}  // namespace

TEST_CASE("balloon-huge: the huge-page feature is offered only with the option, bit 23") {
  CHECK(kFeatureHvmmHugePages == 1ull << 23);
  Rig plain;
  CHECK_FALSE(plain.drv.device_features() & kFeatureHvmmHugePages);
  CHECK_FALSE(plain.drv.negotiate(kAllFeatures | kFeatureHvmmHugePages));  // not offered: refused
  Rig huge(kHugeRegions, huge_options());
  CHECK(huge.drv.device_features() & kFeatureHvmmHugePages);
  CHECK(huge.dev.page_bytes() == kPageSize);  // nothing negotiated yet
  REQUIRE(huge.drv.negotiate(kAllFeatures | kFeatureHvmmHugePages));
  CHECK(huge.dev.page_bytes() == kHugePageSize);
  CHECK(huge.dev.num_queues() == 4);  // the queues do not change
}

TEST_CASE("balloon-huge: a driver that does not accept the feature gets the 4 KiB balloon") {
  Rig r(kHugeRegions, huge_options());
  r.bring_up(kAllFeatures);  // like a stock Linux driver
  CHECK(r.dev.page_bytes() == kPageSize);
  r.send_pfns(0, {0x201, 0x202});
  CHECK(r.backend.inflated == std::vector<Call>{{0x201000, 0x2000}});
  r.dev.set_target_pages(1024);
  CHECK(r.config32(kConfigNumPages) == 1024);
  auto s = r.dev.stats();
  CHECK(s.page_bytes == kPageSize);
  CHECK(s.counters.inflated_pages == 2);
  CHECK(s.counters.invalid_pfns == 0);
}

TEST_CASE("balloon-huge: each valid PFN discards 2 MiB; misaligned, outside RAM and region-crossing ones are skipped") {
  Rig r(kHugeRegions, huge_options());
  r.bring_up(kAllFeatures | kFeatureHvmmHugePages);
  r.send_pfns(0, {pfn_at(6ull << 20), pfn_at(0), pfn_at(4ull << 20), pfn_at(0),
                  0x201,                // not 2 MiB aligned
                  pfn_at(2ull << 20),   // [2M, 4M) runs past the first region into the hole
                  pfn_at(8ull << 20),   // [8M, 10M) runs past the end of RAM
                  pfn_at(3ull << 20),   // in the hole
                  0xfffffe00u});        // far outside
  CHECK(r.qs[0].used_idx() == 1);
  // 4M and 6M merge into one run; the duplicate 0 counts once.
  CHECK(r.backend.inflated == std::vector<Call>{{0, kHugePageSize}, {4ull << 20, 2 * kHugePageSize}});
  CHECK(r.backend.frames.empty());  // huge pages are discarded whole already
  auto s = r.dev.stats();
  CHECK(s.counters.inflated_pages == 3);  // in 2 MiB units
  CHECK(s.counters.invalid_pfns == 5);
  CHECK(s.counters.whole_frame_discards == 0);
  CHECK(s.page_bytes == kHugePageSize);
}

TEST_CASE("balloon-huge: deflate gives back 2 MiB per PFN, counted in 2 MiB units") {
  Rig r(kHugeRegions, huge_options());
  r.bring_up(kAllFeatures | kFeatureHvmmHugePages);
  r.send_pfns(0, {pfn_at(0), pfn_at(4ull << 20)});
  r.send_pfns(1, {pfn_at(4ull << 20), 0x401, pfn_at(0)});
  CHECK(r.backend.deflated == std::vector<Call>{{0, kHugePageSize}, {4ull << 20, kHugePageSize}});
  auto s = r.dev.stats();
  CHECK(s.counters.deflated_pages == 2);
  CHECK(s.counters.invalid_pfns == 1);
}

TEST_CASE("balloon-huge: num_pages and actual count 2 MiB units, the target means the same bytes after a reset") {
  Rig r(kHugeRegions, huge_options());
  r.bring_up(kAllFeatures | kFeatureHvmmHugePages);
  r.dev.set_target_pages(3);  // 6 MiB
  CHECK(r.config32(kConfigNumPages) == 3);
  CHECK(r.dev.target_pages() == 3);
  r.drv.write(kConfig + kConfigActual, 2);
  auto s = r.dev.stats();
  CHECK(s.actual_pages == 2);
  CHECK(s.target_pages == 3);
  CHECK(s.page_bytes == kHugePageSize);
  r.qs.clear();
  r.bring_up(kAllFeatures);  // the driver comes back without huge pages: 6 MiB in 4 KiB pages
  CHECK(r.config32(kConfigNumPages) == 3 * kPfnsPerHugePage);
  CHECK(r.dev.actual_pages() == 0);
}

// Issue 13, defect 4: `actual` is the driver's word. The host keeps its own count of what is in the
// balloon, and a resize believes that one.
TEST_CASE("balloon: the host counts ballooned pages itself; a written `actual` does not change that count") {
  Rig r;
  r.bring_up();
  r.dev.set_target_pages(100);
  r.drv.write(kConfig + 4, 100);  // the driver claims 100 pages without inflating one
  CHECK(r.dev.actual_pages() == 100);
  CHECK(r.dev.host_pages() == 0);
  r.drv.write(kConfig + 4, 0xffffffffu);  // 16 TiB on a tiny VM
  CHECK(r.dev.stats().host_pages == 0);

  r.send_pfns(0, {0x10, 0x11, 0x12, 0x10});  // the duplicate counts once
  CHECK(r.dev.host_pages() == 3);
  r.send_pfns(0, {0x11, 0x13});  // 0x11 again, in another chain: still one page
  CHECK(r.dev.host_pages() == 4);
  CHECK(r.dev.stats().counters.inflated_pages == 5);  // the per-chain counter is not a count of pages
  r.send_pfns(1, {0x10, 0x7ff0});  // deflate one that is in and one that never was
  CHECK(r.dev.host_pages() == 3);
  r.drv.write(kStatus, 0);  // a reset driver has an empty balloon
  CHECK(r.dev.host_pages() == 0);
}

TEST_CASE("balloon-huge: the host's count is in 2 MiB units") {
  Rig r(kHugeRegions, huge_options());
  r.bring_up(kAllFeatures | kFeatureHvmmHugePages);
  r.send_pfns(0, {pfn_at(0), pfn_at(4ull << 20), 0x201});
  CHECK(r.dev.host_pages() == 2);
  r.send_pfns(1, {pfn_at(0)});
  CHECK(r.dev.host_pages() == 1);
}
