// libFuzzer target: hypercall dispatch (devices/hypercall_port.*): port writes of any width and
// value, request blocks anywhere (in RAM, straddling its end, outside it) with any call number and
// arguments, through the handler table. The port is stopped first, so the calls that block a vCPU
// (sleep, wait, barrier) return at once, as they do while the VM stops. Whatever the input: no
// crash, no access outside guest RAM (ASan), every refusal counted.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "abi/hyperalloc.hpp"
#include "devices/hypercall_port.hpp"

using namespace hvmm;

namespace {
GuestMemory::RegionSpec kRegions[] = {{0, 1u << 20}, {4u << 20, 1u << 20}};
GuestMemory& memory() {
  static GuestMemory mem(kRegions);
  return mem;
}
struct FakeVm : VmControl, ConsoleSink {
  bool stop = false;
  size_t console = 0;
  void request_exit(int, std::string) override { stop = true; }
  bool stopping() const override { return stop; }
  void write(std::string_view bytes) override { console += bytes.size(); }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  GuestMemory& mem = memory();
  FakeVm vm;
  HypercallPort port(mem, vm, vm);
  port.set_handler(abi::Hypercall::kHyperallocRegister, [&](const abi::HypercallRequest& r) -> int64_t {
    abi::hyperalloc::Registration rec;  // reads what the guest points at, as the real handler does
    return mem.read_obj(r.args[0], rec) ? 0 : -1;
  });
  port.set_handler(abi::Hypercall::kVirtioMemFree, [](const abi::HypercallRequest&) -> int64_t { return 0; });
  port.stop();
  // Each op: 1 byte width/offset, 4 bytes port value, then a 64-byte request written at that value.
  while (size >= 5) {
    const uint8_t how = data[0];
    uint32_t value;
    std::memcpy(&value, data + 1, 4);
    data += 5, size -= 5;
    // Point the value into RAM most of the time, near its edges sometimes, anywhere otherwise.
    if (how & 0x80) value %= (6u << 20);
    abi::HypercallRequest req{};
    const size_t n = std::min(size, sizeof req);
    std::memcpy(&req, data, n);
    data += n, size -= n;
    req.nr %= abi::kHypercallMax + 3;  // mostly defined calls, some beyond
    if (req.nr == uint32_t(abi::Hypercall::kConsoleWrite)) req.args[1] %= 4096;
    mem.write_obj(value, req);  // refused (nothing written) outside RAM
    const unsigned len = 1u << (how & 3) > 4 ? 4 : 1u << (how & 3);
    port.bus_write((how >> 2) & 3, reinterpret_cast<const uint8_t*>(&value), len);
    uint8_t out[4];
    if (how & 0x40) port.bus_read(0, out, 4);
  }
  if (port.invalid() > port.calls() + 1'000'000) std::abort();  // counters stay sane
  return 0;
}
