// virtio-mem over the mmio transport: features, config space, every request kind and every way a
// request can be invalid, NACK / BUSY / backend failures, buffer checks, hostile rings, reset,
// the per-notify bound, and the host-side API.
#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <thread>

#include "tests/virtio/fake_mem_driver.hpp"

using namespace hvmm;
using namespace hvmm::virtio;
using namespace hvmm::virtio::test;
using namespace hvmm::virtio::mmio_reg;
using Call = RecordingMemBackend::Call;

namespace {
constexpr uint64_t kMiB = 1ull << 20;

// 4 KiB blocks, 160 blocks (three bitmap words), the last 32 outside the usable region.
VirtioMem::Options small_blocks() {
  VirtioMem::Options o;
  o.region_addr = 1ull << 32;
  o.region_size = 160 * 4096;
  o.block_size = 4096;
  o.usable_region_size = 128 * 4096;
  return o;
}

void require_up(MemRig& r, uint64_t requested = 64 * kMiB) {
  REQUIRE(r.bring_up());
  r.dev.set_requested_size(requested);
}
}  // namespace

TEST_CASE("virtio-mem identity, features and queues") {
  MemRig r;
  CHECK(r.drv.read(kDeviceId) == mem::kDeviceId);
  uint64_t f = r.drv.device_features();
  CHECK(f & mem::kFeatureUnpluggedInaccessible);
  CHECK_FALSE(f & mem::kFeatureAcpiPxm);
  CHECK(r.dev.num_queues() == 1);
  CHECK(r.dev.queue_max_size(0) == 128);
  CHECK(r.dev.queue_max_size(1) == 0);
}

TEST_CASE("virtio-mem refuses a driver that does not accept UNPLUGGED_INACCESSIBLE") {
  MemRig r;
  CHECK_FALSE(r.drv.negotiate(kFeatureVersion1));
  CHECK(r.t.counters().refused_features == 1);
  CHECK(r.dev.status().features == 0);
  CHECK_FALSE(r.drv.negotiate(kFeatureVersion1 | mem::kFeatureAcpiPxm | mem::kFeatureUnpluggedInaccessible));
  CHECK(r.drv.negotiate(kMemFeatures | kFeatureEventIdx));
  CHECK(r.dev.status().features == (kMemFeatures | kFeatureEventIdx));
  r.drv.write(kStatus, 0);  // reset forgets the accepted features
  CHECK(r.dev.status().features == 0);
}

TEST_CASE("virtio-mem options are validated") {
  GuestMemory mem(kTestRegions);
  RecordingMemBackend b;
  auto make = [&](auto&& edit) {
    VirtioMem::Options o = MemRig::default_options();
    edit(o);
    VirtioMem d(mem, b, o);
  };
  CHECK_NOTHROW(make([](auto&) {}));
  CHECK_THROWS_AS(make([](auto& o) { o.block_size = 3 * kMiB; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](auto& o) { o.block_size = 2048; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](auto& o) { o.region_size = 0; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](auto& o) { o.region_size = 3 * kMiB; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](auto& o) { o.region_addr += 4096; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](auto& o) { o.usable_region_size = 66 * kMiB; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](auto& o) { o.usable_region_size = kMiB; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](auto& o) { o.region_addr = ~0ull - 2 * kMiB + 1; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](auto& o) { o.queue_size = 100; }), std::invalid_argument);
  CHECK_THROWS_AS(make([](auto& o) { o.block_size = 4096, o.region_size = 1ull << 40; }), std::invalid_argument);
}

TEST_CASE("virtio-mem config space reads back through the mmio transport") {
  VirtioMem::Options o = MemRig::default_options();
  o.usable_region_size = 32 * kMiB;
  MemRig r(o);
  require_up(r, 8 * kMiB);
  REQUIRE(r.plug(0, 2).type() == mem::kRespAck);

  CHECK(r.config64(offsetof(mem::Config, block_size)) == 2 * kMiB);
  CHECK(r.config64(offsetof(mem::Config, addr)) == 1ull << 30);
  CHECK(r.config64(offsetof(mem::Config, region_size)) == 64 * kMiB);
  CHECK(r.config64(offsetof(mem::Config, usable_region_size)) == 32 * kMiB);
  CHECK(r.config64(offsetof(mem::Config, plugged_size)) == 4 * kMiB);
  CHECK(r.config64(offsetof(mem::Config, requested_size)) == 8 * kMiB);
  CHECK(r.config64(8) == 0);  // node_id and padding
  CHECK(r.config64(sizeof(mem::Config)) == 0);
  // Narrower accesses see the same little-endian bytes.
  CHECK(r.drv.read(kConfig + offsetof(mem::Config, addr)) == 1u << 30);
  CHECK(r.drv.read(kConfig + offsetof(mem::Config, addr) + 4) == 0);
  uint8_t b = 0xff;
  r.t.mmio_read(kConfig + offsetof(mem::Config, block_size) + 2, &b, 1);
  CHECK(b == 0x20);
}

TEST_CASE("virtio-mem config space is read-only for the driver") {
  MemRig r;
  require_up(r, 4 * kMiB);
  r.drv.write(kConfig + offsetof(mem::Config, requested_size), 0x12345678);
  uint64_t v = 1;
  r.t.mmio_write(kConfig + offsetof(mem::Config, plugged_size), reinterpret_cast<uint8_t*>(&v), 8);
  CHECK(r.config64(offsetof(mem::Config, requested_size)) == 4 * kMiB);
  CHECK(r.config64(offsetof(mem::Config, plugged_size)) == 0);
  CHECK(r.dev.status().counters.config_writes == 2);
}

TEST_CASE("virtio-mem requested size: rounded, clamped, and announced by a config interrupt") {
  VirtioMem::Options o = MemRig::default_options();
  o.usable_region_size = 32 * kMiB;
  MemRig r(o);
  CHECK(r.dev.set_requested_size(6 * kMiB) == 6 * kMiB);  // before DRIVER_OK: no interrupt
  CHECK(r.drv.read(kConfigGeneration) == 1);
  CHECK(r.irq.raised == 0);
  REQUIRE(r.bring_up());

  CHECK(r.dev.set_requested_size(5 * kMiB + 7) == 4 * kMiB);  // rounded down to the block size
  CHECK(r.drv.read(kConfigGeneration) == 2);
  CHECK(r.drv.read(kInterruptStatus) & kIntConfigChange);
  CHECK(r.irq.raised == 1);
  CHECK(r.config64(offsetof(mem::Config, requested_size)) == 4 * kMiB);

  r.drv.write(kInterruptAck, kIntConfigChange);
  CHECK(r.dev.set_requested_size(4 * kMiB + 1) == 4 * kMiB);  // same value: nothing to announce
  CHECK(r.drv.read(kConfigGeneration) == 2);
  CHECK(r.drv.read(kInterruptStatus) == 0);

  CHECK(r.dev.set_requested_size(~0ull) == 32 * kMiB);  // clamped to the usable region
  CHECK(r.drv.read(kConfigGeneration) == 3);
  CHECK(r.irq.raised == 2);
  CHECK(r.dev.set_requested_size(0) == 0);
  CHECK(r.dev.status().requested_size == 0);
}

TEST_CASE("virtio-mem PLUG, STATE and UNPLUG of one range") {
  MemRig r;
  require_up(r);
  auto res = r.plug(3, 2);
  CHECK(res.written == sizeof(mem::Response));
  CHECK(res.type() == mem::kRespAck);
  CHECK(res.resp.padding[0] == 0);
  CHECK(r.backend.plugs == std::vector<Call>{{r.at(3), 4 * kMiB}});
  CHECK(r.dev.status().plugged_size == 4 * kMiB);
  CHECK(r.dev.plugged(r.at(3)));
  CHECK(r.dev.plugged(r.at(5) - 1));
  CHECK_FALSE(r.dev.plugged(r.at(5)));
  CHECK_FALSE(r.dev.plugged(r.at(3) - 1));
  CHECK(r.irq.raised >= 1);  // used-buffer interrupt

  res = r.state(3, 2);
  CHECK(res.type() == mem::kRespAck);
  CHECK(res.state() == mem::kStatePlugged);
  CHECK(r.state(0, 3).state() == mem::kStateUnplugged);
  CHECK(r.state(2, 2).state() == mem::kStateMixed);
  CHECK(r.state(4, 2).state() == mem::kStateMixed);

  res = r.unplug(3, 2);
  CHECK(res.type() == mem::kRespAck);
  CHECK(r.backend.unplugs == std::vector<Call>{{r.at(3), 4 * kMiB}});
  CHECK(r.dev.status().plugged_size == 0);
  CHECK_FALSE(r.dev.plugged(r.at(3)));

  auto c = r.dev.status().counters;
  CHECK(c.plug_requests == 1);
  CHECK(c.unplug_requests == 1);
  CHECK(c.state_requests == 4);
  CHECK(c.acks == 6);
  CHECK(c.errors == 0);
}

TEST_CASE("virtio-mem UNPLUG_ALL unplugs every run, ignores addr and nb_blocks") {
  MemRig r(small_blocks());
  require_up(r);
  REQUIRE(r.plug(0, 2).type() == mem::kRespAck);
  REQUIRE(r.plug(60, 10).type() == mem::kRespAck);  // crosses a bitmap word
  REQUIRE(r.plug(127, 1).type() == mem::kRespAck);  // last usable block
  CHECK(r.dev.status().plugged_size == 13 * 4096);
  CHECK(r.state(0, 128).state() == mem::kStateMixed);
  CHECK(r.state(60, 10).state() == mem::kStatePlugged);

  auto res = r.send(mem::kReqUnplugAll, 12345, 0);  // garbage range: must not matter
  CHECK(res.type() == mem::kRespAck);
  std::vector<Call> want{{r.at(0), 2 * 4096}, {r.at(60), 10 * 4096}, {r.at(127), 4096}};
  CHECK(r.backend.unplugs == want);
  CHECK(r.dev.status().plugged_size == 0);
  CHECK(r.state(0, 128).state() == mem::kStateUnplugged);

  CHECK(r.unplug_all().type() == mem::kRespAck);  // nothing plugged: nothing to do
  CHECK(r.backend.unplugs.size() == 3);
  CHECK(r.dev.status().counters.unplug_all_requests == 2);
}

TEST_CASE("virtio-mem rejects invalid ranges with ERROR and never calls the backend") {
  MemRig r(small_blocks());
  require_up(r);
  const uint64_t base = r.base(), bs = r.block();
  struct Bad {
    const char* what;
    uint64_t addr;
    uint16_t nb;
  };
  const Bad bad[] = {
      {"misaligned", base + 512, 1},
      {"zero blocks", base, 0},
      {"below the region", base - bs, 1},
      {"far below the region", 0, 1},
      {"starts beyond usable", r.at(128), 1},
      {"ends beyond usable", r.at(120), 9},
      {"beyond the region", r.at(160), 1},
      {"far beyond the region", base + (1ull << 40), 1},
      {"addr + size overflows", ~0ull - bs + 1, 2},
      {"largest block count", base, 0xffff},
  };
  for (uint16_t type : {mem::kReqPlug, mem::kReqUnplug, mem::kReqState}) {
    for (const Bad& b : bad) {
      INFO(b.what << " type " << type);
      auto res = r.send(type, b.addr, b.nb);
      CHECK(res.written == sizeof(mem::Response));
      CHECK(res.type() == mem::kRespError);
    }
  }
  CHECK(r.backend.plugs.empty());
  CHECK(r.backend.unplugs.empty());
  auto c = r.dev.status().counters;
  CHECK(c.invalid_requests == 3 * std::size(bad));
  CHECK(c.errors == 3 * std::size(bad));
  // The edges themselves are fine.
  CHECK(r.plug(0, 1).type() == mem::kRespAck);
  CHECK(r.plug(120, 8).type() == mem::kRespAck);
  CHECK(r.state(0, 128).type() == mem::kRespAck);
}

TEST_CASE("virtio-mem: PLUG and UNPLUG need every block in the opposite state") {
  MemRig r;
  require_up(r);
  REQUIRE(r.plug(4, 2).type() == mem::kRespAck);
  CHECK(r.plug(4, 2).type() == mem::kRespError);    // already plugged
  CHECK(r.plug(3, 2).type() == mem::kRespError);    // mixed
  CHECK(r.plug(5, 3).type() == mem::kRespError);    // mixed
  CHECK(r.unplug(0, 1).type() == mem::kRespError);  // already unplugged
  CHECK(r.unplug(4, 3).type() == mem::kRespError);  // mixed
  CHECK(r.backend.plugs.size() == 1);
  CHECK(r.backend.unplugs.empty());
  auto s = r.dev.status();
  CHECK(s.counters.state_conflicts == 5);
  CHECK(s.counters.errors == 5);
  CHECK(s.plugged_size == 4 * kMiB);
}

TEST_CASE("virtio-mem NACKs a PLUG beyond the requested size") {
  MemRig r;
  require_up(r, 6 * kMiB);
  CHECK(r.plug(0, 4).type() == mem::kRespNack);  // 8 MiB > 6 MiB
  CHECK(r.backend.plugs.empty());
  CHECK(r.plug(0, 3).type() == mem::kRespAck);   // exactly the requested size
  CHECK(r.plug(10, 1).type() == mem::kRespNack);  // nothing left
  // The host shrinks its request below what is plugged: the driver may only unplug now.
  r.dev.set_requested_size(2 * kMiB);
  CHECK(r.plug(10, 1).type() == mem::kRespNack);
  CHECK(r.unplug(0, 1).type() == mem::kRespAck);
  CHECK(r.dev.status().plugged_size == 4 * kMiB);
  // NACK is policy; an invalid request is still an ERROR.
  CHECK(r.plug(1, 1).type() == mem::kRespError);
  CHECK(r.send(mem::kReqPlug, r.at(10), 0).type() == mem::kRespError);
  CHECK(r.dev.status().counters.nacks == 3);
}

TEST_CASE("virtio-mem: a backend failure is an ERROR and changes nothing") {
  MemRig r;
  require_up(r);
  r.backend.fail = true;
  CHECK(r.plug(0, 2).type() == mem::kRespError);
  CHECK(r.dev.status().plugged_size == 0);
  CHECK_FALSE(r.dev.plugged(r.at(0)));
  r.backend.fail = false;
  REQUIRE(r.plug(0, 2).type() == mem::kRespAck);
  REQUIRE(r.plug(4, 1).type() == mem::kRespAck);

  r.backend.fail = true;
  CHECK(r.unplug(0, 2).type() == mem::kRespError);
  CHECK(r.dev.status().plugged_size == 6 * kMiB);
  CHECK(r.state(0, 2).state() == mem::kStatePlugged);
  // UNPLUG_ALL stops at the first failing run.
  CHECK(r.unplug_all().type() == mem::kRespError);
  CHECK(r.backend.unplugs.back() == Call{r.at(0), 4 * kMiB});
  CHECK(r.dev.status().plugged_size == 6 * kMiB);
  CHECK_FALSE(r.dev.unplug_all());  // the host-side variant too
  r.backend.fail = false;
  CHECK(r.dev.unplug_all());
  CHECK(r.dev.status().plugged_size == 0);
  auto c = r.dev.status().counters;
  CHECK(c.backend_failures == 4);
  CHECK(c.errors == 3);
}

TEST_CASE("virtio-mem answers BUSY while the host says so, STATE still works") {
  MemRig r;
  require_up(r);
  REQUIRE(r.plug(0, 1).type() == mem::kRespAck);
  r.dev.set_busy(true);
  CHECK(r.dev.status().busy);
  CHECK(r.plug(1, 1).type() == mem::kRespBusy);
  CHECK(r.unplug(0, 1).type() == mem::kRespBusy);
  CHECK(r.unplug_all().type() == mem::kRespBusy);
  CHECK(r.state(0, 1).state() == mem::kStatePlugged);
  CHECK(r.plug(0, 0).type() == mem::kRespError);  // invalid stays invalid
  CHECK(r.backend.plugs.size() == 1);
  CHECK(r.backend.unplugs.empty());
  r.dev.set_busy(false);
  CHECK(r.unplug(0, 1).type() == mem::kRespAck);
  CHECK(r.dev.status().counters.busy == 3);
}

TEST_CASE("virtio-mem: an unknown request type is an ERROR") {
  MemRig r;
  require_up(r);
  for (uint16_t type : {uint16_t(4), uint16_t(0x100), uint16_t(0xffff)}) {
    auto res = r.send(type, r.at(0), 1);
    CHECK(res.written == sizeof(mem::Response));
    CHECK(res.type() == mem::kRespError);
  }
  CHECK(r.dev.status().counters.invalid_requests == 3);
  CHECK(r.backend.plugs.empty());
}

TEST_CASE("virtio-mem ignores padding and extra request bytes") {
  MemRig r;
  require_up(r);
  mem::Request req = MemRig::request(mem::kReqPlug, r.at(1), 1);
  std::memset(req.padding, 0xab, sizeof req.padding);
  std::memset(req.padding2, 0xcd, sizeof req.padding2);
  uint8_t raw[40];
  std::memset(raw, 0x5a, sizeof raw);
  std::memcpy(raw, &req, sizeof req);
  r.write_request(MemRig::kReqBuf, req);
  r.mem.write(MemRig::kReqBuf, raw, sizeof raw);
  r.q().set_desc(0, MemRig::kReqBuf, sizeof raw, kDescFlagNext, 1);
  r.q().set_desc(1, MemRig::kRespBuf, 64, kDescFlagWrite);  // a bigger response buffer is fine
  auto res = r.submit();
  CHECK(res.type() == mem::kRespAck);
  CHECK(res.written == sizeof(mem::Response));
  uint8_t after = 0;
  r.mem.read_obj(MemRig::kRespBuf + sizeof(mem::Response), after);
  CHECK(after == 0xee);  // nothing written past the response
}

TEST_CASE("virtio-mem: request and response may be split over several descriptors") {
  MemRig r;
  require_up(r);
  mem::Request req = MemRig::request(mem::kReqState, r.at(0), 1);
  r.write_request(MemRig::kReqBuf, req);
  // 5 + 19 request bytes (the second part elsewhere), 3 + 7 response bytes.
  r.mem.write(0x30000, reinterpret_cast<uint8_t*>(&req) + 5, sizeof req - 5);
  r.q().set_desc(0, MemRig::kReqBuf, 5, kDescFlagNext, 1);
  r.q().set_desc(1, 0x30000, sizeof req - 5, kDescFlagNext, 2);
  r.q().set_desc(2, 0x31000, 3, kDescFlagWrite | kDescFlagNext, 3);
  r.q().set_desc(3, 0x32000, 7, kDescFlagWrite);
  auto res = r.submit();
  CHECK(res.written == sizeof(mem::Response));
  uint8_t raw[10];
  r.mem.read(0x31000, raw, 3);
  r.mem.read(0x32000, raw + 3, 7);
  mem::Response resp;
  std::memcpy(&resp, raw, sizeof resp);
  CHECK(resp.type == mem::kRespAck);
  CHECK(resp.state == mem::kStateUnplugged);
}

TEST_CASE("virtio-mem: chains without room for a request and a response complete empty") {
  MemRig r;
  require_up(r);
  mem::Request req = MemRig::request(mem::kReqPlug, r.at(0), 1);
  auto expect_bad = [&](const char* what) {
    INFO(what);
    auto res = r.submit();
    CHECK(res.written == 0);
    CHECK(r.q().used_idx() > 0);  // completed, not left hanging
    uint16_t untouched = 0;
    r.mem.read_obj(MemRig::kRespBuf, untouched);
    CHECK(untouched == 0xeeee);
  };
  r.write_request(MemRig::kReqBuf, req);
  r.q().set_desc(0, MemRig::kReqBuf, sizeof req - 1, kDescFlagNext, 1);
  r.q().set_desc(1, MemRig::kRespBuf, sizeof(mem::Response), kDescFlagWrite);
  expect_bad("short request");

  r.write_request(MemRig::kReqBuf, req);
  r.q().set_desc(0, MemRig::kReqBuf, sizeof req, kDescFlagNext, 1);
  r.q().set_desc(1, MemRig::kRespBuf, sizeof(mem::Response) - 1, kDescFlagWrite);
  expect_bad("short response");

  r.write_request(MemRig::kReqBuf, req);
  r.q().set_desc(0, MemRig::kReqBuf, sizeof req);
  expect_bad("no response buffer");

  r.write_request(MemRig::kReqBuf, req);
  r.q().set_desc(0, MemRig::kRespBuf, 64, kDescFlagWrite);
  expect_bad("no request buffer");

  r.write_request(MemRig::kReqBuf, req);
  r.q().set_desc(0, MemRig::kReqBuf, sizeof req, kDescFlagWrite | kDescFlagNext, 1);  // device-writable request
  r.q().set_desc(1, MemRig::kRespBuf, sizeof(mem::Response), kDescFlagWrite);
  expect_bad("write-only request");

  r.write_request(MemRig::kReqBuf, req);
  r.q().set_desc(0, MemRig::kReqBuf, 0, kDescFlagNext, 1);  // zero-length: dropped by the walker
  r.q().set_desc(1, MemRig::kRespBuf, sizeof(mem::Response), kDescFlagWrite);
  expect_bad("empty request");

  auto s = r.dev.status();
  CHECK(s.counters.bad_buffers == 6);
  CHECK(s.counters.plug_requests == 0);
  CHECK(s.counters.bad_chains == 0);
  CHECK(r.backend.plugs.empty());
  CHECK_FALSE(r.drv.status() & kStatusNeedsReset);  // a payload problem, not a broken queue
  CHECK(r.plug(0, 1).type() == mem::kRespAck);
}

TEST_CASE("virtio-mem never touches buffers in its own unplugged blocks") {
  // The device region is guest RAM here: [4 MiB, 5 MiB) in 64 KiB blocks.
  VirtioMem::Options o;
  o.region_addr = kHighStart;
  o.region_size = kHighEnd - kHighStart;
  o.block_size = 64 << 10;
  MemRig r(o);
  require_up(r, o.region_size);
  mem::Request req = MemRig::request(mem::kReqState, r.at(0), 1);
  auto send_at = [&](uint64_t req_gpa, uint64_t resp_gpa) {
    r.mem.write_obj(req_gpa, req);
    r.q().set_desc(0, req_gpa, sizeof req, kDescFlagNext, 1);
    r.q().set_desc(1, resp_gpa, sizeof(mem::Response), kDescFlagWrite);
    return r.submit(0, resp_gpa);
  };
  CHECK(send_at(r.at(2), MemRig::kRespBuf).written == 0);        // request in an unplugged block
  CHECK(send_at(MemRig::kReqBuf, r.at(3) + 8).written == 0);     // response in an unplugged block
  CHECK(send_at(r.at(2) - 8, MemRig::kRespBuf).written == 0);    // spans two unplugged blocks
  CHECK(r.dev.status().counters.bad_buffers == 3);
  REQUIRE(r.plug(2, 2).type() == mem::kRespAck);
  auto res = send_at(r.at(2) + 100, r.at(3) + 8);
  CHECK(res.written == sizeof(mem::Response));
  CHECK(res.state() == mem::kStateUnplugged);
  CHECK(send_at(r.at(4) - 8, MemRig::kRespBuf).written == 0);    // straddles out of the plugged run

  // Unplugging the block the response goes to would leave nowhere to answer: refused, no change.
  req = MemRig::request(mem::kReqUnplug, r.at(3), 1);
  CHECK(send_at(MemRig::kReqBuf, r.at(3) + 8).written == 0);
  req = MemRig::request(mem::kReqUnplugAll, 0, 0);
  CHECK(send_at(MemRig::kReqBuf, r.at(3) + 8).written == 0);
  CHECK(r.backend.unplugs.empty());
  CHECK(r.dev.status().plugged_size == 2 * r.block());
  CHECK(r.dev.status().counters.bad_buffers == 6);
  req = MemRig::request(mem::kReqUnplug, r.at(2), 1);  // the request's own block may go
  res = send_at(r.at(2) + 100, r.at(3) + 8);
  CHECK(res.type() == mem::kRespAck);
  CHECK(r.backend.unplugs == std::vector<Call>{{r.at(2), r.block()}});
}

TEST_CASE("virtio-mem: hostile rings break the queue, not the device") {
  MemRig r(small_blocks());
  require_up(r);
  REQUIRE(r.plug(5, 1).type() == mem::kRespAck);
  SECTION("buffer in the MMIO hole") {
    r.q().set_desc(0, kHole, 24, kDescFlagNext, 1);
    r.q().set_desc(1, MemRig::kRespBuf, 10, kDescFlagWrite);
  }
  SECTION("descriptor loop") {
    r.q().set_desc(0, MemRig::kReqBuf, 24, kDescFlagNext, 1);
    r.q().set_desc(1, MemRig::kRespBuf, 10, kDescFlagWrite | kDescFlagNext, 0);
  }
  SECTION("next out of range") { r.q().set_desc(0, MemRig::kReqBuf, 24, kDescFlagNext, 999); }
  SECTION("readable after writable") {
    r.q().set_desc(0, MemRig::kRespBuf, 10, kDescFlagWrite | kDescFlagNext, 1);
    r.q().set_desc(1, MemRig::kReqBuf, 24);
  }
  SECTION("request length wraps the address space") {
    r.q().set_desc(0, ~0ull - 8, 24, kDescFlagNext, 1);
    r.q().set_desc(1, MemRig::kRespBuf, 10, kDescFlagWrite);
  }
  r.write_request(MemRig::kReqBuf, MemRig::request(mem::kReqUnplugAll, 0, 0));
  auto res = r.submit();
  CHECK(res.written == 0);
  CHECK(r.q().used_idx() == 1);  // only the earlier PLUG completed
  CHECK(r.dev.status().counters.bad_chains == 1);
  CHECK(r.drv.status() & kStatusNeedsReset);
  CHECK(r.backend.unplugs.empty());
  // Ignored until the driver resets; the plugged block survives the device reset.
  CHECK(r.state(5, 1).written == 0);
  r.drv.write(kStatus, 0);
  r.new_queue();
  REQUIRE(r.bring_up());
  CHECK(r.state(5, 1).state() == mem::kStatePlugged);
  CHECK(r.dev.status().plugged_size == 4096);
}

TEST_CASE("virtio-mem: a hostile avail index jump is a structural error") {
  MemRig r;
  require_up(r);
  r.q().set_avail_idx(100);  // more than the queue size at once
  r.drv.notify(0);
  CHECK(r.dev.status().counters.bad_chains == 1);
  CHECK(r.drv.status() & kStatusNeedsReset);
}

TEST_CASE("virtio-mem device reset keeps block states, requested size and counters") {
  MemRig r;
  require_up(r, 10 * kMiB);
  REQUIRE(r.plug(0, 3).type() == mem::kRespAck);
  r.drv.write(kStatus, 0);
  auto s = r.dev.status();
  CHECK(s.plugged_size == 6 * kMiB);
  CHECK(s.requested_size == 10 * kMiB);
  CHECK(s.features == 0);
  CHECK(s.counters.plug_requests == 1);
  CHECK(r.dev.plugged(r.at(2)));
  CHECK(r.backend.unplugs.empty());  // the device MUST NOT change block states on reset
  // A restarted driver sees the plugged memory in config and cleans up with UNPLUG_ALL.
  r.new_queue();
  REQUIRE(r.bring_up());
  CHECK(r.config64(offsetof(mem::Config, plugged_size)) == 6 * kMiB);
  CHECK(r.unplug_all().type() == mem::kRespAck);
  CHECK(r.config64(offsetof(mem::Config, plugged_size)) == 0);
}

TEST_CASE("virtio-mem: nothing is processed before DRIVER_OK") {
  MemRig r;
  REQUIRE(r.drv.negotiate(kMemFeatures));
  REQUIRE(r.drv.setup_queue(0, r.q()));
  r.dev.set_requested_size(64 * kMiB);
  auto res = r.plug(0, 1);
  CHECK(res.written == 0);
  CHECK(r.q().used_idx() == 0);
  CHECK(r.backend.plugs.empty());
}

TEST_CASE("virtio-mem bounds the requests handled per notify") {
  VirtioMem::Options o = MemRig::default_options();
  o.queue_size = 4;
  MemRig r(o);
  r.new_queue(4);
  require_up(r);
  // A guest on another vCPU keeps the queue full: every backend call publishes another PLUG
  // (alternating between two chains; the one being handled is not reused).
  uint64_t next = 1;
  uint16_t head = 0;
  r.backend.on_call = [&] {
    head ^= 2;
    uint64_t req = MemRig::kReqBuf + 0x40 * head;
    r.mem.write_obj(req, MemRig::request(mem::kReqPlug, r.at(next++), 1));
    r.q().set_desc(head, req, sizeof(mem::Request), kDescFlagNext, uint16_t(head + 1));
    r.q().set_desc(uint16_t(head + 1), MemRig::kRespBuf, sizeof(mem::Response), kDescFlagWrite);
    r.q().publish(head);
  };
  r.plug(0, 1);
  CHECK(r.backend.plugs.size() == 4);
  CHECK(r.q().used_idx() == 4);
  CHECK(r.dev.status().counters.notify_bound_hits == 1);
  r.backend.on_call = nullptr;
  r.drv.notify(0);  // the next notify picks up the leftover chain
  CHECK(r.backend.plugs.size() == 5);
  CHECK(r.dev.status().plugged_size == 5 * 2 * kMiB);
}

TEST_CASE("virtio-mem host API is safe against a concurrent vCPU thread") {
  MemRig r(small_blocks());
  require_up(r, 0);
  std::atomic<bool> stop{false}, bad{false};
  // Everything requested until the host thread runs, and every other change after: plugs are
  // acked whatever the scheduling, so the race below really runs the plug and unplug paths.
  const uint64_t all = r.dev.status().usable_region_size;
  r.dev.set_requested_size(all);
  std::thread host([&] {  // no Catch2 assertions here: they are not thread-safe
    for (uint64_t i = 0; !stop.load(); ++i) {
      r.dev.set_requested_size(i % 2 ? all : (i % 129) * 4096);
      auto s = r.dev.status();
      if (s.plugged_size > s.usable_region_size || s.requested_size % 4096) bad = true;
      (void)r.dev.plugged(r.at(i % 160));
    }
  });
  int acks = 0;
  for (int i = 0; i < 2000; ++i) {
    const uint64_t block = uint64_t(i / 2 % 100);  // plug a block, then unplug the same one
    auto res = i % 2 ? r.unplug(block, 1) : r.plug(block, 1);
    acks += res.type() == mem::kRespAck;
  }
  stop = true;
  host.join();
  CHECK_FALSE(bad);
  CHECK(acks > 0);
  auto s = r.dev.status();
  uint64_t counted = 0;
  for (uint64_t b = 0; b < 160; ++b) counted += r.dev.plugged(r.at(b));
  CHECK(s.plugged_size == counted * 4096);
}
