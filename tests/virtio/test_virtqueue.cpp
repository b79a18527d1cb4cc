// Split virtqueue: set-up validation, chain walking, used ring, notification decision, and every
// hostile chain we can think of (each must break the queue, be counted, and never crash).
#include <catch2/catch.hpp>

#include <thread>

#include "tests/virtio/fake_driver.hpp"

using namespace hvmm;
using namespace hvmm::virtio;
using namespace hvmm::virtio::test;

namespace {
constexpr uint64_t kRing = 0x1000;
constexpr uint64_t kBuf = 0x10000;
constexpr uint64_t kIndirect = 0x20000;
constexpr uint16_t N = 8;

struct Fixture {
  GuestMemory mem{kTestRegions};
  FakeQueue fq{mem, kRing, N};
  Virtqueue q{mem, 64};
  DescChain c;
  explicit Fixture(bool event_idx = false, bool indirect = true) {
    REQUIRE(q.enable(fq.config(event_idx, indirect), 256) == QueueError::none);
  }
  // Pops expecting an error, and checks the queue is broken and stays quiet.
  QueueError pop_error() {
    REQUIRE(q.pop(c) == Virtqueue::Pop::error);
    CHECK(q.broken());
    CHECK(q.counters().errors == 1);
    CHECK(q.pop(c) == Virtqueue::Pop::empty);
    return q.last_error();
  }
};
}  // namespace

TEST_CASE("queue set-up is validated against RAM, alignment and size") {
  GuestMemory mem(kTestRegions);
  Virtqueue q(mem);
  FakeQueue fq(mem, kRing, N);
  auto cfg = fq.config();
  auto with = [&](auto change) {
    auto c = cfg;
    change(c);
    return q.enable(c, 256);
  };
  CHECK(with([](QueueConfig&) {}) == QueueError::none);
  CHECK(q.ready());
  CHECK(with([](QueueConfig& c) { c.size = 0; }) == QueueError::size_invalid);
  CHECK_FALSE(q.ready());
  CHECK(with([](QueueConfig& c) { c.size = 6; }) == QueueError::size_invalid);
  CHECK(with([](QueueConfig& c) { c.size = 512; }) == QueueError::size_invalid);  // > device max
  CHECK(q.enable(cfg, 4) == QueueError::size_invalid);
  CHECK(with([](QueueConfig& c) { c.desc += 8; }) == QueueError::desc_misaligned);
  CHECK(with([](QueueConfig& c) { c.avail += 1; }) == QueueError::avail_misaligned);
  CHECK(with([](QueueConfig& c) { c.used += 2; }) == QueueError::used_misaligned);
  CHECK(with([](QueueConfig& c) { c.desc = kHole; }) == QueueError::desc_outside_ram);
  CHECK(with([](QueueConfig& c) { c.desc = kLowEnd - 16 * N + 16; }) == QueueError::desc_outside_ram);
  CHECK(with([](QueueConfig& c) { c.desc = ~uint64_t{0} & ~15ull; }) == QueueError::desc_outside_ram);
  CHECK(with([](QueueConfig& c) { c.avail = kHighEnd - 4; }) == QueueError::avail_outside_ram);
  CHECK(with([](QueueConfig& c) { c.used = kHole; }) == QueueError::used_outside_ram);
  // The event-index trailer counts: a used ring ending exactly at RAM's end fits only without it.
  uint64_t tight = kLowEnd - (4 + 8 * N);
  CHECK(with([&](QueueConfig& c) { c.used = tight; }) == QueueError::none);
  CHECK(with([&](QueueConfig& c) { c.used = tight; c.event_idx = true; }) == QueueError::used_outside_ram);
}

TEST_CASE("a readable+writable chain is walked and returned through the used ring") {
  Fixture f;
  CHECK(f.q.pop(f.c) == Virtqueue::Pop::empty);
  f.fq.set_desc(3, kBuf, 100, kDescFlagNext, 5);
  f.fq.set_desc(5, kHighStart, 200, kDescFlagNext | kDescFlagWrite, 1);
  f.fq.set_desc(1, kBuf + 4096, 50, kDescFlagWrite);
  f.fq.publish(3);
  REQUIRE(f.q.pop(f.c) == Virtqueue::Pop::chain);
  CHECK(f.c.head == 3);
  REQUIRE(f.c.readable.size() == 1);
  CHECK(f.c.readable[0].gpa == kBuf);
  REQUIRE(f.c.writable.size() == 2);
  CHECK(f.c.writable[0].gpa == kHighStart);
  CHECK(f.c.writable_bytes() == 250);
  CHECK(f.q.pop(f.c) == Virtqueue::Pop::empty);

  CHECK(f.q.push(3, 123));
  CHECK(f.fq.used_idx() == 1);
  CHECK(f.fq.used_elem(0).id == 3);
  CHECK(f.fq.used_elem(0).len == 123);
  CHECK_FALSE(f.q.push(3, 0));  // nothing in flight any more
  CHECK(f.q.counters().bad_pushes == 1);
}

TEST_CASE("a chain of exactly queue-size descriptors is fine; zero-length buffers are dropped") {
  Fixture f;
  for (uint16_t i = 0; i < N; ++i)
    f.fq.set_desc(i, kBuf + i * 16, i == 2 ? 0 : 16, i + 1 < N ? kDescFlagNext : 0, i + 1);
  f.fq.set_desc(2, kHole, 0, kDescFlagNext, 3);  // zero length: no memory named, address ignored
  f.fq.publish(0);
  REQUIRE(f.q.pop(f.c) == Virtqueue::Pop::chain);
  CHECK(f.c.readable.size() == N - 1);
}

TEST_CASE("indirect descriptor tables are followed") {
  Fixture f;
  f.fq.write_desc(kIndirect + 0, kBuf, 8, kDescFlagNext, 2);
  f.fq.write_desc(kIndirect + 32, kBuf + 8, 8, kDescFlagNext | kDescFlagWrite, 1);
  f.fq.write_desc(kIndirect + 16, kBuf + 16, 8, kDescFlagWrite, 0);
  f.fq.set_desc(0, kIndirect, 48, kDescFlagIndirect);
  f.fq.publish(0);
  REQUIRE(f.q.pop(f.c) == Virtqueue::Pop::chain);
  CHECK(f.c.readable.size() == 1);
  CHECK(f.c.writable.size() == 2);
  // A direct prefix followed by an indirect tail is legal too.
  f.fq.set_desc(1, kBuf + 64, 8, kDescFlagNext, 0);
  f.fq.publish(1);
  REQUIRE(f.q.pop(f.c) == Virtqueue::Pop::chain);
  CHECK(f.c.readable.size() == 2);
}

TEST_CASE("ChainReader reads across buffer boundaries") {
  Fixture f;
  uint8_t bytes[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  f.mem.write(kBuf, bytes, 5);
  f.mem.write(kHighStart, bytes + 5, 7);
  f.fq.set_desc(0, kBuf, 5, kDescFlagNext, 1);
  f.fq.set_desc(1, kHighStart, 7, 0);
  f.fq.publish(0);
  REQUIRE(f.q.pop(f.c) == Virtqueue::Pop::chain);
  ChainReader r(f.mem, f.c);
  uint8_t out[8];
  CHECK(r.read(out, 8) == 8);
  CHECK(std::memcmp(out, bytes, 8) == 0);
  CHECK(r.read(out, 8) == 4);
  CHECK(std::memcmp(out, bytes + 8, 4) == 0);
  CHECK(r.read(out, 8) == 0);
}

TEST_CASE("hostile chains break the queue and are counted") {
  SECTION("descriptor loop") {
    Fixture f;
    f.fq.set_desc(0, kBuf, 8, kDescFlagNext, 1);
    f.fq.set_desc(1, kBuf, 8, kDescFlagNext, 0);
    f.fq.publish(0);
    CHECK(f.pop_error() == QueueError::chain_too_long);
  }
  SECTION("self loop") {
    Fixture f;
    f.fq.set_desc(4, kBuf, 8, kDescFlagNext, 4);
    f.fq.publish(4);
    CHECK(f.pop_error() == QueueError::chain_too_long);
  }
  SECTION("loop inside an indirect table") {
    Fixture f;
    f.fq.write_desc(kIndirect, kBuf, 8, kDescFlagNext, 1);
    f.fq.write_desc(kIndirect + 16, kBuf, 8, kDescFlagNext, 0);
    f.fq.set_desc(0, kIndirect, 32, kDescFlagIndirect);
    f.fq.publish(0);
    CHECK(f.pop_error() == QueueError::chain_too_long);
  }
  SECTION("next out of range") {
    Fixture f;
    f.fq.set_desc(0, kBuf, 8, kDescFlagNext, N);
    f.fq.publish(0);
    CHECK(f.pop_error() == QueueError::next_out_of_range);
  }
  SECTION("head out of range") {
    Fixture f;
    f.fq.publish(N);
    CHECK(f.pop_error() == QueueError::head_out_of_range);
  }
  SECTION("avail idx jumps by more than the queue size") {
    Fixture f;
    f.fq.set_avail_idx(N + 1);
    CHECK(f.pop_error() == QueueError::avail_idx_jump);
  }
  SECTION("avail idx moving backwards looks like a huge jump") {
    Fixture f;
    f.fq.set_avail_idx(0xffff);
    CHECK(f.pop_error() == QueueError::avail_idx_jump);
  }
  SECTION("nested indirect") {
    Fixture f;
    f.fq.write_desc(kIndirect, kIndirect + 256, 16, kDescFlagIndirect, 0);
    f.fq.set_desc(0, kIndirect, 16, kDescFlagIndirect);
    f.fq.publish(0);
    CHECK(f.pop_error() == QueueError::indirect_nested);
  }
  SECTION("indirect together with next") {
    Fixture f;
    f.fq.write_desc(kIndirect, kBuf, 8, 0, 0);
    f.fq.set_desc(0, kIndirect, 16, kDescFlagIndirect | kDescFlagNext, 1);
    f.fq.publish(0);
    CHECK(f.pop_error() == QueueError::indirect_with_next);
  }
  SECTION("indirect not negotiated") {
    Fixture f(false, /*indirect=*/false);
    f.fq.write_desc(kIndirect, kBuf, 8, 0, 0);
    f.fq.set_desc(0, kIndirect, 16, kDescFlagIndirect);
    f.fq.publish(0);
    CHECK(f.pop_error() == QueueError::indirect_not_negotiated);
  }
  SECTION("indirect table of zero, odd or excessive size") {
    for (uint32_t len : {0u, 24u, 65u * 16}) {  // limit is 64 entries in the fixture
      Fixture f;
      f.fq.set_desc(0, kIndirect, len, kDescFlagIndirect);
      f.fq.publish(0);
      CHECK(f.pop_error() == QueueError::indirect_bad_size);
    }
  }
  SECTION("indirect table outside RAM") {
    Fixture f;
    f.fq.set_desc(0, kLowEnd - 16, 32, kDescFlagIndirect);
    f.fq.publish(0);
    CHECK(f.pop_error() == QueueError::indirect_outside_ram);
  }
  SECTION("buffers outside RAM") {
    for (auto [addr, len] : {std::pair<uint64_t, uint32_t>{kHole, 8}, {kLowEnd - 4, 8},
                             {~uint64_t{0} - 2, 8}, {kHighEnd, 1}, {0, 0xffffffffu}}) {
      Fixture f;
      f.fq.set_desc(0, kBuf, 8, kDescFlagNext, 1);
      f.fq.set_desc(1, addr, len, 0);
      f.fq.publish(0);
      CHECK(f.pop_error() == QueueError::buffer_outside_ram);
    }
  }
  SECTION("readable after writable") {
    Fixture f;
    f.fq.set_desc(0, kBuf, 8, kDescFlagNext | kDescFlagWrite, 1);
    f.fq.set_desc(1, kBuf, 8, 0);
    f.fq.publish(0);
    CHECK(f.pop_error() == QueueError::readable_after_writable);
  }
}

TEST_CASE("a broken queue recovers only through reset") {
  Fixture f;
  f.fq.publish(N);
  CHECK(f.q.pop(f.c) == Virtqueue::Pop::error);
  f.fq.set_desc(0, kBuf, 8);
  f.fq.publish(0);
  CHECK(f.q.pop(f.c) == Virtqueue::Pop::empty);
  f.q.reset();
  CHECK_FALSE(f.q.broken());
  CHECK_FALSE(f.q.ready());
  CHECK(f.q.pop(f.c) == Virtqueue::Pop::empty);
  CHECK(f.q.counters().errors == 1);  // kept across reset
}

TEST_CASE("interrupt suppression without event index follows NO_INTERRUPT") {
  Fixture f;
  f.fq.set_desc(0, kBuf, 8);
  f.fq.publish(0);
  REQUIRE(f.q.pop(f.c) == Virtqueue::Pop::chain);
  f.q.push(0, 0);
  CHECK(f.q.should_interrupt());
  f.fq.set_avail_flags(kAvailFlagNoInterrupt);
  CHECK_FALSE(f.q.should_interrupt());
}

TEST_CASE("event index: used_event decides interrupts, avail_event asks for notifications") {
  Fixture f(/*event_idx=*/true);
  for (uint16_t i = 0; i < 4; ++i) f.fq.set_desc(i, kBuf, 8);
  // Empty queue: the device asks to be notified at the current avail index.
  CHECK(f.q.pop(f.c) == Virtqueue::Pop::empty);
  CHECK(f.fq.avail_event() == 0);
  for (uint16_t i = 0; i < 4; ++i) f.fq.publish(i);
  for (uint16_t i = 0; i < 4; ++i) REQUIRE(f.q.pop(f.c) == Virtqueue::Pop::chain);
  CHECK(f.q.pop(f.c) == Virtqueue::Pop::empty);
  CHECK(f.fq.avail_event() == 4);

  f.fq.set_used_event(2);  // driver wants an interrupt once used idx passes 2
  f.q.push(0, 0);
  CHECK(f.q.should_interrupt());  // the first decision always interrupts
  f.q.push(1, 0);
  CHECK_FALSE(f.q.should_interrupt());  // used idx 2: event 2 not yet crossed
  f.q.push(2, 0);
  CHECK(f.q.should_interrupt());  // used idx 3 crossed event 2
  f.q.push(3, 0);
  CHECK_FALSE(f.q.should_interrupt());
}

TEST_CASE("a driver thread and a device thread share a queue without losing or reordering chains") {
  // Run under TSan (HVMM_SANITIZE=thread) this checks the acquire/release pairing on the rings.
  GuestMemory mem(kTestRegions);
  FakeQueue fq(mem, kRing, N);
  Virtqueue q(mem);
  REQUIRE(q.enable(fq.config(/*event_idx=*/true), 256) == QueueError::none);
  constexpr uint32_t kChains = 20000;
  uint32_t device_seen = 0;
  std::atomic<uint32_t> device_bad{0};

  std::thread device([&] {
    DescChain c;
    while (device_seen < kChains) {
      auto r = q.pop(c);
      if (r == Virtqueue::Pop::error) {
        ++device_bad;
        return;
      }
      if (r == Virtqueue::Pop::empty) {
        std::this_thread::yield();
        continue;
      }
      uint32_t seq = 0;
      ChainReader(mem, c).read(&seq, 4);
      if (seq != device_seen) ++device_bad;
      ++device_seen;
      q.push(c.head, seq);
    }
  });

  uint32_t sent = 0, reaped = 0, driver_bad = 0;
  uint16_t used_seen = 0;
  while (reaped < kChains && device_bad == 0) {
    uint16_t used = fq.used_idx();
    for (; used_seen != used; ++used_seen, ++reaped)
      if (fq.used_elem(used_seen).len != reaped) ++driver_bad;
    if (sent < kChains && sent - reaped < N) {
      uint16_t slot = uint16_t(sent % N);
      mem.write_obj(kBuf + 4 * slot, sent);
      fq.set_desc(slot, kBuf + 4 * slot, 4);
      fq.publish(slot);
      ++sent;
    } else {
      std::this_thread::yield();
    }
  }
  device.join();
  CHECK(device_bad == 0);
  CHECK(driver_bad == 0);
  CHECK(device_seen == kChains);
  CHECK(q.counters().pushed == kChains);
}
