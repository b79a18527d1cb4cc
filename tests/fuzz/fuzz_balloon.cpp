// libFuzzer target: the virtio-balloon request handlers (devices/virtio/balloon.*) behind a
// correctly set-up transport: inflate and deflate PFN lists, statistics buffers, free page reports
// (device-writable buffers), writes of the config space (`actual` and beyond), target changes,
// statistics requests and driver resets, in any order, with 4 KiB or 2 MiB pages. Whatever the
// input: no crash, no access outside guest RAM (ASan), every discard inside one RAM region, and the
// host's count of ballooned pages never above RAM.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "devices/virtio/balloon.hpp"
#include "devices/virtio/mmio.hpp"
#include "tests/virtio/fake_driver.hpp"

using namespace hvmm;
using namespace hvmm::virtio;
using namespace hvmm::virtio::test;
using namespace hvmm::virtio::balloon;

namespace {
GuestMemory& memory() {
  static GuestMemory mem(kTestRegions);
  return mem;
}
struct CheckingBackend : BalloonBackend {
  const GuestMemory& mem;
  explicit CheckingBackend(const GuestMemory& m) : mem(m) {}
  bool discard(uint64_t gpa, uint64_t len, Why) override {
    if (len == 0 || gpa % 4096 || len % 4096 || !mem.contains(gpa, len)) std::abort();
    return true;
  }
  void deflate(uint64_t gpa, uint64_t len) override {
    if (!mem.contains(gpa, len)) std::abort();
  }
};
constexpr uint64_t kQueues = 0x1000;   // 4 queues of 64 at 0x1000 + i * 0x4000
constexpr uint64_t kBuf = 0x20000;     // buffers the ops point at (in the first region)
constexpr uint64_t kBufLen = 0x8000;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  GuestMemory& mem = memory();
  std::memset(mem.hva(0, 0x30000), 0, 0x30000);
  CheckingBackend backend(mem);
  Balloon::Options opt;
  opt.huge_pages = data[0] & 1;
  Balloon dev(mem, backend, opt);
  FakeIrq irq;
  MmioTransport t(mem, dev, irq);
  MmioDriver drv(t);
  const uint64_t features = kFeatureVersion1 | kFeatureStatsVq | kFeatureDeflateOnOom | kFeatureReporting |
                            ((data[0] & 2) ? kFeatureHvmmHugePages : 0);
  data++, size--;
  if (!drv.negotiate(features & drv.device_features())) return 0;
  std::vector<FakeQueue> qs;
  for (unsigned i = 0; i < dev.num_queues(); ++i) {
    qs.emplace_back(mem, kQueues + i * 0x4000, 64);
    if (!drv.setup_queue(i, qs.back())) return 0;
  }
  drv.driver_ok();
  std::vector<uint16_t> next(qs.size(), 0);
  // Each op: 1 byte kind, 1 byte queue/flags, 2 bytes length, then `length` payload bytes.
  while (size >= 4) {
    const uint8_t kind = data[0], sel = data[1];
    uint16_t len;
    std::memcpy(&len, data + 2, 2);
    data += 4, size -= 4;
    len = uint16_t(std::min<size_t>({len, size, kBufLen}));
    const uint8_t* payload = data;
    data += len, size -= len;
    switch (kind % 6) {
      case 0: {  // a buffer (PFNs, statistics) on a queue; device-writable for reports
        const unsigned q = sel % qs.size();
        mem.write(kBuf, payload, len);
        const uint16_t slot = next[q]++ % qs[q].size();
        qs[q].set_desc(slot, kBuf, len, (sel & 0x80) ? kDescFlagWrite : 0);
        qs[q].publish(slot);
        drv.notify(q);
        break;
      }
      case 1: {  // a report of a range named by the payload (anywhere, any length)
        if (len < 12 || qs.size() < 3) break;
        uint64_t gpa;
        uint32_t blen;
        std::memcpy(&gpa, payload, 8);
        std::memcpy(&blen, payload + 8, 4);
        const unsigned q = unsigned(qs.size() - 1);
        const uint16_t slot = next[q]++ % qs[q].size();
        qs[q].set_desc(slot, gpa, blen, kDescFlagWrite);
        qs[q].publish(slot);
        drv.notify(q);
        break;
      }
      case 2: {  // config space writes of any width
        uint8_t v[4] = {};
        std::memcpy(v, payload, std::min<size_t>(len, 4));
        t.mmio_write(mmio_reg::kConfig + (sel % 24), v, 1u << (sel >> 6 & 3) > 4 ? 4 : 1u << (sel >> 6 & 3));
        break;
      }
      case 3: dev.set_target_pages(uint32_t(sel) << (len & 15)); break;
      case 4: (void)dev.request_stats(); break;
      default:
        if (sel == 0xff) drv.write(mmio_reg::kStatus, 0);  // a reset: the queues are gone afterwards
        break;
    }
    const BalloonStatus s = dev.stats();
    if (uint64_t(s.host_pages) * s.page_bytes > mem.ram_bytes()) std::abort();
  }
  return 0;
}
