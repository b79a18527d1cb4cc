#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "devices/bus.hpp"

using namespace hvmm;

namespace {
// Records every access; reads return offset-derived bytes so the dispatched offset is visible.
struct Recorder : BusDevice {
  struct Access {
    bool write;
    uint64_t offset;
    unsigned len;
    uint8_t first;
  };
  std::vector<Access> log;
  uint8_t tag;
  explicit Recorder(uint8_t t) : tag(t) {}
  void bus_read(uint64_t offset, uint8_t* data, unsigned len) override {
    for (unsigned i = 0; i < len; ++i) data[i] = static_cast<uint8_t>(tag + offset + i);
    log.push_back({false, offset, len, data[0]});
  }
  void bus_write(uint64_t offset, const uint8_t* data, unsigned len) override {
    log.push_back({true, offset, len, data[0]});
  }
};
}  // namespace

TEST_CASE("bus refuses overlapping, empty and wrapping ranges") {
  Bus bus;
  Recorder a(0), b(0);
  bus.add(0x3F8, 8, &a);
  CHECK_THROWS_AS(bus.add(0x3F8, 8, &b), std::invalid_argument);   // same
  CHECK_THROWS_AS(bus.add(0x3F0, 9, &b), std::invalid_argument);   // tail overlaps
  CHECK_THROWS_AS(bus.add(0x3FF, 1, &b), std::invalid_argument);   // last byte
  CHECK_THROWS_AS(bus.add(0x3F9, 2, &b), std::invalid_argument);   // inside
  CHECK_THROWS_AS(bus.add(0x300, 0x200, &b), std::invalid_argument);  // covers
  CHECK_THROWS_AS(bus.add(0x500, 0, &b), std::invalid_argument);
  CHECK_THROWS_AS(bus.add(~uint64_t{0} - 1, 4, &b), std::invalid_argument);
  CHECK_THROWS_AS(bus.add(0x600, 1, nullptr), std::invalid_argument);
  CHECK_NOTHROW(bus.add(0x3F0, 8, &b));   // adjacent below
  CHECK_NOTHROW(bus.add(0x400, 1, &b));   // adjacent above
  CHECK_NOTHROW(bus.add(~uint64_t{0} - 3, 4, &b));  // ends exactly at 2^64
  CHECK_THROWS_AS(bus.add(~uint64_t{0}, 1, &b), std::invalid_argument);
}

TEST_CASE("bus dispatches with offsets relative to the device base") {
  Bus bus;
  Recorder uart(0x10), mmio(0x80);
  bus.add(0x3F8, 8, &uart);
  bus.add(0xD000'0000, 0x1000, &mmio);

  uint8_t b = 0;
  CHECK(bus.read(0x3FD, &b, 1));
  CHECK(b == 0x15);
  REQUIRE(uart.log.size() == 1);
  CHECK(uart.log[0].offset == 5);

  uint8_t v = 'x';
  CHECK(bus.write(0x3F8, &v, 1));
  CHECK(uart.log.back().write);
  CHECK(uart.log.back().offset == 0);
  CHECK(uart.log.back().first == 'x');

  uint32_t w = 0;
  CHECK(bus.read(0xD000'0070, reinterpret_cast<uint8_t*>(&w), 4));
  CHECK(mmio.log.back().offset == 0x70);
  CHECK(mmio.log.back().len == 4);
  CHECK(bus.read(0xD000'0FFC, reinterpret_cast<uint8_t*>(&w), 4));  // last word of the range
  CHECK(mmio.log.size() == 2);
}

TEST_CASE("bus reports unmapped and straddling accesses") {
  Bus bus;
  Recorder dev(0);
  bus.add(0x1000, 0x10, &dev);
  uint8_t buf[8];
  std::memset(buf, 0, sizeof buf);
  CHECK_FALSE(bus.read(0x2000, buf, 8));
  for (auto x : buf) CHECK(x == 0xff);
  CHECK_FALSE(bus.read(0xFFF, buf, 1));        // just below
  CHECK_FALSE(bus.read(0x1010, buf, 1));       // just above
  CHECK_FALSE(bus.read(0x100C, buf, 8));       // straddles the end
  CHECK_FALSE(bus.write(0x100C, buf, 8));
  CHECK_FALSE(bus.read(0x1000, buf, 0));
  CHECK_FALSE(bus.write(~uint64_t{0}, buf, 8));  // addr + len wraps
  CHECK(dev.log.empty());
  Bus empty;
  CHECK_FALSE(empty.write(0, buf, 1));
}
