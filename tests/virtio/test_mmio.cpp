// virtio-mmio transport: register file, status handshake, feature negotiation, queue set-up,
// notifications, interrupts, and a driver that does everything wrong.
#include <catch2/catch.hpp>

#include "tests/virtio/fake_driver.hpp"

using namespace hvmm;
using namespace hvmm::virtio;
using namespace hvmm::virtio::test;
using namespace hvmm::virtio::mmio_reg;

namespace {
constexpr uint64_t kFeatureFoo = 1ull << 3;

// A device with two queues that returns every chain with its writable length, and 8 config bytes.
struct EchoDevice : VirtioDevice {
  int notifies = 0, resets = 0, activations = 0, chains = 0, errors = 0;
  uint64_t accepted = 0;
  uint8_t config[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uint32_t device_id() const override { return 42; }
  uint64_t device_features() const override { return kFeatureFoo; }
  bool accept_features(uint64_t f) override {
    accepted = f;
    return true;
  }
  unsigned num_queues() const override { return 2; }
  uint16_t queue_max_size(unsigned) const override { return 16; }
  void read_config(uint32_t off, uint8_t* d, unsigned len) override {
    for (unsigned i = 0; i < len; ++i) d[i] = off + i < sizeof config ? config[off + i] : 0;
  }
  void write_config(uint32_t off, const uint8_t* d, unsigned len) override {
    for (unsigned i = 0; i < len; ++i)
      if (off + i < sizeof config) config[off + i] = d[i];
  }
  void activate() override { ++activations; }
  void queue_notify(unsigned index) override {
    ++notifies;
    Virtqueue* q = transport_->queue(index);
    if (!q) return;
    DescChain c;
    Virtqueue::Pop r;
    while ((r = q->pop(c)) == Virtqueue::Pop::chain) {
      ++chains;
      q->push(c.head, uint32_t(c.writable_bytes()));
    }
    if (r == Virtqueue::Pop::error) ++errors;
    transport_->notify_used(index);
  }
  void reset() override { ++resets; }
  void poke_config() {
    std::lock_guard g(lock());
    transport_->config_changed();
  }
};

struct Rig {
  GuestMemory mem{kTestRegions};
  EchoDevice dev;
  FakeIrq irq;
  MmioTransport t{mem, dev, irq};
  MmioDriver drv{t};
  FakeQueue q0{mem, 0x1000, 16};
  FakeQueue q1{mem, 0x3000, 16};
  // The full happy handshake with both queues.
  void bring_up(uint64_t features = kFeatureVersion1 | kFeatureFoo) {
    REQUIRE(drv.negotiate(features));
    REQUIRE(drv.setup_queue(0, q0));
    REQUIRE(drv.setup_queue(1, q1));
    drv.driver_ok();
    REQUIRE(drv.status() == (kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk));
  }
};
}  // namespace

TEST_CASE("mmio identity registers") {
  Rig r;
  CHECK(r.drv.read(kMagicValue) == 0x74726976);
  CHECK(r.drv.read(kVersion) == 2);
  CHECK(r.drv.read(kDeviceId) == 42);
  CHECK(r.drv.read(kVendorId) == kVendor);
  uint64_t f = r.drv.device_features();
  CHECK(f == (kFeatureFoo | kFeatureVersion1 | kFeatureIndirectDesc | kFeatureEventIdx));
  r.drv.write(kDeviceFeaturesSel, 2);
  CHECK(r.drv.read(kDeviceFeatures) == 0);
  CHECK(r.drv.read(kShmLenLow) == 0xffffffff);  // no shared memory regions
  CHECK(r.drv.read(kConfigGeneration) == 0);
}

TEST_CASE("mmio handshake, queue set-up and synchronous notification") {
  Rig r;
  r.bring_up();
  CHECK(r.dev.accepted == (kFeatureVersion1 | kFeatureFoo));
  CHECK(r.dev.activations == 1);
  r.drv.write(kQueueSel, 0);
  CHECK(r.drv.read(kQueueNumMax) == 16);
  r.drv.write(kQueueSel, 2);
  CHECK(r.drv.read(kQueueNumMax) == 0);  // no such queue

  r.q0.set_desc(0, 0x10000, 64, kDescFlagWrite);
  r.q0.publish(0);
  r.drv.notify(0);
  // Processed before the notify write returned.
  CHECK(r.q0.used_idx() == 1);
  CHECK(r.q0.used_elem(0).len == 64);
  CHECK(r.irq.raised == 1);
  CHECK(r.drv.read(kInterruptStatus) == kIntUsedBuffer);
  r.drv.write(kInterruptAck, kIntUsedBuffer);
  CHECK(r.drv.read(kInterruptStatus) == 0);
  CHECK(r.irq.lowered == 1);
}

TEST_CASE("mmio feature negotiation refuses what was not offered") {
  Rig r;
  SECTION("feature not offered") {
    CHECK_FALSE(r.drv.negotiate(kFeatureVersion1 | (1ull << 7)));
    CHECK(r.t.counters().refused_features == 1);
  }
  SECTION("VERSION_1 missing") {
    CHECK_FALSE(r.drv.negotiate(kFeatureFoo));
  }
  SECTION("bits in a feature word that does not exist") {
    r.drv.write(kStatus, kStatusAcknowledge | kStatusDriver);
    r.drv.write(kDriverFeaturesSel, 1);
    r.drv.write(kDriverFeatures, 1);  // VERSION_1
    r.drv.write(kDriverFeaturesSel, 5);
    r.drv.write(kDriverFeatures, 1);
    r.drv.write(kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    CHECK_FALSE(r.drv.status() & kStatusFeaturesOk);
  }
  SECTION("DRIVER_OK after refused FEATURES_OK is refused too") {
    CHECK_FALSE(r.drv.negotiate(kFeatureFoo));
    r.drv.write(kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);
    CHECK_FALSE(r.drv.status() & kStatusDriverOk);
    CHECK(r.dev.activations == 0);
  }
  SECTION("features cannot change after FEATURES_OK") {
    REQUIRE(r.drv.negotiate(kFeatureVersion1));
    r.drv.write(kDriverFeaturesSel, 0);
    r.drv.write(kDriverFeatures, uint32_t(kFeatureFoo));
    CHECK(r.t.driver_features() == kFeatureVersion1);
  }
}

TEST_CASE("mmio status writes must follow the handshake order") {
  Rig r;
  r.drv.write(kStatus, kStatusDriver);  // without ACKNOWLEDGE
  CHECK(r.drv.status() == 0);
  r.drv.write(kStatus, kStatusAcknowledge);
  r.drv.write(kStatus, kStatusAcknowledge | kStatusFeaturesOk);  // without DRIVER
  CHECK(r.drv.status() == kStatusAcknowledge);
  r.drv.write(kStatus, kStatusAcknowledge | kStatusDriver);
  r.drv.write(kStatus, kStatusAcknowledge | kStatusDriver | kStatusDriverOk);  // without FEATURES_OK
  CHECK(r.drv.status() == (kStatusAcknowledge | kStatusDriver));
  r.drv.write(kStatus, kStatusAcknowledge);  // clearing a bit
  CHECK(r.drv.status() == (kStatusAcknowledge | kStatusDriver));
  r.drv.write(kStatus, kStatusAcknowledge | kStatusDriver | kStatusNeedsReset);  // device-only bit
  CHECK(r.drv.status() == (kStatusAcknowledge | kStatusDriver));
  CHECK(r.t.counters().refused_status == 4);
  r.drv.write(kStatus, kStatusAcknowledge | kStatusDriver | kStatusFailed);
  CHECK(r.drv.status() & kStatusFailed);
}

TEST_CASE("mmio reset by writing 0 clears everything") {
  Rig r;
  r.bring_up();
  r.q0.set_desc(0, 0x10000, 64);
  r.q0.publish(0);
  r.drv.notify(0);
  int resets = r.dev.resets;  // negotiate() itself starts with a reset
  r.drv.write(kStatus, 0);
  CHECK(r.drv.status() == 0);
  CHECK(r.dev.resets == resets + 1);
  CHECK(r.drv.read(kInterruptStatus) == 0);
  r.drv.write(kQueueSel, 0);
  CHECK(r.drv.read(kQueueReady) == 0);
  CHECK(r.t.driver_features() == 0);
  // And the device comes up again.
  FakeQueue fresh(r.mem, 0x1000, 16);
  REQUIRE(r.drv.negotiate(kFeatureVersion1));
  REQUIRE(r.drv.setup_queue(0, fresh));
  r.drv.driver_ok();
  fresh.set_desc(0, 0x10000, 8);
  fresh.publish(0);
  r.drv.notify(0);
  CHECK(fresh.used_idx() == 1);
}

TEST_CASE("mmio ignores notifications it must not act on") {
  Rig r;
  REQUIRE(r.drv.negotiate(kFeatureVersion1));
  REQUIRE(r.drv.setup_queue(0, r.q0));
  r.q0.set_desc(0, 0x10000, 8);
  r.q0.publish(0);
  r.drv.notify(0);  // before DRIVER_OK
  CHECK(r.dev.notifies == 0);
  CHECK(r.q0.used_idx() == 0);
  r.drv.driver_ok();
  r.drv.notify(1);  // queue 1 was never enabled
  r.drv.notify(7);  // no such queue
  r.drv.notify(0xffffffff);
  CHECK(r.dev.notifies == 0);
  CHECK(r.t.counters().ignored_notifies == 4);
  r.drv.notify(0);
  CHECK(r.dev.notifies == 1);
  CHECK(r.q0.used_idx() == 1);
}

TEST_CASE("mmio queue set-up errors: the queue stays off and the device needs a reset") {
  Rig r;
  REQUIRE(r.drv.negotiate(kFeatureVersion1));
  SECTION("size not a power of two") { CHECK_FALSE(r.drv.setup_queue(0, r.q0, 12)); }
  SECTION("size above QueueNumMax") {
    FakeQueue big(r.mem, 0x8000, 32);
    CHECK_FALSE(r.drv.setup_queue(0, big));
  }
  SECTION("rings outside RAM") {
    FakeQueue q(r.mem, kLowEnd - 0x100, 16);  // descriptor table runs into the hole
    CHECK_FALSE(r.drv.setup_queue(0, q));
  }
  CHECK(r.drv.status() & kStatusNeedsReset);
  CHECK(r.t.counters().refused_queue_setup == 1);
}

TEST_CASE("mmio queue registers are frozen while the queue is ready") {
  Rig r;
  r.bring_up();
  r.drv.write(kQueueSel, 0);
  r.drv.write(kQueueDescLow, 0x9000);
  r.drv.write(kQueueNum, 4);
  CHECK(r.t.counters().bad_accesses == 2);
  r.q0.set_desc(0, 0x10000, 8);
  r.q0.publish(0);
  r.drv.notify(0);
  CHECK(r.q0.used_idx() == 1);  // still the old rings
  r.drv.write(kQueueReady, 0);   // the driver may switch a queue off
  CHECK(r.drv.read(kQueueReady) == 0);
}

TEST_CASE("mmio: a broken queue sets NEEDS_RESET and raises a config interrupt") {
  Rig r;
  r.bring_up();
  r.q0.set_desc(0, 0x10000, 8, kDescFlagNext, 0);  // self loop
  r.q0.publish(0);
  r.drv.notify(0);
  CHECK(r.dev.errors == 1);
  CHECK(r.drv.status() & kStatusNeedsReset);
  CHECK(r.drv.read(kInterruptStatus) & kIntConfigChange);
  CHECK(r.t.counters().queue_errors == 1);
  r.q1.set_desc(0, 0x10000, 8);
  r.q1.publish(0);
  r.drv.notify(1);  // everything is ignored until reset
  CHECK(r.q1.used_idx() == 0);
  r.drv.write(kStatus, 0);
  CHECK(r.drv.status() == 0);
}

TEST_CASE("mmio register file refuses odd offsets and sizes") {
  Rig r;
  auto rd = [&](uint64_t off, unsigned len) {
    uint8_t b[16];
    std::memset(b, 0xAA, sizeof b);
    r.t.mmio_read(off, b, len);
    uint64_t v = 0;
    std::memcpy(&v, b, len < 8 ? len : 8);
    return v;
  };
  CHECK(rd(kMagicValue, 4) == 0x74726976);
  CHECK(rd(kMagicValue + 1, 4) == 0);  // misaligned
  CHECK(rd(kMagicValue, 2) == 0);      // too narrow
  CHECK(rd(kMagicValue, 1) == 0);
  CHECK(rd(kMagicValue, 8) == 0);      // too wide for a register
  CHECK(rd(kMagicValue, 16) == 0);     // no such access size at all
  CHECK(rd(0x0f0, 4) == 0);            // unassigned
  CHECK(rd(kQueueNotify, 4) == 0);     // write-only
  CHECK(rd(kSlotSize, 4) == 0);        // outside the slot
  CHECK(rd(kSlotSize - 2, 4) == 0);    // straddles the end
  CHECK(rd(~uint64_t{0}, 4) == 0);
  CHECK(r.t.counters().bad_accesses == 10);

  uint8_t one = kStatusAcknowledge;
  r.t.mmio_write(kStatus, &one, 1);  // byte write to a register: ignored
  CHECK(r.drv.status() == 0);
  uint32_t v = 1;
  r.t.mmio_write(kStatus + 2, reinterpret_cast<uint8_t*>(&v), 4);
  r.t.mmio_write(kMagicValue, reinterpret_cast<uint8_t*>(&v), 4);  // read-only
  r.t.mmio_write(kSlotSize + 0x70, reinterpret_cast<uint8_t*>(&v), 4);
  r.t.mmio_write(kStatus, nullptr, 4);
  CHECK(r.drv.status() == 0);
  CHECK(r.t.counters().bad_accesses == 14);

  // Config space takes 1/2/4/8-byte aligned accesses; beyond the device's config reads 0.
  CHECK(rd(kConfig, 1) == 1);
  CHECK(rd(kConfig + 2, 2) == 0x0403);
  CHECK(rd(kConfig + 4, 4) == 0x08070605);
  CHECK(rd(kConfig, 8) == 0x0807060504030201);
  CHECK(rd(kConfig + 1, 2) == 0);  // misaligned
  CHECK(rd(kConfig + 3, 4) == 0);
  CHECK(rd(kConfig + 0x200, 4) == 0);
  CHECK(rd(kSlotSize - 4, 4) == 0);
  uint16_t w = 0xBEEF;
  r.t.mmio_write(kConfig + 2, reinterpret_cast<uint8_t*>(&w), 2);
  CHECK(rd(kConfig + 2, 2) == 0xBEEF);
  r.t.mmio_write(kConfig + 5, reinterpret_cast<uint8_t*>(&w), 2);  // misaligned: ignored
  CHECK(rd(kConfig + 4, 4) == 0x08070605);
}

TEST_CASE("mmio config change bumps the generation and interrupts only after DRIVER_OK") {
  Rig r;
  r.dev.poke_config();
  CHECK(r.drv.read(kConfigGeneration) == 1);
  CHECK(r.irq.raised == 0);
  r.bring_up();
  r.dev.poke_config();
  CHECK(r.drv.read(kConfigGeneration) == 2);
  CHECK(r.drv.read(kInterruptStatus) == kIntConfigChange);
  CHECK(r.irq.raised == 1);
}
