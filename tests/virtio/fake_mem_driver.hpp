// Test helpers for virtio-mem: a recording backend and a driver that sends requests through the
// virtio-mmio transport (one request queue, request and response buffers in guest RAM).
#pragma once
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "devices/virtio/mem.hpp"
#include "tests/virtio/fake_driver.hpp"

namespace hvmm::virtio::test {

// Records every backend call; `fail` makes them fail; `on_call` runs inside each call (with the
// device lock held), e.g. to play a guest that keeps refilling the queue meanwhile.
struct RecordingMemBackend : MemBackend {
  struct Call {
    uint64_t gpa, len;
    bool operator==(const Call&) const = default;
  };
  std::vector<Call> plugs, unplugs;
  bool fail = false;
  std::function<void()> on_call;
  bool plug(uint64_t gpa, uint64_t len) override {
    plugs.push_back({gpa, len});
    if (on_call) on_call();
    return !fail;
  }
  bool unplug(uint64_t gpa, uint64_t len) override {
    unplugs.push_back({gpa, len});
    if (on_call) on_call();
    return !fail;
  }
};

inline constexpr uint64_t kMemFeatures = kFeatureVersion1 | mem::kFeatureUnpluggedInaccessible;

// A VirtioMem behind an MmioTransport, with its request queue at kQueueBase.
// By default: a 64 MiB region of 2 MiB blocks at 1 GiB, outside guest RAM.
struct MemRig {
  static constexpr uint64_t kQueueBase = 0x1000;
  static constexpr uint64_t kReqBuf = 0x20000;   // request (readable)
  static constexpr uint64_t kRespBuf = 0x20100;  // response (writable)
  static VirtioMem::Options default_options() {
    VirtioMem::Options o;
    o.region_addr = 1ull << 30;
    o.region_size = 64ull << 20;
    return o;
  }

  struct Result {
    uint32_t written = 0;                    // used-ring length
    mem::Response resp{0xffff, {}, 0xffff};  // stays so when the chain did not complete
    uint16_t type() const { return resp.type; }
    uint16_t state() const { return resp.state; }
  };

  GuestMemory mem;
  RecordingMemBackend backend;
  VirtioMem::Options opt;
  VirtioMem dev;
  FakeIrq irq;
  MmioTransport t{mem, dev, irq};
  MmioDriver drv{t};
  std::optional<FakeQueue> queue;

  FakeQueue& q() { return *queue; }
  // A fresh ring (e.g. after a reset), with `size` entries.
  void new_queue(uint16_t size = 16) { queue.emplace(mem, kQueueBase, size); }

  explicit MemRig(VirtioMem::Options o = default_options(),
                  std::span<const GuestMemory::RegionSpec> regions = kTestRegions)
      : mem(regions), opt(o), dev(mem, backend, o) {
    new_queue();
  }

  uint64_t base() const { return opt.region_addr; }
  uint64_t block() const { return opt.block_size; }
  uint64_t at(uint64_t block_index) const { return base() + block_index * block(); }

  bool bring_up(uint64_t features = kMemFeatures) {
    if (!drv.negotiate(features) || !drv.setup_queue(0, q())) return false;
    drv.driver_ok();
    return true;
  }

  // Publishes the chain starting at descriptor `head`, notifies, and reads back what was written.
  Result submit(uint16_t head = 0, uint64_t resp_gpa = kRespBuf) {
    uint16_t before = q().used_idx();
    q().publish(head);
    drv.notify(0);
    Result r;
    if (q().used_idx() == before) return r;  // not completed (ignored or broken)
    r.written = q().used_elem(before).len;
    mem.read_obj(resp_gpa, r.resp);
    return r;
  }
  // The usual two-descriptor chain: a 24-byte request, then a 10-byte response buffer.
  Result send(const mem::Request& req) {
    write_request(kReqBuf, req);
    q().set_desc(0, kReqBuf, sizeof req, kDescFlagNext, 1);
    q().set_desc(1, kRespBuf, sizeof(mem::Response), kDescFlagWrite);
    return submit();
  }
  Result send(uint16_t type, uint64_t addr = 0, uint16_t nb_blocks = 0) {
    return send(request(type, addr, nb_blocks));
  }
  Result plug(uint64_t first_block, uint16_t n) { return send(mem::kReqPlug, at(first_block), n); }
  Result unplug(uint64_t first_block, uint16_t n) { return send(mem::kReqUnplug, at(first_block), n); }
  Result unplug_all() { return send(mem::kReqUnplugAll); }
  Result state(uint64_t first_block, uint16_t n) { return send(mem::kReqState, at(first_block), n); }

  static mem::Request request(uint16_t type, uint64_t addr, uint16_t nb_blocks) {
    mem::Request r{};
    r.type = type;
    r.addr = addr;
    r.nb_blocks = nb_blocks;
    return r;
  }
  // Writes the request and fills the response buffer with 0xee so that unwritten bytes show.
  void write_request(uint64_t gpa, const mem::Request& req) {
    mem.write_obj(gpa, req);
    std::vector<uint8_t> junk(64, 0xee);
    mem.write(kRespBuf, junk.data(), junk.size());
  }

  uint64_t config64(uint32_t off) {
    uint64_t v = 0;
    t.mmio_read(mmio_reg::kConfig + off, reinterpret_cast<uint8_t*>(&v), 8);
    return v;
  }
};

}  // namespace hvmm::virtio::test
