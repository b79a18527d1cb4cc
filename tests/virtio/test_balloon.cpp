// virtio-balloon over the mmio transport: features, queue numbering, inflate/deflate with
// coalescing, invalid PFNs, statistics, free page reporting, config space, and bad chains.
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
  explicit Rig(std::span<const GuestMemory::RegionSpec> regions = kTestRegions)
      : mem(regions), dev(mem, backend) {}

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
