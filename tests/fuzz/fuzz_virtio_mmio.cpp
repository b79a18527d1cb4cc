// libFuzzer target: the virtio-mmio register file state machine (devices/virtio/mmio.*) with a
// virtio-balloon behind it. The input is a sequence of register reads and writes of any width at
// any offset (a guest's stores to the MMIO window), interleaved with writes into guest RAM, so that
// feature negotiation, queue set-up, status changes, notifications and resets happen in every
// order. Whatever the sequence: no crash and no access outside guest RAM (ASan).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/balloon.hpp"
#include "devices/virtio/mmio.hpp"
#include "tests/virtio/fake_driver.hpp"

using namespace hvmm;
using namespace hvmm::virtio;

namespace {
struct NullBackend : BalloonBackend {
  bool discard(uint64_t, uint64_t, Why) override { return true; }
};
GuestMemory& memory() {
  static GuestMemory mem(test::kTestRegions);
  return mem;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  GuestMemory& mem = memory();
  for (auto& r : mem.regions()) std::memset(r.hva, 0, 64 * 1024);  // where rings usually land
  NullBackend backend;
  Balloon dev(mem, backend);
  test::FakeIrq irq;
  MmioTransport t(mem, dev, irq);
  // Each op: 1 byte kind/width, 2 bytes offset, 8 bytes value.
  while (size >= 11) {
    const uint8_t kind = data[0];
    uint16_t off;
    std::memcpy(&off, data + 1, 2);
    uint8_t value[8];
    std::memcpy(value, data + 3, 8);
    data += 11, size -= 11;
    const unsigned len = 1u << (kind & 3);  // 1, 2, 4, 8 bytes
    switch ((kind >> 2) % 3) {
      case 0: t.mmio_write(off % 0x1100, value, len); break;  // a little beyond the 4 KiB window too
      case 1: {
        uint8_t out[8];
        t.mmio_read(off % 0x1100, out, len);
        break;
      }
      default: mem.write(uint64_t(off) * 8 % (64 * 1024), value, 8); break;  // rings and buffers
    }
  }
  return 0;
}
