// The built-in guest's paravirtual ports: the hypercall port's handler table and the HyperAlloc
// install port adapter (no KVM: guest memory is a plain mapping).
#include <catch2/catch.hpp>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "devices/hyperalloc_port.hpp"
#include "devices/hypercall_port.hpp"

using namespace hvmm;
using abi::Hypercall;
using abi::HypercallStatus;

namespace {

struct FakeVm : VmControl, ConsoleSink {
  int exit_status = -1;
  std::string message, console;
  void request_exit(int status, std::string m) override {
    exit_status = status;
    message = std::move(m);
  }
  bool stopping() const override { return exit_status >= 0; }
  void write(std::string_view bytes) override { console += bytes; }
};

GuestMemory::RegionSpec kRam[] = {{0, 1 << 20}};

struct Fixture {
  GuestMemory mem{kRam};
  FakeVm vm;
  HypercallPort port{mem, vm, vm};
  static constexpr uint32_t kReq = 0x1000;

  // Writes the request into guest RAM, "outl"s its address, returns `ret`.
  int64_t call(uint32_t nr, std::vector<uint64_t> args = {}) {
    abi::HypercallRequest r{};
    r.nr = nr;
    for (size_t i = 0; i < args.size() && i < 6; i++) r.args[i] = args[i];
    REQUIRE(mem.write_obj(kReq, r));
    const uint32_t gpa = kReq;
    port.bus_write(0, reinterpret_cast<const uint8_t*>(&gpa), 4);
    REQUIRE(mem.read_obj(kReq, r));
    return r.ret;
  }
};

constexpr int64_t st(HypercallStatus s) { return static_cast<int64_t>(s); }

}  // namespace

TEST_CASE("hypercalls go through one table; a mechanism adds its own") {
  Fixture f;
  REQUIRE(f.mem.write(0x2000, "hi\n", 3));
  CHECK(f.call(uint32_t(Hypercall::kConsoleWrite), {0x2000, 3}) == st(HypercallStatus::kOk));
  CHECK(f.vm.console == "hi\n");
  CHECK(f.call(uint32_t(Hypercall::kNow)) > 0);

  // Defined but not offered (e.g. --reclaim none): unsupported, no complaint.
  CHECK(f.call(uint32_t(Hypercall::kHyperallocRegister), {0x3000}) == st(HypercallStatus::kUnsupported));
  CHECK(f.port.invalid() == 0);

  uint64_t seen = 0;
  f.port.set_handler(Hypercall::kHyperallocRegister, [&](const abi::HypercallRequest& r) {
    seen = r.args[0];
    return int64_t{42};
  });
  CHECK(f.call(uint32_t(Hypercall::kHyperallocRegister), {0x3000}) == 42);
  CHECK(seen == 0x3000);

  // Unknown numbers are counted as invalid.
  CHECK(f.call(0) == st(HypercallStatus::kUnsupported));
  CHECK(f.call(abi::kHypercallMax + 1) == st(HypercallStatus::kUnsupported));
  CHECK(f.call(0xffffffff) == st(HypercallStatus::kUnsupported));
  CHECK(f.port.invalid() == 3);
  CHECK(f.port.calls() == 7);
}

TEST_CASE("a hypercall handler cannot be set twice or for an undefined call") {
  Fixture f;
  CHECK_THROWS_AS(f.port.set_handler(Hypercall::kSleep, [](const auto&) { return int64_t{0}; }), std::logic_error);
  CHECK_THROWS_AS(f.port.set_handler(static_cast<Hypercall>(abi::kHypercallMax + 1), [](const auto&) { return int64_t{0}; }),
                  std::logic_error);
  CHECK_THROWS_AS(f.port.set_handler(static_cast<Hypercall>(0), [](const auto&) { return int64_t{0}; }), std::logic_error);
}

TEST_CASE("a guest panic stops the VM with the guest-exception status") {
  Fixture f;
  f.call(uint32_t(Hypercall::kPanic), {14, 2, 0x1234, 0xdead000, 0x3002, 0x2b});
  CHECK(f.vm.exit_status == exit_status::kGuestException);
  CHECK(f.vm.message.find("page fault") != std::string::npos);
  CHECK(f.vm.message.find("0xdead000") != std::string::npos);
}

TEST_CASE("the install port forwards 32-bit writes and counts everything else") {
  std::vector<uint32_t> installs;
  HyperallocInstallPort port([&](uint32_t idx) { installs.push_back(idx); });
  const uint32_t idx = 3;
  port.bus_write(0, reinterpret_cast<const uint8_t*>(&idx), 4);
  port.bus_write(0, reinterpret_cast<const uint8_t*>(&idx), 2);  // wrong width
  port.bus_write(4, reinterpret_cast<const uint8_t*>(&idx), 4);  // wrong offset
  CHECK(installs == std::vector<uint32_t>{3});
  CHECK(port.invalid_accesses() == 2);
  uint8_t buf[4] = {};
  port.bus_read(0, buf, 4);
  CHECK(buf[0] == 0xff);
}
